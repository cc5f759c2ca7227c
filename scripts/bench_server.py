"""How fast the Lablr server answers, against the original Lablr's way, in the same run.

    python scripts/bench_server.py                  # the default bundle, if it is installed
    python scripts/bench_server.py --model PATH     # any bundle
    python scripts/bench_server.py --stand-in       # a stand-in with the default architecture

For a 1024x768 and a 6000x4000 JPEG, at concurrency 1 and 8, it measures latency (p50, p99)
and requests per second of POST /api/v1/suggest against a real `lablr serve` on 127.0.0.1,
and the same photos through the original's path in this process: a full decode, a resize, the
same encoder, and a Python loop calling scikit-learn's EmpiricalCovariance.mahalanobis per tag.
The original's figures leave out HTTP, so the ratios are, if anything, unfair to the server.

The stand-in (used when no bundle is given and the default one is not installed) has the
default bundle's shape, a 64x64 VAE with a 32-d latent space (trained for one epoch on noise)
and 45 tags with Gaussian statistics: speed does not depend on what the weights learned.
"""

import argparse
import io
import os
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the helper that runs `lablr serve` on a free port

from lablr.core import defaults  # noqa: E402
from lablr.core.bundle import bundled_root  # noqa: E402
from lablr.plugins.flickr.defaults import TAGS as FLICKR_TAGS  # noqa: E402

SIZES = ((1024, 768), (6000, 4000))
CONCURRENCY = (1, 8)
TARGETS = {"p50_ms": {(1024, 768): 30, (6000, 4000): 150}, "rps_at_8": 50}


# -- inputs ---------------------------------------------------------------------------------------


