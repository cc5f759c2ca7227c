"""An example third-party Lablr plugin: the `cosine` scorer.

Tags whose centroid points the same way as the photo's latent come first. Install it with
`pip install tests/plugin_example`, then `lablr suggest --scorer cosine photo.jpg`.
"""

import numpy as np

from lablr.core import hookimpl
from lablr.core.parts import Scores


@hookimpl
def register_scorers(register):
    register("cosine", CosineScorer)


class CosineScorer:
    def score(self, latents, tag_model):
        latents = np.atleast_2d(latents)
        centroids = tag_model.centroids()
        unit = latents / np.linalg.norm(latents, axis=1, keepdims=True).clip(1e-12)
        unit_centroids = centroids / np.linalg.norm(centroids, axis=1, keepdims=True).clip(1e-12)
        return Scores(score=unit @ unit_centroids.T)
