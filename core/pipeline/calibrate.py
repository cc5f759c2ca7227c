"""Scores people can read as probabilities: P(the tag applies to this photo).

A scorer's raw score ranks tags but means nothing on its own (a Mahalanobis similarity, or a
softmax across tags that gives one tag everything). Calibration maps it to the probability that
the tag is one of the photo's own tags, with ONE logistic function shared by every tag:

    logit P = a · raw + b · log(photos of the tag) + c

It depends only on the raw score and the tag's current photo count, so it holds for a tag the
user adds later from feedback as much as for the tags it was fitted on: nothing per tag is
fitted. It is fitted by cross-fitting on the training side (each fold's photos scored by tag
models fitted on the other folds; the statistics are sums, so each such model is the whole
model minus one fold), never on the held-out photos it is measured on.

Raw scores are clipped to [RAW_FLOOR, ...] for the fit: a log posterior of -700 and one of -30
both mean "no", and the clip keeps the linear fit from chasing those extremes. Applying the
function does not clip, so that no two raw scores collapse into a tie.
"""

import math
from dataclasses import dataclass

import numpy as np

from lablr.core.pipeline.metrics import ranking_metrics

RAW_FLOOR = -30.0
FOLDS = 5


@dataclass(frozen=True)
class Calibration:
    """logit P = slope · clip(raw) + count_slope · log(count) + intercept."""

    slope: float
    count_slope: float
    intercept: float

    def logit(self, raw: np.ndarray, counts: np.ndarray) -> np.ndarray:
        features = _features(raw, counts, clip=False)  # unclipped: the ranking keeps every distinction
        return features @ np.array([self.slope, self.count_slope, self.intercept])

    def probability(self, raw: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return sigmoid(self.logit(raw, counts))

    def as_dict(self) -> dict:
        return {"slope": self.slope, "count_slope": self.count_slope, "intercept": self.intercept}

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        values = [float(data[name]) for name in ("slope", "count_slope", "intercept")]
        if not all(math.isfinite(value) for value in values):
            raise ValueError("a calibration coefficient is not a finite number")
        return cls(*values)


def sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))  # no overflow for any x


def _features(raw, counts, *, clip=True) -> np.ndarray:
    raw = np.asarray(raw, dtype=np.float64)
    raw = np.clip(raw, RAW_FLOOR, None) if clip else raw
    log_counts = np.broadcast_to(np.log(np.maximum(np.asarray(counts, dtype=np.float64), 1)), raw.shape)
    return np.stack([raw, log_counts, np.ones_like(raw)], axis=-1)


def fit(raw: np.ndarray, counts: np.ndarray, relevant: np.ndarray) -> Calibration:
    """The calibration of cross-fitted scores; its count term only where it ranks no worse.

    With the count term, tags are re-ranked (a popular tag gains); where that lowers the
    cross-fitted mAP the term is dropped, and the calibration is a monotone map of the raw
    score that keeps its ranking exactly. Either way the choice never sees held-out photos.
    """
    with_counts = fit_logistic(raw, counts, relevant)
    without = fit_logistic(raw, counts, relevant, use_counts=False)
    kept = ranking_metrics(with_counts.logit(raw, counts), relevant)["map"]
    return with_counts if kept >= ranking_metrics(raw, relevant)["map"] else without


def fit_logistic(raw: np.ndarray, counts: np.ndarray, relevant: np.ndarray, *, use_counts: bool = True,
                 iterations: int = 100) -> Calibration:
    """Logistic regression of relevant (n, K) on the raw scores (n, K) and tag counts ((K,) or (n, K)).

    Newton's method on three parameters, with a whisker of ridge so that perfectly separated
    data (a tiny training set) still gives finite coefficients.
    """
    x = _features(raw, counts).reshape(-1, 3)
    if not use_counts:
        x[:, 1] = 0.0
    y = np.asarray(relevant, dtype=np.float64).reshape(-1)
    ridge = 1e-4 * len(y) * np.diag([1.0, 1.0, 0.0])
    weights = np.zeros(3)
    for _ in range(iterations):
        p = sigmoid(x @ weights)
        gradient = x.T @ (p - y) + ridge @ weights
        hessian = (x * (p * (1 - p))[:, None]).T @ x + ridge + 1e-9 * np.eye(3)
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-10:
            break
    return Calibration(*map(float, weights))


def cross_fitted_scores(latents, photo_tags, tags, make_tag_model, scorer, *, folds: int = FOLDS, seed: int = 0,
                        base=None):
    """(raw scores (n, K), tag counts (n, K), relevant (n, K)) of the training photos, each photo
    scored by a tag model that never saw it: the model fitted on the other folds, or, with `base` (a
    tag model the photos are added to: `lablr fit --add`), a copy of it given the other folds."""
    latents = np.asarray(latents, dtype=np.float64)
    order = np.random.default_rng(seed).permutation(len(latents))
    index = {tag: k for k, tag in enumerate(tags)}
    relevant = np.zeros((len(latents), len(tags)), dtype=bool)
    for row, own in enumerate(photo_tags):
        relevant[row, [index[t] for t in own if t in index]] = True
    raw = np.full(relevant.shape, RAW_FLOOR)  # a tag a fold's model lacks: the lowest score, of no photo
    counts = np.zeros(relevant.shape)
    for fold in np.array_split(order, min(folds, len(latents))):
        inside = np.setdiff1d(order, fold)
        inside_tags = [photo_tags[i] for i in inside]
        if base is None:
            model = make_tag_model().fit(latents[inside], inside_tags, tags)
        else:
            model = base.copy().update(latents[inside], inside_tags)
        columns = [index[tag] for tag in model.tags]  # a copy of `base` orders its tags its own way
        raw[np.ix_(fold, columns)] = scorer.score(latents[fold], model).score
        counts[np.ix_(fold, columns)] = model.counts
    return raw, counts, relevant
