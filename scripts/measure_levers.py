"""Levers on the pretrained encoder's tag quality, one at a time, on cached features.

    python scripts/measure_levers.py                 # encodes OpenClipart once, then measures
    python scripts/measure_levers.py --cache F.npz   # reuse (or write) the feature cache there

The network runs once per image (and once per mirrored image) and its 1,280 pooled features
are cached; every lever is then a few seconds of numpy on that cache. The protocol is the
bundles' own: Lablr's default data rules on Debian's OpenClipart (creator cap 100, 80/20 split),
the same 586 held-out images, each ranking every tag; mAP as `lablr evaluate` reports it.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from lablr.core import defaults


def encode_openclipart(cache: Path, work: Path):
    """Features (and mirrored features) of every selected OpenClipart image, keyed, with tags and side."""
    from lablr.core.data.catalog import Catalog
    from lablr.core.data.image_cache import prepared_images
    from lablr.core.data.importing import import_source
    from lablr.core.data.selection import select
    from lablr.plugins.effnet import EffNetLite0Encoder

    catalog = work / "openclipart.db"
    if Catalog(catalog).count() == 0:
        import_source("openclipart", None, catalog)
    selection = select(Catalog(catalog).photos("openclipart"))
    images = prepared_images(catalog, selection.train + selection.test, 224)
    encoder = EffNetLite0Encoder()
    keys, plain, mirrored = [], [], []
    started = time.perf_counter()
    for batch_keys, batch in images.keyed_batches(64):
        keys += batch_keys
        plain.append(encoder.features(batch))
        mirrored.append(encoder.features(batch[:, :, ::-1]))
        print(f"\r{len(keys)} images encoded, {time.perf_counter() - started:.0f} s", end="", flush=True)
    print()
    side = {p["key"]: "train" for p in selection.train} | {p["key"]: "test" for p in selection.test}
    tags = {p["key"]: p["tags"] for p in selection.train + selection.test}
    np.savez(cache, keys=np.array(keys), features=np.concatenate(plain), mirrored=np.concatenate(mirrored),
             sides=np.array([side[k] for k in keys]), tags=np.array(["\t".join(tags[k]) for k in keys]),
             vocabulary=np.array(selection.tags))


class Cached:
    """The feature cache: training and held-out features, tags, the tag vocabulary."""

    def __init__(self, path: Path):
        with np.load(path, allow_pickle=False) as data:
            self.features, self.mirrored = data["features"].astype(np.float64), data["mirrored"].astype(np.float64)
            self.tags = [str(t).split("\t") for t in data["tags"]]
            self.train, self.test = data["sides"] == "train", data["sides"] == "test"
            self.vocabulary = [str(t) for t in data["vocabulary"]]


def pca(features, size):
    """(mean, components (size, 1280)) of the features, largest variance first."""
    mean = features.mean(axis=0)
    _, _, vt = np.linalg.svd(features - mean, full_matrices=False)
    return mean, vt[:size]


def per_tag_bias(raw, relevant, iterations=50):
    """(slope, bias per tag) of a logistic regression with one intercept per tag: the lever a
    shared calibration cannot be, since a tag added later from feedback would have no bias."""
    from lablr.core.pipeline.calibrate import RAW_FLOOR, sigmoid

    n, tags = raw.shape
    x = np.clip(raw, RAW_FLOOR, None).reshape(-1)
    which = np.tile(np.arange(tags), n)
    y = relevant.reshape(-1).astype(np.float64)
    weights = np.zeros(tags + 1)
    for _ in range(iterations):
        p = sigmoid(weights[0] * x + weights[1:][which])
        residual, curvature = p - y, p * (1 - p)
        gradient = np.concatenate([[residual @ x], np.bincount(which, residual, tags)])
        hessian = np.zeros((tags + 1, tags + 1))
        hessian[0, 0] = curvature @ x**2
        hessian[0, 1:] = hessian[1:, 0] = np.bincount(which, curvature * x, tags)
        hessian[1:, 1:] = np.diag(np.bincount(which, curvature, tags))
        weights -= np.linalg.solve(hessian + 1e-6 * np.eye(tags + 1), gradient)
    return weights[0], weights[1:]


def measure(data: Cached, *, pca_size=64, flip=False, shrinkage="oas", shared=0.0, scorer="loglik",
            bias=False):
    """mAP and tag-wise mAP of the raw ranking; ECE and mAP of the calibrated one."""
    from lablr.core.pipeline import calibrate as calibration
    from lablr.core.pipeline import metrics
    from lablr.core.pipeline.metrics import ranking_metrics, relevance, tagwise_map
    from lablr.core.plugins import get_part

    features = (data.features + data.mirrored) / 2 if flip else data.features
    mean, components = pca(features[data.train], pca_size)
    latents = (features - mean) @ components.T
    train_tags = [t for t, keep in zip(data.tags, data.train) if keep]
    test_tags = [[x for x in t if x in data.vocabulary] for t, keep in zip(data.tags, data.test) if keep]

    def make():
        return get_part("tag_model", "gaussian")(shrinkage=shrinkage, shared=shared)

    score = get_part("scorer", scorer)()
    model = make().fit(latents[data.train], train_tags, data.vocabulary)
    raw = score.score(latents[data.test], model).score
    relevant = relevance(test_tags, data.vocabulary)
    crossed = calibration.cross_fitted_scores(latents[data.train], train_tags, data.vocabulary, make, score)
    fitted = calibration.fit(*crossed)
    logit = fitted.logit(raw, model.counts)
    if bias:
        slope, offsets = per_tag_bias(crossed[0], crossed[2])
        logit = slope * raw + offsets
    return {"map": ranking_metrics(raw, relevant)["map"], "tag_map": tagwise_map(raw, relevant),
            "calibrated_map": ranking_metrics(logit, relevant)["map"],
            "ece": metrics.expected_calibration_error(calibration.sigmoid(logit), relevant),
            "calibration": fitted}


LEVERS = [
    ("today's bundle: 64-d PCA, OAS shrinkage", {}),
    ("PCA 32", {"pca_size": 32}),
    ("PCA 96", {"pca_size": 96}),
    ("PCA 128", {"pca_size": 128}),
    ("PCA 256", {"pca_size": 256}),
    ("no shrinkage (a small floor only)", {"shrinkage": "none"}),
    ("shared covariance worth 10 photos", {"shared": 10.0}),
    ("shared covariance worth 30 photos", {"shared": 30.0}),
    ("shared covariance worth 100 photos", {"shared": 100.0}),
    ("shared covariance worth 300 photos", {"shared": 300.0}),
    ("one covariance for all tags (shared worth 10^6)", {"shared": 1e6}),
    ("mirror-averaged features", {"flip": True}),
    ("PCA 128 + shared 100", {"pca_size": 128, "shared": 100.0}),
    ("PCA 128 + shared 100 + mirror", {"pca_size": 128, "shared": 100.0, "flip": True}),
    ("PCA 96 + shared 100", {"pca_size": 96, "shared": 100.0}),
    ("PCA 64 + shared 300", {"pca_size": 64, "shared": 300.0}),
    ("PCA 96 + shared 300", {"pca_size": 96, "shared": 300.0}),
    ("PCA 128 + shared 300", {"pca_size": 128, "shared": 300.0}),
    ("PCA 128 + shared 1000", {"pca_size": 128, "shared": 1000.0}),
    ("PCA 192 + shared 100", {"pca_size": 192, "shared": 100.0}),
    ("PCA 256 + shared 100", {"pca_size": 256, "shared": 100.0}),
    ("PCA 256 + shared 300", {"pca_size": 256, "shared": 300.0}),
    ("a free bias per tag (not shippable: feedback tags have none)", {"bias": True}),
    ("PCA 128 + shared 100 + a free bias per tag", {"pca_size": 128, "shared": 100.0, "bias": True}),
    ("Mahalanobis ranking instead of log-likelihood", {"scorer": "mahalanobis"}),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=defaults.cache_dir() / "openclipart-effnet-features.npz")
    parser.add_argument("--work", type=Path, default=defaults.cache_dir() / "build")
    parser.add_argument("--only", nargs="*", help="Levers whose name contains one of these words.")
    args = parser.parse_args()
    if not args.cache.exists():
        args.work.mkdir(parents=True, exist_ok=True)
        encode_openclipart(args.cache, args.work)
    data = Cached(args.cache)
    print(f"{int(data.train.sum())} training and {int(data.test.sum())} held-out images, "
          f"{len(data.vocabulary)} tags\n")
    print("| Lever (one at a time) | mAP | tag-wise mAP | mAP, calibrated ranking | ECE (top 10) |")
    print("|---|---|---|---|---|")
    chosen = [(name, settings) for name, settings in LEVERS if not args.only or any(o in name for o in args.only)]
    for name, settings in chosen:
        found = measure(data, **settings)
        print(f"| {name} | {found['map']:.3f} | {found['tag_map']:.3f} | {found['calibrated_map']:.3f} | "
              f"{found['ece']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
