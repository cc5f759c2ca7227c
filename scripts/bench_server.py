"""How fast `lablr serve` answers with each bundled model, against the original Lablr's way, in one run.

    python scripts/bench_server.py                      # photos (the default), openclipart-effnet, -vae
    python scripts/bench_server.py --models PATH ...    # other bundles
    python scripts/bench_server.py --big                # also a 6000x4000 JPEG

For each model it starts a real `lablr serve` on 127.0.0.1 and times how long it takes until
/api/v1/health answers (start-up: Python, the bundle, the LiteRT encoder, the warm-up photo).
Then it POSTs a 512x384 JPEG (what the extension sends: photos shrunk to 512 px in the
browser) to /api/v1/suggest, at concurrency 1 and 8: latency p50/p99 and requests per second.
The original's way runs in this process on the same photo: a full decode and resize, the VAE
encoder on TensorFlow (the original had no LiteRT), and a Python loop calling scikit-learn's
EmpiricalCovariance.mahalanobis per tag, on the pixel VAE's own Gaussians. It leaves out HTTP,
so its ratios are, if anything, unfair to the server.

The default (`photos`) is openclipart-effnet's encoder with its classifier and the photo
vocabulary: the same network with one more layer, plus 1,000 tags' sums and the pixel tags. Its
p50 is compared with openclipart-effnet's from the same run (target: within 10%).
"""

import argparse
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # free_port and stop_server, as the tests use them

from lablr.core import defaults  # noqa: E402

PHOTO = (512, 384)
BIG = (6000, 4000)
CONCURRENCY = (1, 8)
TARGETS = {"p50_ms": 15.0, "rps_at_8": 80.0, "startup_s": 3.0, "vocabulary_ratio": 1.10}


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


# -- the original Lablr's path ----------------------------------------------------------------------


class OriginalPath:
    """Full decode, resize, encode, then one scikit-learn call per tag, as the original did."""

    def __init__(self, model):  # a Model whose encoder runs on TensorFlow, as the original's did
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


def start_server(model):
    """A `lablr serve` process, and the seconds from its start until /api/v1/health answers 200."""
    import httpx
    from lablr_server import free_port

    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "lablr.core.cli", "serve", "--port", str(port),
                                "--model", str(model)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = started + 120
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"lablr serve --model {model} exited:\n{process.stderr.read()[-2000:]}")
        try:
            answer = httpx.get(base + "/api/v1/health", timeout=1)
        except httpx.HTTPError:
            answer = None
        if answer is not None and answer.status_code == 200:
            elapsed = time.perf_counter() - started
            if process.poll() is not None:  # another server took the port first: not ours to measure
                raise RuntimeError(f"lablr serve --model {model} could not listen on port {port}")
            return process, base, elapsed
        time.sleep(0.01)
    process.kill()
    raise RuntimeError(f"lablr serve --model {model} did not answer within 120 s")


def bench_server(model, photos, requests):
    import httpx
    from lablr_server import stop_server

    process, base, startup = start_server(model)
    print(f"{str(model):<20} start-up to /api/v1/health: {startup:.2f} s", flush=True)
    rows = []
    try:
        for size, data in photos.items():
            files = {"image": ("photo.jpg", data, "image/jpeg")}

            def ask(client):
                client.post(base + "/api/v1/suggest", files=files).raise_for_status()

            for concurrency in CONCURRENCY:
                count = requests[size] * (2 if concurrency > 1 else 1)
                measure(ask, 2 * concurrency, concurrency, lambda: httpx.Client(timeout=120))  # warm up
                rows.append(row(str(model), size, concurrency,
                                *measure(ask, count, concurrency, lambda: httpx.Client(timeout=120))))
                print(_format(rows[-1]), flush=True)
    finally:
        stop_server(process)
    return startup, rows


def original_model():
    """The pixel VAE's bundle with its Keras encoder on TensorFlow, as the original ran it."""
    from lablr.core.model import Model
    from lablr.plugins.vae_network import import_keras

    model = Model.load(defaults.ORIGINAL_MODEL)
    keras = import_keras()
    model.encoder._lite = None
    model.encoder._use(keras.saving.load_model(model.path / "encoder.keras", compile=False, safe_mode=True))
    return model


