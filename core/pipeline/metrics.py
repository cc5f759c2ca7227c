"""How good the suggestions are, measured on held-out photos.

For each photo every tag is ranked; rel_i = 1 when the i-th tag is one of the photo's own n
tags. precision@5 = sum(rel_1..5) / 5, recall@5 = sum(rel_1..5) / n, average precision =
sum_i rel_i * precision@i / n; each is averaged over photos. The popularity baseline (always
the most frequent training tags) is scored the same way, in the same run.
"""

import numpy as np

CUTOFF = 5

ECE_TOP = 10  # the calibration error is measured over each photo's 10 most probable tags
ECE_BINS = 10


def ranking_metrics(scores: np.ndarray, relevant: np.ndarray) -> dict:
    """scores (n, K), higher first; relevant (n, K) bool. Means over photos with own tags."""
    relevant = np.asarray(relevant, dtype=bool)
    keep = relevant.any(axis=1)
    scores, relevant = np.asarray(scores)[keep], relevant[keep]
    if not len(scores):
        return {"precision_at_5": 0.0, "recall_at_5": 0.0, "map": 0.0, "photos": 0}
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1).astype(np.float64)
    own = hits.sum(axis=1)
    cumulative = np.cumsum(hits, axis=1)
    ranks = np.arange(1, hits.shape[1] + 1)
    average_precision = (hits * cumulative / ranks).sum(axis=1) / own
    top = cumulative[:, min(CUTOFF, hits.shape[1]) - 1]
    return {
        "precision_at_5": float((top / CUTOFF).mean()),
        "recall_at_5": float((top / own).mean()),
        "map": float(average_precision.mean()),
        "photos": int(len(scores)),
    }


def tagwise_map(scores: np.ndarray, relevant: np.ndarray) -> float:
    """Mean over tags of each tag's average precision over photos: rewards rare tags done right."""
    per_tag = ranking_metrics(np.asarray(scores).T, np.asarray(relevant).T)
    return per_tag["map"]


def popularity_scores(counts, photos: int) -> np.ndarray:
    return np.tile(np.asarray(counts, dtype=np.float64), (photos, 1))


def relevance(photo_tags, tags) -> np.ndarray:
    index = {t: k for k, t in enumerate(tags)}
    out = np.zeros((len(photo_tags), len(tags)), dtype=bool)
    for row, own in enumerate(photo_tags):
        for tag in own:
            if tag in index:
                out[row, index[tag]] = True
    return out


def evaluate(model, latents, photo_tags, scorers=None) -> dict:
    """Metrics of each scorer and of the popularity baseline on held-out latents.

    A calibrated scorer is measured as it is served, ranked by its calibrated probability, with
    the expected calibration error of each photo's top 10 (`ece`) and the raw ranking's mAP beside.
    """
    relevant = relevance(photo_tags, model.tag_model.tags)
    report = {}
    for name in scorers or [model.default_scorer]:
        scores = model.score(latents, name)
        report[name] = {**ranking_metrics(scores.score, relevant), "tag_map": tagwise_map(scores.score, relevant)}
        if name in model.calibrations:
            raw = model.score(latents, name, calibrated=False).score
            report[name]["uncalibrated_map"] = ranking_metrics(raw, relevant)["map"]
            report[name]["ece"] = expected_calibration_error(scores.display, relevant)
    baseline = popularity_scores(model.tag_model.counts, len(latents))
    report["popularity"] = {**ranking_metrics(baseline, relevant), "tag_map": tagwise_map(baseline, relevant)}
    return report


def top_rows(scores: np.ndarray, top: int = ECE_TOP) -> np.ndarray:
    """(n, top) column indices of each row's highest scores, best first."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :top]


def reliability(probabilities, relevant, *, top: int = ECE_TOP, bins: int = ECE_BINS) -> dict:
    """Over each photo's `top` most probable tags: per probability bin, the mean probability, the
    share of those tags that were right, and how many fell there; and the expected calibration
    error, the count-weighted mean gap between the two."""
    probabilities, relevant = np.asarray(probabilities), np.asarray(relevant, dtype=bool)
    chosen = top_rows(probabilities, top)
    p = np.take_along_axis(probabilities, chosen, axis=1).reshape(-1)
    hit = np.take_along_axis(relevant, chosen, axis=1).reshape(-1).astype(np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, weights=p, minlength=bins) / count
        accuracy = np.bincount(which, weights=hit, minlength=bins) / count
    gaps = np.where(count > 0, np.abs(confidence - accuracy), 0.0)
    return {"ece": float((gaps * count).sum() / max(count.sum(), 1)), "confidence": confidence,
            "accuracy": accuracy, "count": count}


def expected_calibration_error(probabilities, relevant, *, top: int = ECE_TOP, bins: int = ECE_BINS) -> float:
    return reliability(probabilities, relevant, top=top, bins=bins)["ece"]
