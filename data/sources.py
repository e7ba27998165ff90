"""The data a config asks for: `(dataset, split, image size) -> random-access source`."""

from faceptor_jax.errors import ConfigError


def make_sources(config):
    """(dataset, split, image size) -> random-access source, synthetic or built TFDS."""
    from faceptor_jax import datasets, input_pipeline

    data = config.data
    if data.source == "synthetic":
        from data.synthetic_faces.source import SyntheticFaces

        def synthetic(dataset: str, split: str, size: int):
            length = data.synthetic_length if split == "train" else data.synthetic_test_length
            return SyntheticFaces(
                dataset, split, length=length, num_identities=data.synthetic_identities,
                size=size, cache=bool(data.get("synthetic_cache", False)),
            )  # fmt: skip

        return synthetic
    if data.source == "tfds":
        if not data.data_dir:
            raise ConfigError("config.data.source='tfds' needs --config.data.data_dir")

        def built(dataset: str, split: str, size: int):
            path = datasets.built_path(dataset)
            return input_pipeline.open_tfds(data.data_dir, path, datasets.split(dataset, split))

        return built
    raise ConfigError(f"config.data.source {data.source!r}: expected 'synthetic' or 'tfds'")
