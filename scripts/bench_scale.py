"""Sharded fitting on a local Dask cluster: features per second with 1 and with 2 workers.

    python scripts/bench_scale.py [--photos 1500] [--model openclipart-effnet] [--repeats 3]

Needs the extra `lablr[dask]`. Copies
`--photos` OpenClipart photos (the evaluation catalog in ~/.cache/lablr, imported by
`lablr evaluate` or `lablr import openclipart`) into a scratch catalog, decodes them once (as
`lablr prepare` would), then times the shards of `lablr fit --dask`: sent to the workers, each
loads the model, encodes its photos with the bundle's encoder (a *feature* is one photo's
latent vector) and sums its tag statistics, and the parts come back. The merge, a fixed cost
whatever the number of photos, is timed apart, and so is a merge of parts the size of 1,000
tags in 64 dimensions (docs/scale.md's estimate). One shard per worker; each worker process is
held to one thread (TensorFlow's and BLAS' own pools), so the ratio shows what a second worker
adds, not TensorFlow spreading one process over both cores. Runs alternate (1, 2, 1, 2, ...)
so a neighbour's load hits both; the median of each is reported, with the load average.
"""

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def scratch_catalog(directory: Path, photos: int) -> Path:
    from lablr.core import defaults
    from lablr.core.data.catalog import Catalog
    from lablr.core.parts import PhotoRecord

    source = defaults.cache_dir() / "openclipart.db"
    if not source.exists():
        sys.exit(f"No OpenClipart catalog at {source}: run `lablr import openclipart --catalog {source}` first.")
    chosen = Catalog(source).photos()[:photos]
    catalog = directory / "bench.db"
    Catalog(catalog).add((PhotoRecord(key=p["key"], path=p["path"], tags=p["tags"], owner=p["owner"])
                          for p in chosen), "openclipart")
    return catalog


def timed_fit(cluster, model, catalog, out, rules):
    """(features, seconds for the shards on the cluster, seconds to merge their parts)."""
    from lablr.core.pipeline.on_dask import fit_parts_on_dask
    from lablr.core.pipeline.shard import merge, read_part

    workers = len(cluster.scheduler_info["workers"])
    start = time.perf_counter()
    parts = fit_parts_on_dask(cluster.scheduler_address, model, catalog, Path(f"{out}.parts"), workers, rules=rules)
    fitted = time.perf_counter()
    merge(parts, out)
    merged = time.perf_counter()
    records = [read_part(part) for part in parts]
    for record in records:
        spent = record["seconds"]
        print(f"    shard {record['shard'][0]}/{workers}: {record['photos']} photos; load the model "
              f"{spent['load']:.2f} s, select and encode {spent['select_and_encode']:.2f} s, "
              f"statistics {spent['statistics']:.3f} s", flush=True)
    return sum(m["photos"] for m in records), fitted - start, merged - fitted


def merge_at_scale(tags=1000, dim=64, parts=4, photos=2000):
    """Seconds to write one part, to read and add one part, and to factorise the merged model, for
    parts of `tags` x `dim` statistics (random latents: the sums cost the same whatever they hold)."""
    import numpy as np

    from lablr.plugins.gaussian import FILE, GaussianTagModel

    rng = np.random.default_rng(0)
    vocabulary = [f"tag{k}" for k in range(tags)]
    with tempfile.TemporaryDirectory(prefix="lablr-bench-merge-") as scratch:
        directories, writes = [], []
        for i in range(parts):
            photo_tags = [[vocabulary[k] for k in rng.choice(tags, 5, replace=False)] for _ in range(photos)]
            model = GaussianTagModel().fit(rng.normal(size=(photos, dim)), photo_tags, vocabulary)
            directory = Path(scratch) / f"part-{i}"
            directory.mkdir()
            start = time.perf_counter()
            model.save(directory)
            writes.append(time.perf_counter() - start)
            directories.append(directory)
        start = time.perf_counter()
        merged = GaussianTagModel().load(directories[0])
        for directory in directories[1:]:
            merged.merge(GaussianTagModel().load(directory))
        added = time.perf_counter()
        merged.whitening()
        factorised = time.perf_counter()
        size = (directories[0] / FILE).stat().st_size
    return {"bytes": size, "write": statistics.median(writes), "add": (added - start) / parts,
            "factorise": factorised - added}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=1500)
    parser.add_argument("--model", default="openclipart-effnet")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    os.environ.update(ONE_THREAD)
    from distributed import LocalCluster

    from lablr.core.bundle import resolve
    from lablr.core.data.image_cache import prepared_images
    from lablr.core.data.selection import Rules
    from lablr.core.model import Model

    rules = Rules(per_owner_cap=100, min_tag_photos=10, min_train_photos=5)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="lablr-bench-scale-") as scratch:
        catalog = scratch_catalog(Path(scratch), args.photos)
        from lablr.core.data.catalog import Catalog

        size = Model.load(args.model).image_size
        prepared_images(catalog, Catalog(catalog).photos(), size, progress=False)
        model = str(resolve(args.model))
        clusters = {n: LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                    dashboard_address="127.0.0.1:0", env=ONE_THREAD,
                                    silence_logs=logging.CRITICAL) for n in (1, 2)}
        logging.getLogger("distributed").setLevel(logging.CRITICAL)  # a closing cluster's chatter
        try:
            for n, cluster in clusters.items():  # warm-up: TensorFlow imported, the functions traced
                timed_fit(cluster, model, catalog, Path(scratch) / f"warm-{n}", rules)
            rates, merges = {1: [], 2: []}, []
            for repeat in range(args.repeats):
                for n, cluster in clusters.items():
                    features, seconds, merging = timed_fit(cluster, model, catalog, Path(scratch) / f"run-{n}-{repeat}",
                                                           rules)
                    rates[n].append(features / seconds)
                    merges.append(merging)
                    print(f"  {n} worker{'s' if n > 1 else ' '}: {features} features in {seconds:6.2f} s "
                          f"= {features / seconds:7.1f} features/s; merge {merging:.2f} s", flush=True)
        finally:
            for cluster in clusters.values():
                cluster.close()
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"model {args.model} ({size}x{size}), {features} training photos of {args.photos}, "
          f"one shard per worker, 1 thread per worker, median of {args.repeats}")
    print(f"1 worker : {one:8.1f} features/s")
    print(f"2 workers: {two:8.1f} features/s")
    print(f"ratio 2/1: {two / one:8.2f}x")
    print(f"merge (load the model, add the parts' sums, fit the picture, save the bundle): "
          f"{statistics.median(merges):.2f} s median")
    scale = merge_at_scale()
    print(f"parts of 1,000 tags x 64 dims: {scale['bytes'] / 1e6:.1f} MB each (.npz), written in "
          f"{scale['write']:.2f} s, read and added in {scale['add']:.2f} s each; the merged model factorised "
          f"(Cholesky, whitening) in {scale['factorise']:.2f} s")
    print(f"machine: {os.cpu_count()} cores; load average (1, 5, 15 min) before "
          f"{', '.join(f'{x:.2f}' for x in load_before)}, after {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
