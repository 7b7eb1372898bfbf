"""milvus-harness: reproduce Milvus memory blow-ups on demand, judge them, bisect them."""

__version__ = "0.1.0"

#: The distributions whose versions shape a run's figures, as run.json and --version name them.
RECORDED_DISTRIBUTIONS = ("pymilvus", "locust", "grpcio")


def software_versions() -> dict[str, str | None]:
    """The harness's version and those of pymilvus, Locust and grpcio, read from the installed
    distributions' metadata (importing Locust here would monkey-patch this process)."""
    from importlib import metadata

    versions: dict[str, str | None] = {"milvus-harness": __version__}
    for name in RECORDED_DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
