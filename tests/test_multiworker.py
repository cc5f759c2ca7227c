"""Multi-worker VAE training: two real worker processes of one MultiWorkerMirroredStrategy job on 127.0.0.1."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import LABLR, TINY_RULES

from lablr.core.errors import LablrError
from lablr.core.pipeline.multiworker import Role, role, worker_part

EPOCHS = 4


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_config(addresses, index):
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


@pytest.fixture
def prepared_catalog(tmp_path, shapes_csv):
    catalog = tmp_path / "c.db"
    subprocess.run(LABLR + ["import", "csv", str(shapes_csv), "--catalog", str(catalog)], check=True,
                   capture_output=True, timeout=120)
    subprocess.run(LABLR + ["prepare", "--catalog", str(catalog), "--size", "16", "-q"], check=True,
                   capture_output=True, timeout=120)
    return catalog


def start_workers(catalog, out, epochs=EPOCHS):
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    command = [sys.executable, "-m", "lablr.core.cli", "train", "--catalog", str(catalog), "--out", str(out),
               "--image-size", "16", "--latent-dim", "4", "--epochs", str(epochs), "--per-owner-cap", "1000",
               "--min-tag-photos", str(TINY_RULES["min_tag_photos"]),
               "--min-train-photos", str(TINY_RULES["min_train_photos"])]
    return [subprocess.Popen(command, env={**os.environ, "TF_CONFIG": tf_config(addresses, index),
                                           "CUDA_VISIBLE_DEVICES": ""},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for index in range(2)]


def finish(workers, timeout=300):
    outputs = []
    for worker in workers:
        output, _ = worker.communicate(timeout=timeout)
        outputs.append(output)
        assert worker.returncode == 0, output[-3000:]
    return outputs


def test_two_workers_train_one_bundle_that_loads(prepared_catalog, tmp_path):
    from lablr.core.model import Model

    out = tmp_path / "m"
    chief, other = finish(start_workers(prepared_catalog, out))
    for index, output in enumerate([chief, other]):
        epochs = [line for line in output.splitlines() if line.startswith("Epoch ")]
        assert [line.split(" - ")[:2] for line in epochs] == [
            [f"Epoch {e}/{EPOCHS}", f"worker {index} of 2"] for e in range(1, EPOCHS + 1)]
    reads = [re.search(r"Worker (\d) of 2 reads (\d+) of (\d+) training images", output).groups()
             for output in (chief, other)]
    assert [r[0] for r in reads] == ["0", "1"] and reads[0][2] == reads[1][2]
    assert int(reads[0][1]) + int(reads[1][1]) == int(reads[0][2]) and min(int(r[1]) for r in reads) > 0
    assert f"Saved {out}" in chief and "Saved" not in other
    assert "the chief evaluates and writes the bundle" in other
    siblings = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".m", "m")))
    assert siblings == ["m", "m.work"]  # one bundle, no partial or second copy beside it
    assert sorted(p.name for p in (out.parent / "m.work").iterdir()) == ["checkpoints", "multiworker-run.json"]

    model = Model.load(out)
    assert model.part_names["encoder"] == "vae" and set(model.tag_model.tags) == {
        "red", "green", "blue", "circle", "square", "triangle"}
    images = np.random.default_rng(0).integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)
    assert [len(found) for found in model.suggest(images, 3)] == [3, 3]


def test_a_killed_job_resumes_from_the_last_checkpoint(prepared_catalog, tmp_path):
    out, epochs = tmp_path / "m", 30
    workers = start_workers(prepared_catalog, out, epochs)
    checkpoints = tmp_path / "m.work" / "checkpoints"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and all(w.poll() is None for w in workers):
        if len(list(checkpoints.glob("ckpt-*.index"))) >= 2:
            break
        time.sleep(0.2)
    os.kill(workers[1].pid, signal.SIGKILL)  # a worker dies; the job cannot go on without it
    os.kill(workers[0].pid, signal.SIGKILL)
    for worker in workers:
        worker.communicate(timeout=30)
    saved = sorted(int(p.stem.split("-")[1]) for p in checkpoints.glob("ckpt-*.index"))
    assert saved and 2 <= saved[-1] < epochs, "the job should have been killed mid-training"
    assert not out.exists()

    chief, other = finish(start_workers(prepared_catalog, out, epochs))
    for output in chief, other:
        first = next(line for line in output.splitlines() if line.startswith(("Epoch ", "Resuming")))
        assert first.startswith("Resuming from the checkpoint after epoch ")
        resumed = int(first.rsplit(" ", 1)[1].rstrip("."))
        assert resumed >= saved[-1]  # the chief may have saved once more before it was killed
        epoch_lines = [line for line in output.splitlines() if line.startswith("Epoch ")]
        assert epoch_lines[0].startswith(f"Epoch {resumed + 1}/{epochs}")
        assert epoch_lines[-1].startswith(f"Epoch {epochs}/{epochs}")
    assert (out / "manifest.json").exists()


def test_workers_need_prepared_images(tmp_path, shapes_csv, monkeypatch):
    from click.testing import CliRunner

    from lablr.core.cli import cli
    from lablr.core.data.importing import import_source

    catalog = tmp_path / "c.db"
    import_source("csv", str(shapes_csv), catalog, progress=False)
    monkeypatch.setenv("TF_CONFIG", tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1))
    result = CliRunner().invoke(cli, ["train", "--catalog", str(catalog), "--out", str(tmp_path / "m"),
                                      "--image-size", "16", "--per-owner-cap", "1000", "--min-tag-photos", "5",
                                      "--min-train-photos", "3"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"run `lablr prepare --catalog {catalog} --size 16` first" in result.output
    assert not (tmp_path / "c.db.images").exists()  # no worker decoded anything


def test_tf_config_names_the_chief_and_refuses_nonsense():
    two = {"cluster": {"worker": ["a:1", "b:2"]}}
    assert role({"TF_CONFIG": json.dumps({**two, "task": {"type": "worker", "index": 1}})}) == Role(1, 2, False)
    assert role({"TF_CONFIG": json.dumps({**two, "task": {"type": "worker", "index": 0}})}) == Role(0, 2, True)
    with_chief = {"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}
    assert role({"TF_CONFIG": json.dumps(with_chief)}) == Role(1, 2, False)
    assert role({}) is None
    for bad in ["{", "[]", json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}})]:
        with pytest.raises(LablrError, match="TF_CONFIG"):
            role({"TF_CONFIG": bad})
    whole = json.dumps(with_chief)
    for length in range(1, len(whole)):  # cut short anywhere: a clear error, never another exception
        with pytest.raises(LablrError, match="TF_CONFIG"):
            role({"TF_CONFIG": whole[:length]})


def test_each_worker_reads_its_own_block(tmp_path):
    from PIL import Image

    from lablr.core.data.image_cache import prepare

    files = []
    for i in range(7):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (8, 8), (i * 30, 0, 0)).save(path)
        files.append({"key": f"k{i}", "path": str(path)})
    images = prepare(files, tmp_path / "set", 8, workers=1, progress=False)
    parts = [worker_part(images, i, 3).keys for i in range(3)]
    assert sum(parts, []) == images.keys and all(parts)
    with pytest.raises(LablrError, match="cannot be shared"):
        worker_part(images, 0, 8)
