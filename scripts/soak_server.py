"""Soak a real `lablr serve` with good and bad requests at once, and watch it hold.

    python scripts/soak_server.py                  # 5 minutes, 32 clients, the default bundle
    python scripts/soak_server.py --minutes 1 --concurrency 32 --model PATH

Each client keeps one connection and sends, in a seeded random mix: photos (JPEG, PNG, several
in one form, a 16-bit one), pictures, health and tag lists, and bad requests (cut-off and
byte-flipped images, text, empty files, decompression bombs, a request over the pixel budget,
wrong parameters and types, another Host, another site's Origin, unknown paths). It prints the
count of 5xx answers (must be 0), answers other than each kind's expected ones, latency p50/p99,
and the server's resident memory: its growth after the warm-up must stay within 50 MB.
Exit status 1 when any of those fails.
"""

import argparse
import io
import random
import re
import struct
import sys
import threading
import time
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the helper that runs `lablr serve` on a free port

from bench_server import photo_jpeg  # noqa: E402

from lablr.core import defaults  # noqa: E402

MAX_GROWTH_MB = 50


def encoded(image, format, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def header_only_png(width, height) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))


def inputs() -> dict:
    from PIL import Image

    jpeg = photo_jpeg(1024, 768)
    png = encoded(Image.open(io.BytesIO(photo_jpeg(640, 480, seed=1))), "PNG")
    deep = encoded(Image.fromarray((np.arange(256, dtype=np.uint16).reshape(16, 16) * 257))
                   .resize((2000, 2000), Image.Resampling.NEAREST), "PNG")
    return {"jpeg": jpeg, "png": png, "deep": deep, "bomb": header_only_png(20_000, 10_000),
            "huge": header_only_png(10_000, 10_000)}


