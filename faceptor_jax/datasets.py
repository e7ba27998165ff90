"""Every fact about a dataset, once: splits, label names, counts, crop geometry, display name.

A dataset is what a data builder writes (`python -m data build <name>`) or the synthetic faces
render under the same name; a task (`tasks.TASKS`) names the dataset it reads, and one dataset may
serve several tasks (LaPa: parsing and its 106 landmarks). Nothing here imports the rest of the
package: the task files, the metrics, the report and the synthetic faces read it.
"""

import dataclasses


@dataclasses.dataclass(frozen=True, kw_only=True)
class Dataset:
    """display: the paper's name; train/test: split names of the built dataset ("" = none);
    labels: class names of its parsing masks / expression ids / attributes (index = class id);
    identities: recognition classes; landmarks: points per face (0 = none); scale_mu: face
    scale in a landmark crop; warp: tanh-warp of its aligned crops (0 = plain similarity);
    protocol: its landmark evaluation protocol (`landmark_metrics.PROTOCOLS`); verification:
    a face-verification test set (image pairs) of the recognition task."""

    display: str
    train: str = "train"
    test: str = "test"
    labels: tuple[str, ...] = ()
    identities: int = 0
    landmarks: int = 0
    scale_mu: float = 1.0
    warp: float = 0.0
    protocol: str = ""
    verification: bool = False
    built: str = ""  # where `python -m data build` writes it under data_dir ("" = its name)


CELEBAMASK_HQ_LABELS = (
    "background", "neck", "face", "cloth", "rr", "lr", "rb", "lb", "re", "le",
    "nose", "imouth", "llip", "ulip", "hair", "glass", "hat", "earr", "neckl",
)  # fmt: skip
LAPA_LABELS = (
    "background", "face_lr_rr", "lb", "rb", "le", "re", "nose", "ul", "im", "ll", "hair",
)  # fmt: skip
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip
EXPRESSIONS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger")  # AffectNet ids
# RAF-DB's own label order (label.txt's 1..7, minus 1): SwinFace's expression outputs
RAFDB_ORDER = ("surprise", "fear", "disgust", "happy", "sad", "anger", "neutral")


def _pairs(display: str, name: str) -> Dataset:
    return Dataset(display=display, train="", verification=True, built=f"verification/{name}")


# name (data/<name>, TFDS name, synthetic view) -> its facts; verification sets in the paper's order
DATASETS: dict[str, Dataset] = {
    "ms1mv3": Dataset(display="MS1MV3", test="", identities=93431),
    "lfw": _pairs("LFW", "lfw"),
    "cfp_fp": _pairs("CFP-FP", "cfp_fp"),
    "agedb_30": _pairs("AgeDB-30", "agedb_30"),
    "calfw": _pairs("CALFW", "calfw"),
    "cplfw": _pairs("CPLFW", "cplfw"),
    "mlfw": _pairs("MLFW", "mlfw"),
    "morph2": Dataset(display="MORPH II"),
    "utkface": Dataset(display="UTKFace"),
    "celeba": Dataset(display="CelebA", labels=CELEBA_ATTRIBUTES),
    "affectnet": Dataset(display="AffectNet", labels=EXPRESSIONS),
    "rafdb": Dataset(display="RAF-DB", labels=EXPRESSIONS),
    "ferplus": Dataset(display="FERPlus", labels=EXPRESSIONS),
    "celebamask_hq": Dataset(display="CelebAMask-HQ", labels=CELEBAMASK_HQ_LABELS),
    "lapa": Dataset(display="LaPa", labels=LAPA_LABELS, landmarks=106, warp=0.8, protocol="lapa"),
    "ibug300w": Dataset(
        display="300W", test="valid_challenge", landmarks=68, scale_mu=0.8, protocol="300w"
    ),
    "cofw": Dataset(display="COFW", landmarks=29, scale_mu=0.8, protocol="cofw"),
    "wflw": Dataset(display="WFLW", test="test_blur", landmarks=98, scale_mu=0.8, protocol="wflw"),
    "aflw19": Dataset(display="AFLW-19", test="test_frontal", landmarks=19, protocol="aflw"),
    "ms1mv2": Dataset(display="MS1MV2", test="", identities=85742),
    "clap2015": Dataset(display="CLAP2015"),  # also built: val (the original's evaluated split)
    "adience": Dataset(display="Adience", train="fold_0+fold_1+fold_2+fold_3+fold_4", test=""),
    "imdb": Dataset(display="IMDB", test="", built="imdb_wiki/imdb"),
    "wiki": Dataset(display="WIKI", test="", built="imdb_wiki/wiki"),
    "fgnet": Dataset(display="FG-NET", train=""),
    "ijbc": Dataset(display="IJB-C", train="", built="ijbc/faces"),  # 1:1 templates, with:
    "ijbc_pairs": Dataset(display="IJB-C pairs", train="", built="ijbc/pairs"),  # template pairs
}
VERIFICATION_SETS: tuple[str, ...] = tuple(n for n, d in DATASETS.items() if d.verification)


def get(name: str) -> Dataset:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[name]


def built_path(name: str) -> str:
    """The built dataset's folder under data_dir (a builder config writes `<builder>/<config>`)."""
    return get(name).built or name


def split(name: str, which: str) -> str:
    """The built dataset's split name for `which` ("train" or "test")."""
    d = get(name)
    return d.train if which == "train" else d.test


def display(name: str) -> str:
    """A dataset or landmark-protocol name as the paper writes it ('aflw' -> 'AFLW-19')."""
    if name in DATASETS:
        return DATASETS[name].display
    by_protocol = {d.protocol: d.display for d in DATASETS.values() if d.protocol}
    return by_protocol.get(name, name)
