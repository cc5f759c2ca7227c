"""`mahalanobis`, the default scorer, as in the original Lablr: the nearest tags come first.

All tags are scored at once: each tag's whitening factor is precomputed by the tag model, so
the distances of a batch of latents to every tag are one matrix product, with no Python loop
over tags. The score is 1 / (1 + distance² / d): 1 at a tag's centre, 0.5 at the distance of
a typical photo of the tag.
"""

import numpy as np

from lablr.core import hookimpl
from lablr.core.parts import Scores

# Rows of latents scored per matrix product: bounds memory to about 16M floats per step.
_CHUNK_ELEMENTS = 16_000_000


@hookimpl
def register_scorers(register):
    register("mahalanobis", MahalanobisScorer)


def mahalanobis_distances(latents, tag_model) -> np.ndarray:
    """(n, d) latents -> (n, K) Mahalanobis distance to every tag of a Gaussian tag model."""
    latents = np.atleast_2d(np.asarray(latents, dtype=np.float64))
    matrix, offset = tag_model.whitening()
    kinds, dim = offset.shape
    if not kinds:  # a model whose tags all come from elsewhere (a vocabulary, the personal layer)
        return np.empty((len(latents), 0))
    rows = max(1, _CHUNK_ELEMENTS // max(1, kinds * dim))
    out = np.empty((len(latents), kinds))
    for start in range(0, len(latents), rows):
        projected = (latents[start:start + rows] @ matrix).reshape(-1, kinds, dim) - offset
        out[start:start + rows] = np.sqrt(np.einsum("nkd,nkd->nk", projected, projected))
    return out


class MahalanobisScorer:
    requires = ("whitening",)  # Gaussian whitening factors: the distances in one matrix product
    counts_popularity = False  # nearness alone: no tag's popularity is in its score

    def score(self, latents, tag_model) -> Scores:
        distance = mahalanobis_distances(latents, tag_model)
        dim = tag_model.centroids().shape[1]
        return Scores(score=1.0 / (1.0 + distance**2 / dim), distance=distance)
