"""Measure the Flickr pipeline on a small run against the fake Flickr, and scale it up.

    .venv/bin/python scripts/measure_flickr.py [--photos-per-kind 40] [--epochs 2]

Serves photo-like 500x375 JPEGs (Flickr's url_m size) from tests/fake_flickr.py on 127.0.0.1,
then times `lablr fetch`, `lablr prepare --size 64` and `lablr train` (default model settings)
and prints per-photo figures with their extrapolation to 45 tags x 2,000 photos. The network
cannot be measured here (no Flickr): download time is per-photo overhead on loopback only.
"""

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fake_flickr import FakeFlickr, make_photos  # noqa: E402

FULL_PHOTOS = 45 * 2000


class PhotoLikeFlickr(FakeFlickr):
    """Serves 500x375 JPEGs with texture and noise, so their size is like real photos'."""

    TEXTURES = 64  # distinct images, shared by many photos: the timing is the pipeline's, not the fake's

    def _jpeg(self, photo):
        texture = photo.seed % self.TEXTURES
        if texture not in self._jpegs:
            rng = np.random.default_rng(texture)
            base = rng.integers(0, 255, (47, 63, 3), dtype=np.uint8)
            image = Image.fromarray(base).resize((500, 375), Image.Resampling.BICUBIC)
            noise = rng.normal(0, 18, (375, 500, 3))
            image = Image.fromarray(np.clip(np.asarray(image, float) + noise, 0, 255).astype(np.uint8))
            image = image.filter(ImageFilter.GaussianBlur(0.6))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=85)
            self._jpegs[texture] = buffer.getvalue()
        return self._jpegs[texture]


def du(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos-per-kind", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    fake = PhotoLikeFlickr(photos=make_photos(per_kind=args.photos_per_kind, owners=40)).start()
    work = Path(tempfile.mkdtemp(prefix="lablr-measure-"))
    catalog = work / "flickr.db"
    env = {**os.environ, **fake.env(), "XDG_CONFIG_HOME": str(work / "config")}
    lablr = [sys.executable, "-m", "lablr.core.cli"]
    timings = {}

    def run(name, *command):
        started = time.perf_counter()
        subprocess.run([*lablr, *command], env=env, check=True, stdout=subprocess.DEVNULL)
        timings[name] = time.perf_counter() - started

    try:
        n = len(fake.photos)
        for photo in fake.photos[:PhotoLikeFlickr.TEXTURES * 4]:
            fake._jpeg(photo)
        run("fetch", "fetch", "--tags", "red,green,blue", "--per-tag", "2000", "--catalog", str(catalog),
            "--calls-per-hour", "1e9", "--quiet")
        run("prepare", "prepare", "--catalog", str(catalog), "--size", "64", "--quiet", "--min-tag-photos", "5",
            "--min-train-photos", "3")
        for name, epochs in (("train1", 1), ("train", 1 + args.epochs)):
            run(name, "train", "--catalog", str(catalog), "--out", str(work / name), "--epochs", str(epochs),
                "--source", "flickr", "--split-by-owner", "--stop-tags", "default", "--min-tag-photos", "5",
                "--min-train-photos", "3")
        epoch = (timings["train"] - timings["train1"]) / args.epochs
        images, shards = du(f"{catalog}.flickr"), du(f"{catalog}.images")
        print(f"{n} photos of 500x375, {args.epochs} epochs, {os.cpu_count()} CPUs")
        print(f"fetch (loopback): {timings['fetch']:.1f} s, {1000 * timings['fetch'] / n:.1f} ms a photo")
        print(f"images: {images / n / 1e3:.1f} kB a photo; catalog {catalog.stat().st_size / n:.0f} B a photo")
        print(f"prepare --size 64: {timings['prepare']:.1f} s, {1000 * timings['prepare'] / n:.2f} ms a photo; "
              f"shards {shards / n / 1e3:.1f} kB a photo")
        print(f"train: {timings['train1']:.1f} s for 1 epoch, {timings['train']:.1f} s for {1 + args.epochs}: "
              f"{epoch:.1f} s an epoch, {1000 * epoch / n:.2f} ms a photo an epoch (80% train)")
        print(f"Scaled to {FULL_PHOTOS} photos: images {images / n * FULL_PHOTOS / 1e9:.1f} GB (at this JPEG size), "
              f"shards {shards / n * FULL_PHOTOS / 1e9:.2f} GB, prepare {timings['prepare'] / n * FULL_PHOTOS / 60:.0f} min, "
              f"an epoch {epoch / n * FULL_PHOTOS / 60:.0f} min, 30 epochs {30 * epoch / n * FULL_PHOTOS / 3600:.1f} h")
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
