"""Benchmark: a suggestion's Gaussian tags against the encoder's background (the default model's
taught tags), factored once per tag model (and after a feedback, only the tags it moved) against
factored for every photo as before.

Both run here, in the same process, on the same random tag model; the script prints the time of
each and their ratio (these machines are noisy: trust ratios, not times), and checks that the
probabilities agree.

    python scripts/bench_background.py [--tags 300] [--dims 128] [--photos 1 8]
"""

import argparse
import time

import numpy as np

from lablr.core.pipeline.calibrate import sigmoid
from lablr.core.plugins import get_part
from lablr.core.ranking import BACKGROUND_PHOTOS, SPREAD_PHOTOS, WITHIN_SHARE, BackgroundOdds


def per_photo(latents, tag_model, background_variance):
    """The former way: every tag's covariance factored again for each request."""
    variance = np.maximum(background_variance, 1e-12)
    log_background = -0.5 * ((latents**2 / variance).sum(axis=1) + np.log(variance).sum())
    counts = tag_model.counts
    weights = (counts / (counts + SPREAD_PHOTOS))[:, None, None]
    covariances = weights * tag_model.covariances() + (1 - weights) * np.diag(WITHIN_SHARE * variance)
    cholesky = np.linalg.cholesky(covariances)
    offsets = latents[None, :, :] - tag_model.centroids()[:, None, :]
    whitened = np.linalg.solve(cholesky, np.swapaxes(offsets, 1, 2))
    logdet = 2 * np.log(np.diagonal(cholesky, axis1=1, axis2=2)).sum(axis=1)
    log_tag = -0.5 * ((whitened**2).sum(axis=1).T + logdet)
    rest = np.maximum(counts.sum() - counts, BACKGROUND_PHOTOS)
    return sigmoid(np.log(np.maximum(counts, 1e-12)) + log_tag - np.log(rest) - log_background[:, None])


def timed(function, repeats):
    started = time.perf_counter()
    for _ in range(repeats):
        result = function()
    return (time.perf_counter() - started) / repeats, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, default=300)
    parser.add_argument("--dims", type=int, default=128)
    parser.add_argument("--photos", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(20 * args.tags, args.dims))
    tags = [f"tag{k}" for k in range(args.tags)]
    tag_model = get_part("tag_model", "gaussian")(shared=100.0).fit(latents, [[tags[i % args.tags]] for i in
                                                                                range(len(latents))], tags)
    variance = latents.var(axis=0)
    built, odds = timed(lambda: BackgroundOdds(tag_model, variance), 1)
    print(f"{args.tags} tags in {args.dims} dimensions: factored once per tag model in {built * 1000:.0f} ms")
    # as the personal layer holds it: frozen, so a feedback re-derives only the tags it carries
    tag_model.freeze()
    taught = tag_model.copy().update(rng.normal(size=(1, args.dims)), [tags[:5]])
    again, after_feedback = timed(lambda: BackgroundOdds(taught, variance, previous=odds), 1)
    whole = BackgroundOdds(taught, variance)
    assert np.allclose(after_feedback.whitening, whole.whitening) and np.allclose(after_feedback.constant,
                                                                                  whole.constant)
    print(f"after a feedback on 5 of its tags: {again * 1000:.0f} ms ({built / again:.0f}x less)")
    for photos in args.photos:
        batch = rng.normal(size=(photos, args.dims))
        before, expected = timed(lambda batch=batch: per_photo(batch, tag_model, variance), 3)
        after, found = timed(lambda batch=batch: odds(batch), 20)
        assert np.allclose(found, expected, rtol=1e-9, atol=1e-12)
        print(f"{photos} photos: per photo {before * 1000:.1f} ms, factored once {after * 1000:.2f} ms, "
              f"{before / after:.0f}x")


if __name__ == "__main__":
    main()
