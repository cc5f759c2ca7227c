"""Calibrated scores: a probability that means what it says, fitted where the answer is known."""

import json
import shutil

import numpy as np
import pytest

from lablr.core.errors import BundleError
from lablr.core.model import Model
from lablr.core.pipeline import calibrate as calibration
from lablr.core.pipeline import metrics
from lablr.core.plugins import get_part

TRUE = calibration.Calibration(slope=1.5, count_slope=0.4, intercept=-3.0)


def synthetic(rows=4000, tags=12, seed=0):
    """Raw scores and tag counts, and labels drawn from the TRUE calibration: the known answer."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(0, 1.5, (rows, tags))
    counts = rng.integers(5, 400, tags).astype(float)
    relevant = rng.random((rows, tags)) < TRUE.probability(raw, counts)
    return raw, counts, relevant


def test_the_fit_recovers_the_function_that_made_the_labels():
    fitted = calibration.fit_logistic(*synthetic())
    assert fitted.slope == pytest.approx(TRUE.slope, abs=0.1)
    assert fitted.count_slope == pytest.approx(TRUE.count_slope, abs=0.1)
    assert fitted.intercept == pytest.approx(TRUE.intercept, abs=0.5)


def test_true_probabilities_have_a_small_error_and_overconfident_ones_a_large_one():
    raw, counts, relevant = synthetic(seed=1)
    honest = metrics.expected_calibration_error(TRUE.probability(raw, counts), relevant)
    overconfident = metrics.expected_calibration_error(TRUE.probability(3 * raw + 2, counts), relevant)
    assert honest < 0.03 < 0.15 < overconfident


def test_the_expected_calibration_error_follows_its_definition():
    # Two photos, top 2 each: probabilities 0.85, 0.82 (bin 8: one right of two) and 0.25, 0.22 (bin 2: both wrong)
    probabilities = np.array([[0.85, 0.25, 0.05], [0.82, 0.22, 0.01]])
    relevant = np.array([[True, False, False], [False, False, True]])
    found = metrics.reliability(probabilities, relevant, top=2, bins=10)
    assert found["count"][8] == 2 and found["count"][2] == 2 and found["count"].sum() == 4
    assert found["accuracy"][8] == 0.5 and found["confidence"][8] == pytest.approx(0.835)
    assert found["ece"] == pytest.approx((2 * abs(0.835 - 0.5) + 2 * abs(0.235 - 0)) / 4)


def test_the_count_term_is_kept_only_where_it_does_not_rank_worse():
    from lablr.core.pipeline.metrics import ranking_metrics

    raw, counts, relevant = synthetic(seed=2)
    assert calibration.fit(raw, counts, relevant).count_slope > 0  # popular tags are likelier here: kept
    rng = np.random.default_rng(2)
    relevant = rng.random(raw.shape) < calibration.sigmoid(2 * raw - 2)  # the count says nothing
    fitted = calibration.fit(raw, counts, relevant)
    ranked = ranking_metrics(fitted.logit(raw, counts), relevant)["map"]
    assert ranked >= ranking_metrics(raw, relevant)["map"]


def test_cross_fitting_scores_each_photo_with_a_model_that_never_saw_it():
    rng = np.random.default_rng(3)
    latents = rng.normal(size=(60, 3))
    photo_tags = [["a"] if i % 2 else ["b"] for i in range(60)]
    latents[5] = 50.0  # one far-away photo of tag "a": a model that saw it would find it near
    make = get_part("tag_model", "gaussian")
    scorer = get_part("scorer", "mahalanobis")()
    raw, counts, relevant = calibration.cross_fitted_scores(latents, photo_tags, ["a", "b"], make, scorer)
    assert relevant[5, 0] and counts[5].sum() == 48  # scored by a model of the other 4/5 of the photos
    whole = make().fit(latents, photo_tags, ["a", "b"])
    assert raw[5, 0] < scorer.score(latents[5:6], whole).score[0, 0]


def test_a_calibrated_bundle_shows_probabilities_ranked_as_the_calibration_ranks(tiny_bundle):
    model = Model.load(tiny_bundle)
    assert set(model.calibrations) >= {model.default_scorer, "loglik", "mahalanobis"}
    images = np.random.default_rng(4).integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    for found in model.suggest(images, k=6):
        scores = [s.score for s in found]
        assert all(0 <= s <= 1 for s in scores) and scores == sorted(scores, reverse=True)
    summary = model.summary()
    assert summary["calibrated"] and summary["min_probability"] == 0.2


def test_a_bundle_made_before_calibration_shows_raw_scores(tiny_bundle, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(tiny_bundle, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["calibration"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    model = Model.load(old)
    assert model.calibrations == {} and model.summary()["calibrated"] is False
    images = np.random.default_rng(5).integers(0, 255, (1, 16, 16, 3), dtype=np.uint8)
    assert len(model.suggest(images, k=3)[0]) == 3

    for damaged in ({"slope": "steep"}, {"slope": "nan", "count_slope": 0, "intercept": 0}):
        manifest["calibration"] = {"mahalanobis": damaged}  # a NaN would reach people as "score": NaN
        (old / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(BundleError, match="calibration is damaged"):
            Model.load(old)