def requests(data: dict):
    """(kind, weight, expected statuses, how to send it with an httpx.Client and a random.Random)."""
    suggest = "/api/v1/suggest"

    def form(*items):
        return [("image", (f"{i}.img", item, "application/octet-stream")) for i, item in enumerate(items)]

    def cut(rng):
        return data["jpeg"][:rng.randrange(1, len(data["jpeg"]) - 64)]

    def flipped(rng):
        damaged = bytearray(data["jpeg"])
        for _ in range(rng.randint(1, 16)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        return bytes(damaged)

    return [
        ("suggest jpeg", 30, {200}, lambda c, r: c.post(suggest, files=form(data["jpeg"]))),
        ("suggest raw png", 8, {200}, lambda c, r: c.post(suggest, content=data["png"],
                                                             headers={"content-type": "image/png"})),
        ("suggest 4 photos", 5, {200}, lambda c, r: c.post(suggest + "?k=5", files=form(*[data["png"]] * 4))),
        ("suggest 16-bit", 3, {200}, lambda c, r: c.post(suggest, files=form(data["deep"]))),
        ("plot png", 1, {200}, lambda c, r: c.post("/api/v1/plot", files=form(data["jpeg"]))),
        ("health", 8, {200}, lambda c, r: c.get("/api/v1/health")),
        ("tags", 3, {200}, lambda c, r: c.get("/api/v1/tags")),
        ("cut jpeg", 8, {400}, lambda c, r: c.post(suggest, files=form(cut(r)))),
        ("flipped jpeg", 6, {200, 400}, lambda c, r: c.post(suggest, files=form(flipped(r)))),
        ("text", 3, {400}, lambda c, r: c.post(suggest, files=form(b"not a picture at all"))),
        ("empty", 2, {400}, lambda c, r: c.post(suggest, files=form(b""))),
        ("bomb", 3, {413}, lambda c, r: c.post(suggest, files=form(data["bomb"]))),
        ("over pixel budget", 2, {413}, lambda c, r: c.post(suggest, files=form(*[data["huge"]] * 5))),
        ("bad k", 2, {422}, lambda c, r: c.post(suggest + "?k=0", files=form(data["png"]))),
        ("unknown scorer", 2, {422}, lambda c, r: c.post(suggest + "?scorer=nope", files=form(data["png"]))),
        ("wrong type", 2, {415}, lambda c, r: c.post(suggest, content=b"{}",
                                                        headers={"content-type": "application/json"})),
        ("other host", 3, {400}, lambda c, r: c.get("/api/v1/tags", headers={"host": "rebound.example"})),
        ("other site", 4, {403}, lambda c, r: c.post(suggest, files=form(data["png"]),
                                                        headers={"origin": "https://evil.example"})),
        ("unknown path", 2, {404}, lambda c, r: c.get("/api/v1/nothing")),
    ]


def rss_bytes(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def soak(base: str, pid: int, seconds: float, concurrency: int, warm_up: float, seed: int):
    import httpx

    data = inputs()
    kinds = requests(data)
    weights = [weight for _, weight, _, _ in kinds]
    deadline = time.monotonic() + seconds
    warm_until = time.monotonic() + warm_up
    records = []  # (kind, status, seconds, after warm-up)
    failures = Counter()
    lock = threading.Lock()
    memory = []  # (seconds since start, RSS bytes)
    start = time.monotonic()

    def client(number):
        rng = random.Random(seed * 1000 + number)
        with httpx.Client(base_url=base, timeout=120) as http:
            while time.monotonic() < deadline:
                kind, _, _, send = rng.choices(kinds, weights)[0]
                asked = time.monotonic()
                try:
                    status = send(http, rng).status_code
                except httpx.HTTPError as error:
                    with lock:
                        failures[f"{kind}: {type(error).__name__}"] += 1
                    continue
                with lock:
                    records.append((kind, status, time.monotonic() - asked, asked > warm_until))

    def watch():
        while time.monotonic() < deadline:
            memory.append((time.monotonic() - start, rss_bytes(pid)))
            time.sleep(1.0)
        memory.append((time.monotonic() - start, rss_bytes(pid)))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    threads.append(threading.Thread(target=watch))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return kinds, records, failures, memory


def report(kinds, records, failures, memory, warm_up):
    expected = {kind: statuses for kind, _, statuses, _ in kinds}
    by_kind = defaultdict(Counter)
    for kind, status, _, _ in records:
        by_kind[kind][status] += 1
    server_errors = sum(1 for _, status, _, _ in records if status >= 500)
    unexpected = {kind: {s: n for s, n in counts.items() if s not in expected[kind]}
                  for kind, counts in by_kind.items()}
    unexpected = {kind: found for kind, found in unexpected.items() if found}
    print(f"{len(records)} requests, {len(records) / max(memory[-1][0], 1e-9):.1f} req/s")
    times = defaultdict(list)
    for kind, _, seconds, _ in records:
        times[kind].append(seconds * 1000)
    print(f"{'kind':<20} {'count':>6} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for kind, _, _, _ in kinds:
        shown = ", ".join(f"{s}: {n}" for s, n in sorted(by_kind[kind].items()))
        p50, p99 = np.percentile(times[kind], [50, 99]) if times[kind] else (np.nan, np.nan)
        print(f"{kind:<20} {sum(by_kind[kind].values()):>6} {p50:>8.1f} {p99:>8.1f}  {shown}")

    def percentiles(selected):
        if not selected:
            return "n/a"
        values = np.array(selected) * 1000
        return f"p50 {np.percentile(values, 50):.1f} ms, p99 {np.percentile(values, 99):.1f} ms"

    print(f"latency, all requests: {percentiles([t for _, _, t, _ in records])}")
    print(f"latency, one JPEG to suggest: {percentiles([t for k, _, t, _ in records if k == 'suggest jpeg'])}")
    warm = [rss for at, rss in memory if at <= warm_up]
    after = [rss for at, rss in memory if at > warm_up]
    base_rss = warm[-1] if warm else memory[0][1]
    growth = (max(after) - base_rss) if after else 0
    print(f"server RSS: {memory[0][1] / 1e6:.0f} MB at the start, {base_rss / 1e6:.0f} MB after the {warm_up:.0f} s "
          f"warm-up, {max(rss for _, rss in memory) / 1e6:.0f} MB at most, {memory[-1][1] / 1e6:.0f} MB at the end")
    print(f"RSS growth after warm-up (highest minus warm-up): {growth / 1e6:.1f} MB (limit {MAX_GROWTH_MB} MB)")
    step = max(1, len(memory) // 12)
    print("RSS over time: " + ", ".join(f"{at:.0f} s {rss / 1e6:.0f}" for at, rss in memory[::step]) + " MB")
    print(f"5xx answers: {server_errors}")
    print(f"answers other than expected: {unexpected or 'none'}")
    print(f"connection errors: {dict(failures) or 'none'}")
    return server_errors == 0 and not unexpected and not failures and growth <= MAX_GROWTH_MB * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--model", default=defaults.DEFAULT_MODEL)
    parser.add_argument("--warm-up", type=float, default=None,
                        help="Seconds before RSS growth counts (default: a fifth of the run, at most 60).")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    seconds = options.minutes * 60
    warm_up = options.warm_up if options.warm_up is not None else min(60.0, seconds / 5)

    from lablr_server import running_server

    with running_server(options.model) as (base, log):
        pid = int(re.search(r"worker (\d+)", "\n".join(log)).group(1))
        print(f"Soaking {base} (model {options.model}, pid {pid}) for {options.minutes:g} min at concurrency "
              f"{options.concurrency}, warm-up {warm_up:.0f} s")
        kinds, records, failures, memory = soak(base, pid, seconds, options.concurrency, warm_up, options.seed)
        healthy = report(kinds, records, failures, memory, warm_up)
        tracebacks = [line for line in log if "Traceback" in line]
        print(f"tracebacks in the server log: {len(tracebacks)}")
    sys.exit(0 if healthy and not tracebacks else 1)


if __name__ == "__main__":
    main()
