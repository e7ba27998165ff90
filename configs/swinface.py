"""SwinFace's published recipe: Swin-T + MLCA, four streams of 128 faces (32 per GPU × 4 GPUs).

Streams (global batch per step): recognition on MS1MV2 (CosFace s 64, m 0.4 over PartialFC's
sampled centres, sample rate 0.3: `faceptor_jax/partial_fc.py`); age_gender on the AIO mix
(Adience 25 %, MORPH II 25 %, WIKI and IMDB 50 %): each face trains the age regression
(MSE→Welsch blend) and the Gender pair (CE); the 40 CelebA attributes as 2-way softmaxes;
expression on AffectNet 50 % + RAF-DB 50 % in RAF-DB's order. Losses summed with weight 1 per
stream (the trainer divides the sum by the 4 stream weights, a constant AdamW absorbs, except
that the backbone clip then acts at 4× the original's gradient scale). AdamW 5e-4 (backbone
5e-5), wd 0.05 on every parameter, timm's warmup 8k from 5e-7 + cosine over the raw step to 80k
with lr_min 5e-6 (absolute for both groups); grad-norm clip 5 on the backbone's own gradients.
The backbone (trunk + recognition head) starts from a Swin-T recognition model:
`--config.init.checkpoint=<swinface model dir or workdir>`.
Evaluation: LFW, CFP-FP, AgeDB-30, CALFW, CPLFW (10-fold) and IJB-C (1:1 templates, TAR@FAR),
CLAP2015 and FG-NET (age), CelebA, RAF-DB.

Gender, as in the original, is one CE mean over the 128 age_gender + 128 CelebA rows: each
side's Gender term is scaled by its share of those rows (½ and ½, `attribute_pairs.gender_share`),
so with the equal task weights below the two terms sum to (128·CE_age + 128·CE_celeba)/256.
Deliberate difference: age-set rows of unknown gender (IMDB-WIKI's NaN, Adience's "u", MORPH
files not named in the official pattern) are left out of the Gender CE, whose mean then runs
over a stream's known rows; the original labels every gender whose text is not "1.0" female,
the unknown ones included.
Not reproduced: PartialFCAdamW's freezing of unsampled centres (here AdamW's momentum and weight
decay still move them), the original's never-updated Gender fc (an optimizer param-group swap),
fp16 loss scaling.
"""

import ml_collections

from configs import recipe

BATCH = {
    "recognition_ms1mv2": 128,
    "age_gender_adience": 32,
    "age_gender_morph2": 32,
    "age_gender_wiki": 32,
    "age_gender_imdb": 32,
    "attribute_pairs_celeba": 128,
    "expression_ordered_affectnet": 64,
    "expression_ordered_rafdb": 64,
}
EVALUATED = ("recognition_ms1mv2", "age_gender_imdb", "attribute_pairs_celeba",
             "expression_ordered_rafdb")  # fmt: skip  # one stream per test protocol


# SwinFace's recognition protocol: the five 10-fold verification sets and IJB-C 1:1 (TAR@FAR); a
# set not built under data_dir is skipped with a log line
RECOGNITION_TEST_SETS = ("lfw", "cfp_fp", "agedb_30", "calfw", "cplfw", "ijbc")


def streams(batch: dict[str, int], **extra) -> dict:
    """Task entries; only `EVALUATED` streams run their test sets."""
    out = recipe.tasks(batch, **extra)
    for name, t in out.items():
        t["evaluate"] = name in EVALUATED
        if name.startswith("recognition"):
            t["test_sets"] = RECOGNITION_TEST_SETS
    return out


def get_config() -> ml_collections.ConfigDict:
    c = recipe.base_config()
    c.model = ml_collections.ConfigDict(
        dict(
            kind="swinface",
            encoder=dict(
                image_size=112, patch=2, embed_dim=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24),
                window=7, mlp_ratio=4.0, drop_path_rate=0.1, dtype="float32", remat=False,
            ),
            embed_dim=512, feature_dim=512, level_out=(47, 93, 186, 186), drop=0.5,
            dtype="float32",
        )
    )  # fmt: skip
    c.tasks = ml_collections.ConfigDict(streams(BATCH))
    c.tasks.recognition_ms1mv2.partial_fc = 0.3  # PartialFC: positives + random centres, 30 %
    c.task_weights = ml_collections.ConfigDict(
        dict(recognition=1.0, age_gender=1.0, attribute_pairs=1.0, expression_ordered=1.0)
    )
    c.total_steps = 80000
    c.optim = ml_collections.ConfigDict(
        dict(
            schedule="timm", base_lr=5e-7, peak_lr=5e-4, end_lr=5e-6, warmup_steps=8000,
            total_steps=c.total_steps, weight_decay=0.05, clip_norm=5.0,
            clip_groups=("backbone",), grad_accum=1, decay_all=True,
            groups=((r"model\.(trunk|recognition)\..*", "backbone"), (r"model\..*", "heads"),
                    (r".*", "losses")),
            multipliers=(("backbone", 0.1), ("heads", 1.0), ("losses", 1.0)),
        )
    )  # fmt: skip
    c.eval_every = 2000
    c.checkpoint_every = 4000
    return c
