"""Sharded fitting on a real Dask cluster: a scheduler and two worker processes on 127.0.0.1."""

import json

import pytest
from conftest import TINY_RULE_OPTIONS
from distributed import Client, LocalCluster
from test_sharding import assert_same_model, ok


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as local:
        yield local


def test_two_shards_on_a_two_worker_cluster_equal_one_fit(cluster, tiny_bundle, shapes_csv, tmp_path):
    from lablr.core.data.importing import import_source

    workers = cluster.scheduler_info["workers"]
    assert len(workers) == 2 and all(address.startswith("tcp://127.0.0.1:") for address in workers)
    catalog = tmp_path / "fresh.db"  # nothing decoded yet: each worker decodes its own shard's images
    import_source("csv", str(shapes_csv), catalog, progress=False)
    out = tmp_path / "dask-model"
    output = ok("fit", "--model", tiny_bundle, "--catalog", catalog, "--out", out, "--dask", cluster.scheduler_address,
                "--shards", "2", *TINY_RULE_OPTIONS)
    assert f"Saved {out}" in output and f"shards fitted on {cluster.scheduler_address}" in output

    parts = [json.loads((tmp_path / "dask-model.parts" / f"part-{i}" / "part.json").read_text()) for i in range(2)]
    assert [p["shard"] for p in parts] == [[0, 2], [1, 2]]
    with Client(cluster.scheduler_address) as client:
        worker_pids = set(client.run(lambda: __import__("os").getpid()).values())
    assert {p["fitted_by"]["pid"] for p in parts} == worker_pids  # one shard on each worker process
    decoded = sorted(index.parent for index in (tmp_path / "fresh.db.images").glob("*/index.json"))
    assert len(decoded) == 2  # one image set per shard, each with only that shard's photos

    single = tmp_path / "one"
    ok("fit", "--model", tiny_bundle, "--catalog", catalog, "--out", single, *TINY_RULE_OPTIONS)
    assert_same_model(single, out)


def test_an_unreachable_scheduler_fails_in_one_line(tiny_bundle, tmp_path):
    import dask
    from test_sharding import lablr

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code, output = lablr("fit", "--model", tiny_bundle, "--catalog", tiny_bundle.parent / "catalog.db",
                             "--out", tmp_path / "m", "--dask", "tcp://127.0.0.1:9", *TINY_RULE_OPTIONS)
    assert code == 1 and "Cannot reach the Dask scheduler at tcp://127.0.0.1:9" in output, output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output
