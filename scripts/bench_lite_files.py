"""Two .tflite files of one network, timed against each other in one process: encode time per photo.

    git show HEAD~1:core/bundles/photos/effnet.tflite > /tmp/before.tflite
    python scripts/bench_lite_files.py /tmp/before.tflite [core/bundles/photos/effnet.tflite]

Runs both (as Lablr runs a bundle's network: one interpreter, one thread) on the same photos,
alternating batch by batch so that a busy machine slows both alike, one photo at a time and in
batches of 8; prints the median ms per photo of each and the ratio, and how far their outputs
differ (the cosine of their features, the largest difference of their logits).
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

SHIPPED = Path(__file__).resolve().parent.parent / "core" / "bundles" / "photos" / "effnet.tflite"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline", type=Path)
    parser.add_argument("candidate", type=Path, nargs="?", default=SHIPPED)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    from lablr.core import litert
    from lablr.plugins.effnet import OUTPUTS

    models = [litert.LiteModel.read(path, outputs=OUTPUTS) for path in (args.baseline, args.candidate)]
    photos = np.random.default_rng(0).uniform(0, 255, size=(8, 224, 224, 3)).astype(np.float32)
    print(f"{args.baseline.name} ({args.baseline.stat().st_size / 1e6:.1f} MB) against "
          f"{args.candidate.name} ({args.candidate.stat().st_size / 1e6:.1f} MB), {args.repeats} runs\n")
    for batch in (1, 8):
        times = [[], []]
        for _ in range(args.repeats):
            for model, spent in zip(models, times):
                start = time.perf_counter()
                model(photos[:batch])
                spent.append((time.perf_counter() - start) / batch * 1000)
        base, other = (statistics.median(t) for t in times)
        print(f"batch {batch}: {base:.1f} ms against {other:.1f} ms a photo: {other / base:.2f}x")
    (features, logits), (other_features, other_logits) = (model(photos) for model in models)
    cosine = (features * other_features).sum(axis=1) / np.linalg.norm(features, axis=1) / np.linalg.norm(
        other_features, axis=1)
    print(f"features' cosine at least {cosine.min():.4f}; logits differ by at most "
          f"{np.abs(logits - other_logits).max():.2f}")


if __name__ == "__main__":
    main()
