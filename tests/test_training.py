"""Training: streamed from disk, resumable after a kill, and reproducible encodings."""

import json
import os
import signal
import subprocess
import time
import tracemalloc

import numpy as np
from conftest import LABLR, TINY_RULES
from PIL import Image

from lablr.core.data.image_cache import ImageSet, prepare


def test_batches_stream_one_shard_at_a_time(tmp_path, monkeypatch):
    import lablr.core.data.image_cache as imageset

    monkeypatch.setattr(imageset, "SHARD_SIZE", 100)
    rng = np.random.default_rng(0)
    files = []
    for i in range(600):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
        files.append({"key": str(i), "path": str(path)})
    images = prepare(files, tmp_path / "set", 32, workers=1, progress=False)
    assert images.count == 600 and len(list((tmp_path / "set").glob("shard-*.npy"))) == 6

    whole = 600 * 32 * 32 * 3
    tracemalloc.start()
    seen = sum(len(batch) for batch in ImageSet(tmp_path / "set").batches(50, seed=1))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seen == 600
    assert peak < whole / 3  # a few batches' worth, never the whole set


def test_broken_images_are_skipped_and_listed(tmp_path):
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.new("RGB", (20, 20), "red").save(good)
    bad.write_bytes(good.read_bytes()[:30])
    images = prepare([{"key": "good", "path": str(good)}, {"key": "bad", "path": str(bad)}], tmp_path / "set", 16,
                     workers=1, progress=False)
    assert images.keys == ["good"] and list(images.broken) == ["bad"]


def test_killed_training_resumes_where_it_stopped(tmp_path, shapes_csv):
    catalog = tmp_path / "c.db"
    subprocess.run(LABLR + ["import", "csv", str(shapes_csv), "--catalog", str(catalog)], check=True,
                   capture_output=True, timeout=120)
    train = LABLR + ["train", "--catalog", str(catalog), "--out", str(tmp_path / "m"), "--image-size", "16",
                    "--latent-dim", "4", "--epochs", "40", "--per-owner-cap", "1000",
                    "--min-tag-photos", str(TINY_RULES["min_tag_photos"]),
                    "--min-train-photos", str(TINY_RULES["min_train_photos"])]
    metadata = tmp_path / "m.work" / "backup" / "training_metadata.json"
    first = subprocess.Popen(train, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None:
        if metadata.exists() and json.loads(metadata.read_text() or "{}").get("epoch", 0) >= 3:
            break
        time.sleep(0.2)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    done = json.loads(metadata.read_text())["epoch"]
    assert 3 <= done < 40, "the first run should have been killed mid-training"
    assert not (tmp_path / "m").exists()

    second = subprocess.run(train, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    epochs = [line for line in (second.stdout + second.stderr).splitlines() if line.startswith("Epoch ")]
    assert epochs[0].startswith(f"Epoch {done + 1}/40") and epochs[-1].startswith("Epoch 40/40")
    assert (tmp_path / "m" / "manifest.json").exists()