def bench_original(photos, requests):
    model = original_model()
    original = OriginalPath(model)
    rows = []
    for size, data in photos.items():
        for concurrency in CONCURRENCY:
            original(data)
            count = requests[size] * (2 if concurrency > 1 else 1)
            rows.append(row("original", size, concurrency, *measure(lambda _: original(data), count, concurrency)))
            print(_format(rows[-1]), flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*",
                        default=[defaults.DEFAULT_MODEL, defaults.BENCHMARK_MODEL, defaults.ORIGINAL_MODEL],
                        help="Bundle names or paths (default: the three bundled models).")
    parser.add_argument("--requests", type=int, default=200, help="Requests at concurrency 1 (twice that at 8).")
    parser.add_argument("--big", action="store_true", help=f"Also a {BIG[0]}x{BIG[1]} JPEG (24 requests).")
    args = parser.parse_args()

    photos = {PHOTO: photo_jpeg(*PHOTO)}
    requests = {PHOTO: args.requests}
    if args.big:
        photos[BIG], requests[BIG] = photo_jpeg(*BIG), 24
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other work on the machine slows "
          f"every path); photos: " + ", ".join(f"{w}x{h} JPEG {len(d) / 1e3:.0f} kB" for (w, h), d in photos.items()),
          flush=True)
    startups, rows = {}, []
    for model in args.models:
        startups[str(model)], found = bench_server(model, photos, requests)
        rows += found
    rows += bench_original(photos, requests)
    print(f"Load average now {os.getloadavg()[0]:.1f}")

    print("\nRatios (the original's way / the server): higher is better for the server")
    for model in args.models:
        for size in photos:
            for concurrency in CONCURRENCY:
                new, old = _find(rows, str(model), size, concurrency), _find(rows, "original", size, concurrency)
                print(f"  {model} {size[0]}x{size[1]} c={concurrency}: p50 {old['p50'] / new['p50']:.1f}x faster, "
                      f"throughput {new['rps'] / old['rps']:.1f}x")
    if {defaults.DEFAULT_MODEL, defaults.BENCHMARK_MODEL} <= set(map(str, args.models)):
        ours, same_encoder = (_find(rows, name, PHOTO, 1)["p50"] for name in (defaults.DEFAULT_MODEL,
                                                                              defaults.BENCHMARK_MODEL))
        print(f"\nThe photo vocabulary's cost: {defaults.DEFAULT_MODEL} p50 {ours:.1f} ms against "
              f"{defaults.BENCHMARK_MODEL}'s {same_encoder:.1f} ms (the same encoder): {ours / same_encoder:.2f}x "
              f"(target <= {TARGETS['vocabulary_ratio']:.2f}: {_met(ours <= TARGETS['vocabulary_ratio'] * same_encoder)})")
    print("\nTargets")
    for model in args.models:
        p50, rps = _find(rows, str(model), PHOTO, 1)["p50"], _find(rows, str(model), PHOTO, 8)["rps"]
        startup = startups[str(model)]
        print(f"  {model}: 512-px p50 at c=1 {p50:.1f} ms (target <= {TARGETS['p50_ms']:.0f}: "
              f"{_met(p50 <= TARGETS['p50_ms'])}); c=8 {rps:.0f} req/s (target >= {TARGETS['rps_at_8']:.0f}: "
              f"{_met(rps >= TARGETS['rps_at_8'])}); start-up {startup:.2f} s (target <= "
              f"{TARGETS['startup_s']:.0f}: {_met(startup <= TARGETS['startup_s'])})")


def _met(ok):
    return "met" if ok else "NOT met"


def _find(rows, path, size, concurrency):
    return next(r for r in rows if r["path"] == path and r["size"] == size and r["concurrency"] == concurrency)


def _format(r):
    return (f"{r['path']:<20} {r['photo']:>9} c={r['concurrency']}  p50 {r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms  "
            f"{r['rps']:6.1f} req/s  (n={r['n']})")


if __name__ == "__main__":
    main()
