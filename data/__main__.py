"""`python -m data build <name>[/<config>] --manual_dir DIR --data_dir DIR` (no TensorFlow).

Builds one dataset from its official manual download into ArrayRecord under data_dir/<name>/.
`python -m data list` prints the buildable names."""

from __future__ import annotations

import argparse
import os
import sys

import tensorflow_datasets as tfds

from data.adience.adience_dataset_builder import Adience
from data.affectnet.affectnet_dataset_builder import Affectnet
from data.aflw19.aflw19_dataset_builder import Aflw19
from data.celeba.celeba_dataset_builder import Celeba
from data.celebamask_hq.celebamask_hq_dataset_builder import CelebamaskHq
from data.clap2015.clap2015_dataset_builder import Clap2015
from data.cofw.cofw_dataset_builder import Cofw
from data.ferplus.ferplus_dataset_builder import Ferplus
from data.fgnet.fgnet_dataset_builder import Fgnet
from data.ibug300w.ibug300w_dataset_builder import Ibug300w
from data.ijbc.ijbc_dataset_builder import Ijbc
from data.imdb_wiki.imdb_wiki_dataset_builder import ImdbWiki
from data.lapa.lapa_dataset_builder import Lapa
from data.morph2.morph2_dataset_builder import Morph2
from data.ms1mv2.ms1mv2_dataset_builder import Ms1mv2
from data.ms1mv3.ms1mv3_dataset_builder import Ms1mv3
from data.rafdb.rafdb_dataset_builder import Rafdb
from data.synthetic_faces.synthetic_faces_dataset_builder import SyntheticFaces
from data.utkface.utkface_dataset_builder import Utkface
from data.verification.verification_dataset_builder import Verification
from data.wflw.wflw_dataset_builder import Wflw
from faceptor_jax import errors

BUILDERS = {
    "ms1mv3": Ms1mv3,
    "verification": Verification,
    "morph2": Morph2,
    "utkface": Utkface,
    "celeba": Celeba,
    "affectnet": Affectnet,
    "rafdb": Rafdb,
    "ferplus": Ferplus,
    "celebamask_hq": CelebamaskHq,
    "lapa": Lapa,
    "ibug300w": Ibug300w,
    "cofw": Cofw,
    "wflw": Wflw,
    "aflw19": Aflw19,
    "synthetic_faces": SyntheticFaces,
    "ms1mv2": Ms1mv2,
    "ijbc": Ijbc,
    "clap2015": Clap2015,
    "adience": Adience,
    "imdb_wiki": ImdbWiki,
    "fgnet": Fgnet,
}


def build(name: str, data_dir: str, manual_dir: str | None = None, **config_kwargs):
    """Build `name` (or `name/config`) and return the builder (for `as_data_source`)."""
    base, _, config = name.partition("/")
    if base not in BUILDERS:
        raise errors.DataError(f"unknown dataset {base!r}; valid: {', '.join(BUILDERS)}")
    cls = BUILDERS[base]
    if cls.BUILDER_CONFIGS and not config:
        names = [c.name for c in cls.BUILDER_CONFIGS]
        raise errors.DataError(f"{base} needs a config: {base}/<config>, one of {names}")
    kwargs = {"config": config} if config else {}
    if config and config_kwargs:  # e.g. synthetic sizes: a new config name, same target
        cfg = next(c for c in cls.BUILDER_CONFIGS if c.name == config)
        suffix = "_".join(f"{k}{v}" for k, v in sorted(config_kwargs.items()))
        custom = type(cfg)(name=f"{config}_{suffix}", dataset=config, **config_kwargs)
        kwargs = {"config": custom}
    if base != "synthetic_faces" and not manual_dir:
        raise errors.DataError(f"{base}: --manual_dir (the official download) is required")
    if manual_dir and not os.path.isdir(manual_dir):
        raise errors.DataError(f"--manual_dir {manual_dir}: no such folder (the official download)")
    builder = cls(data_dir=data_dir, file_format="array_record", **kwargs)
    dl_config = tfds.download.DownloadConfig(manual_dir=manual_dir and os.fspath(manual_dir))
    builder.download_and_prepare(download_config=dl_config)
    return builder


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m data")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build one dataset into ArrayRecord")
    b.add_argument("name", help="dataset name, e.g. morph2, verification/lfw, synthetic_faces/wflw")
    b.add_argument("--manual_dir", help="directory holding the official download")
    b.add_argument("--data_dir", required=True, help="output root (TFDS data_dir)")
    sub.add_parser("list", help="list the buildable datasets")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, cls in BUILDERS.items():
            configs = [c.name for c in cls.BUILDER_CONFIGS]
            print(name + (f"  configs: {', '.join(configs)}" if configs else ""))
        return 0
    try:
        builder = build(args.name, args.data_dir, args.manual_dir)
    except errors.user_errors() as e:  # a missing download folder, an unknown dataset
        return errors.report("python -m data", e)
    for split, info in builder.info.splits.items():
        print(f"{args.name}/{split}: {info.num_examples} examples -> {builder.data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
