"""The Gaussian tag model and the scorers: exact statistics, invertible covariances, right distances."""

import numpy as np
import pytest
from scipy.spatial.distance import mahalanobis
from sklearn.covariance import OAS

from lablr.core.plugins import get_part

TAGS = ["sea", "sky", "cat"]


def make_data(n=300, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    centres = {"sea": np.full(dim, 2.0), "sky": np.full(dim, -2.0), "cat": np.zeros(dim)}
    photo_tags, latents = [], []
    for i in range(n):
        tags = [TAGS[i % 3]] + ([TAGS[(i + 1) % 3]] if i % 5 == 0 else [])
        photo_tags.append(tags)
        latents.append(centres[tags[0]] + rng.normal(size=dim) * (1 + (i % 3)))
    return np.array(latents), photo_tags


def gaussian(**settings):
    return get_part("tag_model", "gaussian")(**settings)


def test_merging_shards_gives_the_same_model_as_fitting_everything():
    latents, photo_tags = make_data()
    whole = gaussian().fit(latents, photo_tags, TAGS)
    first = gaussian().fit(latents[:120], photo_tags[:120], TAGS)
    second = gaussian().fit(latents[120:], photo_tags[120:], TAGS)
    merged = first.merge(second)
    np.testing.assert_allclose(merged.centroids(), whole.centroids(), rtol=1e-12)
    np.testing.assert_allclose(merged.covariances(), whole.covariances(), rtol=1e-10)
    np.testing.assert_array_equal(merged.counts, whole.counts)


def test_update_adds_photos_and_new_tags():
    latents, photo_tags = make_data()
    model = gaussian().fit(latents[:200], photo_tags[:200], TAGS)
    model.update(latents[200:], [tags + ["dog"] for tags in photo_tags[200:]])
    assert model.tags == TAGS + ["dog"]
    assert model.counts[-1] == 100
    np.testing.assert_allclose(model.centroids()[-1], latents[200:].mean(axis=0))


def test_a_tag_with_fewer_photos_than_dimensions_is_still_invertible():
    rng = np.random.default_rng(1)
    latents = rng.normal(size=(5, 32))
    model = gaussian().fit(latents, [["rare"]] * 5, ["rare"])
    covariance = model.covariances()[0]
    assert np.linalg.matrix_rank(covariance) == 32
    assert np.isfinite(model.dispersion()).all()


def test_shrinkage_is_close_to_scikit_learns_oas_and_vanishes_with_many_photos():
    rng = np.random.default_rng(2)
    few = rng.normal(size=(40, 10)) @ rng.normal(size=(10, 10))
    model = gaussian(shrinkage="oas").fit(few, [["t"]] * 40, ["t"])
    reference = OAS().fit(few).covariance_
    assert np.linalg.norm(model.covariances()[0] - reference) / np.linalg.norm(reference) < 0.05

    many = rng.normal(size=(20000, 4)) * [1, 2, 3, 4]
    model = gaussian().fit(many, [["t"]] * 20000, ["t"])
    np.testing.assert_allclose(model.covariances()[0], np.cov(many.T, bias=True), rtol=0.02, atol=0.02)


def test_a_rare_tag_borrows_the_shape_of_the_common_ones():
    """`shared`: 5 photos of a new tag get the typical tags' covariance, not a sphere."""
    rng = np.random.default_rng(5)
    shape = np.diag([9.0, 4.0, 1.0, 0.25])  # every tag spreads along the same axes
    common = [rng.multivariate_normal(np.full(4, 5.0 * k), shape, size=300) for k in range(3)]
    rare = rng.multivariate_normal(np.full(4, -5.0), shape, size=5)
    latents = np.concatenate(common + [rare])
    tags = [[f"t{k}"] for k in range(3) for _ in range(300)] + [["rare"]] * 5
    model = gaussian(shared=20).fit(latents, tags, ["t0", "t1", "t2", "rare"])
    variances = np.diag(model.covariances()[3])
    assert np.all(np.abs(np.log(variances / np.diag(shape))) < np.log(2.5))
    sphere = np.diag(gaussian().fit(latents, tags, ["t0", "t1", "t2", "rare"]).covariances()[3])
    assert sphere[3] > 4 * shape[3, 3]  # OAS alone pulls 5 photos towards a sphere: the thin axis is lost
    assert variances[3] < sphere[3] / 2
    # a photo of the rare kind along its long axis is nearer the rare tag than any other
    probe = np.array([[-5.0 + 6.0, -5.0, -5.0, -5.0]])
    distances = get_part("scorer", "mahalanobis")().score(probe, model).distance[0]
    assert int(np.argmin(distances)) == 3


def test_a_copy_is_updated_alone():
    latents, photo_tags = make_data()
    model = gaussian(shared=10).fit(latents, photo_tags, TAGS)
    before = model.covariances().copy()
    copy = model.copy()
    copy.update(latents[:5], [["new"]] * 5)
    assert copy.tags == TAGS + ["new"] and copy.settings() == model.settings()
    assert model.tags == TAGS
    np.testing.assert_array_equal(model.covariances(), before)


def test_mahalanobis_matches_scipy_for_every_tag():
    latents, photo_tags = make_data(dim=8)
    model = gaussian().fit(latents, photo_tags, TAGS)
    queries = np.random.default_rng(3).normal(size=(7, 8)) * 3
    scores = get_part("scorer", "mahalanobis")().score(queries, model)
    for k, (mean, covariance) in enumerate(zip(model.centroids(), model.covariances())):
        inverse = np.linalg.inv(covariance)
        for n, z in enumerate(queries):
            expected = mahalanobis(z, mean, inverse)
            assert scores.distance[n, k] == pytest.approx(expected, rel=1e-6)


def test_mahalanobis_ranks_the_nearest_tag_first():
    latents, photo_tags = make_data()
    model = gaussian().fit(latents, photo_tags, TAGS)
    scores = get_part("scorer", "mahalanobis")().score(np.full((1, 6), 2.0), model)
    assert TAGS[int(np.argmax(scores.score[0]))] == "sea"
    assert 0 < scores.score.min() and scores.score.max() <= 1


def test_loglik_prefers_the_popular_tag_between_two_equally_close_ones():
    rng = np.random.default_rng(4)
    same_place = rng.normal(size=(400, 3))
    photo_tags = [["popular"]] * 300 + [["rare"]] * 100
    model = gaussian().fit(same_place, photo_tags, ["popular", "rare"])
    scores = get_part("scorer", "loglik")().score(np.zeros((1, 3)), model)
    assert scores.score[0, 0] > scores.score[0, 1]
    assert scores.display[0].sum() == pytest.approx(1.0)
    # Mahalanobis sees no difference worth a popularity prior: both tags sit at the same place
    distance = get_part("scorer", "mahalanobis")().score(np.zeros((1, 3)), model).distance[0]
    assert distance[0] == pytest.approx(distance[1], rel=0.2)
