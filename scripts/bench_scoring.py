"""Benchmark: scoring every tag for one image, Lablr's way against the original's.

The original looped over tags, calling scikit-learn's EmpiricalCovariance.mahalanobis once
per tag. Lablr precomputes each tag's whitening factor and scores all tags in one matrix
product. Both run here, in the same process, on the same random tag models; the script
prints the time of each and their ratio (these machines are noisy: trust ratios, not times).

    python scripts/bench_scoring.py [--tags 45 1000 10000] [--dims 32 100]
"""

import argparse
import time

import numpy as np
from sklearn.covariance import EmpiricalCovariance

from lablr.core.plugins import get_part


def random_tag_statistics(tags, dim, rng):
    """A Gaussian tag model with `tags` tags of random means and covariances, from sums."""
    model = get_part("tag_model", "gaussian")()
    model.tags = [f"tag{k}" for k in range(tags)]
    model.counts = np.full(tags, 4.0 * dim)
    means = rng.normal(size=(tags, dim))
    mixing = rng.normal(size=(tags, dim, dim)) / np.sqrt(dim) + np.eye(dim)
    covariances = mixing @ np.swapaxes(mixing, 1, 2)
    model._sums = means * model.counts[:, None]
    model._outer_sums = (covariances + np.einsum("kd,ke->kde", means, means)) * model.counts[:, None, None]
    return model


def original_models(model):
    """One fitted scikit-learn EmpiricalCovariance per tag, with the same mean and covariance."""
    fitted = []
    for mean, covariance in zip(model.centroids(), model.covariances()):
        estimator = EmpiricalCovariance()
        estimator._set_covariance(covariance)
        estimator.location_ = mean
        fitted.append(estimator)
    return fitted


def best_time(function, repeats, budget_s=5.0):
    """(fastest time, last result) of up to `repeats` runs, stopping once `budget_s` is spent."""
    best, spent = float("inf"), 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
        if spent > budget_s:
            break
    return best, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, nargs="+", default=[45, 1000, 10000])
    parser.add_argument("--dims", type=int, nargs="+", default=[32, 100])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    scorer = get_part("scorer", "mahalanobis")()
    print(f"{'tags':>6} {'dim':>4} {'original (ms)':>14} {'lablr (ms)':>11} {'speed-up':>9} {'max rel. diff':>14}")
    for dim in args.dims:
        for tags in args.tags:
            model = random_tag_statistics(tags, dim, rng)
            z = rng.normal(size=(1, dim))
            scorer.score(z, model)  # builds the whitening factors once, as a server does at start
            originals = original_models(model)
            original_s, theirs = best_time(lambda: [m.mahalanobis(z)[0] for m in originals], repeats=3)
            lablr_s, ours = best_time(lambda: scorer.score(z, model).distance[0], repeats=50)
            difference = np.max(np.abs(ours - np.sqrt(theirs)) / np.sqrt(theirs))
            print(f"{tags:>6} {dim:>4} {original_s * 1e3:>14.2f} {lablr_s * 1e3:>11.3f} "
                  f"{original_s / lablr_s:>8.0f}x {difference:>14.1e}", flush=True)


if __name__ == "__main__":
    main()