def photo_jpeg(width, height, seed=0) -> bytes:
    """A photo-like JPEG (smooth shapes, texture and sensor noise; quality 90), made here."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    small = Image.new("RGB", (width // 8, height // 8), tuple(int(c) for c in rng.integers(60, 200, 3)))
    draw = ImageDraw.Draw(small)
    for _ in range(40):
        x, y = rng.integers(0, small.width), rng.integers(0, small.height)
        r = int(rng.integers(10, max(11, small.width // 4)))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    image = small.filter(ImageFilter.GaussianBlur(3)).resize((width, height), Image.Resampling.BILINEAR)
    noisy = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, (height, width, 1), dtype=np.int16)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


class NoiseImages:
    """A few batches of noise images: enough to build (not to teach) an encoder."""

    def __init__(self, count, image_size):
        self.count, self.image_size = count, image_size

    def batches(self, batch_size, *, seed=None):
        rng = np.random.default_rng(seed)
        for start in range(0, self.count, batch_size):
            n = min(batch_size, self.count - start)
            yield rng.integers(0, 256, (n, self.image_size, self.image_size, 3), dtype=np.uint8)


def stand_in_model(directory: Path, tags=FLICKR_TAGS) -> Path:
    from lablr.core.bundle import Manifest, PartSpec
    from lablr.core.model import Model
    from lablr.core.plugins import get_part

    encoder = get_part("encoder", "vae")(image_size=defaults.IMAGE_SIZE, latent_dim=defaults.LATENT_DIM)
    encoder.fit(NoiseImages(128, defaults.IMAGE_SIZE), work_dir=directory / "work", epochs=1, verbose=0)
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(40 * len(tags), defaults.LATENT_DIM))
    photo_tags = [[tags[i % len(tags)], tags[int(rng.integers(len(tags)))]] for i in range(len(latents))]
    latents += np.array([zlib.crc32(t[0].encode()) % 7 for t in photo_tags])[:, None] * 0.3
    tag_model = get_part("tag_model", "gaussian")().fit(latents, photo_tags, list(tags))
    picture = get_part("visualizer", "pca")().fit(tag_model)
    manifest = Manifest(parts={kind: PartSpec(name) for kind, name in defaults.DEFAULT_PARTS.items()}, name="stand-in")
    model = Model({"encoder": encoder, "tag_model": tag_model, "visualizer": picture}, manifest)
    return model.save(directory / "stand-in")


# -- the original Lablr's path ----------------------------------------------------------------------


class OriginalPath:
    """Full decode, resize, encode, then one scikit-learn call per tag, as the original did."""

    def __init__(self, model):
        from sklearn.covariance import EmpiricalCovariance

        self.model = model
        self.per_tag = []
        for mean, covariance in zip(model.tag_model.centroids(), model.tag_model.covariances()):
            estimator = EmpiricalCovariance()
            estimator._set_covariance(covariance)  # the same Gaussians the server scores with
            estimator.location_ = mean
            self.per_tag.append(estimator)

    def __call__(self, data: bytes, k=defaults.DEFAULT_K):
        from PIL import Image

        size = self.model.image_size
        image = Image.open(io.BytesIO(data)).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        latent = self.model.encode(np.asarray(image, dtype=np.uint8)[None])
        squared = np.array([estimator.mahalanobis(latent)[0] for estimator in self.per_tag])
        order = np.argsort(squared)[:k]
        return [(self.model.tag_model.tags[i], float(np.sqrt(squared[i]))) for i in order]


# -- measuring ----------------------------------------------------------------------------------------


def measure(call, requests, concurrency, make_worker_state=lambda: None):
    """Run `requests` calls over `concurrency` threads: (latencies in ms, requests per second)."""
    remaining = iter(range(requests))
    lock = threading.Lock()
    latencies = []

    def worker():
        state = make_worker_state()
        while True:
            with lock:
                if next(remaining, None) is None:
                    break
            started = time.perf_counter()
            call(state)
            elapsed = 1000 * (time.perf_counter() - started)
            with lock:
                latencies.append(elapsed)
        if hasattr(state, "close"):
            state.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, requests / (time.perf_counter() - started)


def percentile(values, q):
    return float(np.percentile(values, q))


def row(name, size, concurrency, latencies, rps):
    return {"path": name, "photo": f"{size[0]}x{size[1]}", "size": size, "concurrency": concurrency,
            "p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "rps": rps, "n": len(latencies)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="A bundle path or name (default: the bundled model, else --stand-in).")
    parser.add_argument("--stand-in", action="store_true", help="Build and use a stand-in bundle.")
    parser.add_argument("--requests", type=int, default=200, help="Requests per run for the 1024x768 photo.")
    parser.add_argument("--big-requests", type=int, default=48, help="Requests per run for the 6000x4000 photo.")
    parser.add_argument("--workers", type=int, default=1, help="Server worker processes.")
    args = parser.parse_args()

    import httpx

    from lablr.core.model import Model
    from lablr_server import running_server

    scratch = tempfile.TemporaryDirectory(prefix="lablr-bench-")
    if args.stand_in or (args.model is None and not (bundled_root() / defaults.DEFAULT_MODEL).exists()):
        print("Building a stand-in bundle (64x64 VAE, 32-d latent, 45 tags)...", flush=True)
        model_path = stand_in_model(Path(scratch.name))
    else:
        model_path = args.model or defaults.DEFAULT_MODEL
    model = Model.load(model_path)
    print(f"Model {model.name}: {len(model.tag_model.tags)} tags, {model.image_size}x{model.image_size} images, "
          f"latent {model.tag_model.centroids().shape[1]}; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} (other work on the machine slows both paths)", flush=True)
    photos = {size: photo_jpeg(*size) for size in SIZES}
    for size, data in photos.items():
        print(f"Photo {size[0]}x{size[1]}: {len(data) / 1e6:.1f} MB JPEG", flush=True)

    original = OriginalPath(model)
    rows = []
    with running_server(model.path, "--workers", str(args.workers)) as (base, _):
        url = base + "/api/v1/suggest"
        for size, data in photos.items():
            requests = args.requests if size == SIZES[0] else args.big_requests
            files = {"image": ("photo.jpg", data, "image/jpeg")}

            def ask(client):
                answer = client.post(url, files=files)
                answer.raise_for_status()

            def new_client():
                return httpx.Client(timeout=120)

            for concurrency in CONCURRENCY:
                measure(ask, 2 * concurrency, concurrency, new_client)  # warm connections and caches
                rows.append(row("server", size, concurrency, *measure(ask, requests, concurrency, new_client)))
                print(_format(rows[-1]), flush=True)
            for concurrency in CONCURRENCY:
                original(data)
                rows.append(row("original", size, concurrency,
                                *measure(lambda _: original(data), requests, concurrency)))
                print(_format(rows[-1]), flush=True)

    print(f"Load average now {os.getloadavg()[0]:.1f}")
    print("\nRatios (original / server): higher is better for the server")
    for size in SIZES:
        for concurrency in CONCURRENCY:
            new = _find(rows, "server", size, concurrency)
            old = _find(rows, "original", size, concurrency)
            print(f"  {size[0]}x{size[1]} c={concurrency}: p50 {old['p50'] / new['p50']:.1f}x faster, "
                  f"p99 {old['p99'] / new['p99']:.1f}x, throughput {new['rps'] / old['rps']:.1f}x")
    print("\nTargets")
    for size, limit in TARGETS["p50_ms"].items():
        found = _find(rows, "server", size, 1)["p50"]
        print(f"  p50 {size[0]}x{size[1]} c=1 under {limit} ms: {found:.1f} ms "
              f"{'met' if found < limit else 'NOT met'}")
    found = _find(rows, "server", SIZES[0], 8)["rps"]
    print(f"  1024x768 c=8 at least {TARGETS['rps_at_8']} req/s: {found:.1f} "
          f"{'met' if found >= TARGETS['rps_at_8'] else 'NOT met'}")
    scratch.cleanup()


def _find(rows, path, size, concurrency):
    return next(r for r in rows if r["path"] == path and r["size"] == size and r["concurrency"] == concurrency)


def _format(r):
    return (f"{r['path']:<9} {r['photo']:>9} c={r['concurrency']}  p50 {r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms  "
            f"{r['rps']:6.1f} req/s  (n={r['n']})")


if __name__ == "__main__":
    main()
