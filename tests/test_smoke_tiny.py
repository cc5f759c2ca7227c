"""The tiny model every test session trains really suggests tags for a new drawing."""

import io

import numpy as np
from conftest import COLOURS, SHAPES, draw_shape

from lablr.core.data import decoding as images
from lablr.core.model import Model


def drawing(colour, shape, seed):
    buffer = io.BytesIO()
    draw_shape(colour, shape, seed=seed).save(buffer, "PNG")
    return images.decode(buffer.getvalue(), 16)


def test_tiny_bundle_suggests(tiny_bundle):
    model = Model.load(tiny_bundle)
    assert sorted(model.tag_model.tags) == ["blue", "circle", "green", "red", "square", "triangle"]

    photo = drawing("red", "circle", seed=1000)  # a drawing the model never saw
    (found,) = model.suggest(photo[None], 6)
    assert sorted(s.tag for s in found) == sorted(model.tag_model.tags)
    distances = np.array([s.distance for s in found])
    scores = np.array([s.score for s in found])
    assert np.all(np.diff(scores) <= 0)  # most probable first
    # The score is the calibrated probability of the Mahalanobis similarity 1 / (1 + d²/d) and the tag's count
    counts = model.tag_model.counts[[model.tag_index[s.tag] for s in found]]
    expected = model.calibrations["mahalanobis"].probability(1 / (1 + distances**2 / 4), counts)
    np.testing.assert_allclose(scores, expected, rtol=1e-4)

    # The distances are the Mahalanobis distances to each tag's Gaussian, computed here the plain way
    z = model.encode(photo[None])[0]
    index = {tag: k for k, tag in enumerate(model.tag_model.tags)}
    means, covariances = model.tag_model.centroids(), model.tag_model.covariances()
    expected = [np.sqrt((z - means[index[s.tag]]) @ np.linalg.solve(covariances[index[s.tag]], z - means[index[s.tag]]))
                for s in found]
    np.testing.assert_allclose(distances, expected, rtol=1e-4)

    # Better than any fixed ranking: a photo's own colour and shape come before the other tags
    ranks = []
    for colour in COLOURS:
        for shape in SHAPES:
            for seed in (1001, 1002, 1003):
                tags = [s.tag for s in model.suggest(drawing(colour, shape, seed)[None], 6)[0]]
                ranks += [tags.index(colour) + 1, tags.index(shape) + 1]
    assert np.mean(ranks) < 3.5  # a ranking that ignored the photo would average 3.5 over these drawings
