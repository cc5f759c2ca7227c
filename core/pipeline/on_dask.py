"""Sharded fitting on a Dask cluster (the optional extra `lablr[dask]`).

Dask's `distributed` runs on what people already operate (SSH hosts, Kubernetes, HPC batch
systems through dask-jobqueue, a laptop's cores) and is a plain Python client: each shard is
one task, `lablr.core.pipeline.shard.fit_shard`, on whichever worker is free. The workers need
Lablr installed and the catalog, its images and the model at the same paths (shared storage);
each sends its part's files back to this process, which writes them under OUT.parts/ and
merges them. Nothing is unpickled here that the cluster did not compute from our own function.
"""

import tempfile
from pathlib import Path

from lablr.core.bundle import check_out
from lablr.core.data.selection import Rules
from lablr.core.errors import LablrError
from lablr.core.files import atomic_directory
from lablr.core.pipeline.shard import PART_IN_WORDS, is_part, merge, model_reference


def fit_on_dask(scheduler, model_name, catalog_path, out, shards=None, *, rules: Rules | None = None, source=None):
    """Fit `shards` parts on the cluster (default: one per worker), write them under OUT.parts/, merge."""
    check_out(out)
    parts = fit_parts_on_dask(scheduler, model_name, catalog_path, Path(f"{out}.parts"), shards, rules=rules,
                              source=source)
    return merge(parts, out)


def fit_parts_on_dask(scheduler, model_name, catalog_path, parts_dir, shards=None, *, rules: Rules | None = None,
                      source=None):
    """The part directories parts_dir/part-I, each fitted by a task on the cluster."""
    distributed = _import_distributed()
    from lablr.core.bundle import resolve

    model = model_reference(resolve(model_name))  # a bundled model by name: it lives elsewhere on each worker
    client = scheduler if isinstance(scheduler, distributed.Client) else _connect(distributed, scheduler)
    try:
        shards = shards or len(client.scheduler_info()["workers"])
        futures = [client.submit(_fit_part, model, str(Path(catalog_path).resolve()), (index, shards),
                                 rules.as_dict() if rules else None, source, pure=False, key=f"lablr-shard-{index}-of-{shards}")
                   for index in range(shards)]
        return [_write_files(Path(parts_dir) / f"part-{index}", files)
                for index, files in (future.result() for future in futures)]
    finally:
        if client is not scheduler:
            client.close()


def _fit_part(model, catalog_path, shard, rules, source):
    """On a worker: fit one shard into a scratch folder; (index, {file name: bytes})."""
    from lablr.core.pipeline.shard import fit_shard

    with tempfile.TemporaryDirectory(prefix="lablr-part-") as scratch:
        part = Path(scratch) / "part"
        fit_shard(model, catalog_path, part, shard, rules=Rules.from_dict(rules) if rules else None, source=source)
        return shard[0], {p.name: p.read_bytes() for p in part.iterdir()}


def _write_files(directory: Path, files: dict) -> Path:
    with atomic_directory(directory, PART_IN_WORDS, is_part) as partial:
        for name, data in files.items():
            (partial / Path(name).name).write_bytes(data)
    return directory


def _connect(distributed, address):
    """A client of the scheduler; it waits as long as Dask's distributed.comm.timeouts.connect says."""
    try:
        return distributed.Client(address)
    except (OSError, ValueError) as error:
        raise LablrError(f"Cannot reach the Dask scheduler at {address}: {error}") from None


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise LablrError("Fitting on Dask needs its optional extra: pip install 'lablr[dask]'.") from None
    return distributed
