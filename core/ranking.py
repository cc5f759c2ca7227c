"""One ranking: the photo vocabulary's tags and the Gaussian tags learned from photos, on one scale.

A bundle with a photo vocabulary (lablr.core.vocabulary) knows tags two ways. The classifier's
concepts give P(tag) with no training data; the Gaussian tags (a Flickr build, `lablr fit`, the
user's personal layer) give P(tag | where the photo falls among photos that carry it). Both are
probabilities, so they rank together. Where both name a tag (the user has taught "cat"), they
are averaged, the Gaussian weighing as many photos as it has seen against the classifier's
fixed worth of CONCEPT_PHOTOS photos: the user's evidence counts more as it grows.

A Gaussian tag's probability is its bundle's calibrated score when the bundle has a calibration
(fitted on held-out photos by `lablr fit`, `build flickr`). A bundle that ships no photos of its
own has none: there each tag's Gaussian is weighed against the encoder's background, the
Gaussian of all the photos its PCA was fitted on, as the one-tag-against-the-rest Bayes rule
P(tag | z) = n_t N_t(z) / (n_t N_t(z) + n_rest N_bg(z)), with n_rest at least BACKGROUND_PHOTOS.
Five photos of one cat are nearly one point: each tag's covariance leans on a prior spread worth
SPREAD_PHOTOS photos, WITHIN_SHARE of the background's (the share of a tag's own spread in the
spread of all photos: 0.83 over openclipart-effnet's 400 tags), so it does not claim certainty
it has not seen.
"""

from dataclasses import dataclass

import numpy as np

from lablr.core.parts import Scores
from lablr.core.pipeline.calibrate import sigmoid

CONCEPT_PHOTOS = 10.0  # what the classifier's word on a tag is worth, in the user's photos of it
BACKGROUND_PHOTOS = 50.0  # the fewest photos assumed not to carry a tag, against its Gaussian
SPREAD_PHOTOS = 10.0  # what the prior spread of a user's tag is worth, in photos
WITHIN_SHARE = 0.8  # the prior spread of a tag, as a share of the background's


@dataclass
class TagProbabilities:
    tags: list[str]
    probability: np.ndarray  # (n, K)
    distance: np.ndarray | None = None  # (n, K) Mahalanobis distance of Gaussian tags, NaN elsewhere
    photos: np.ndarray | None = None  # (K,) photos behind each tag (Gaussian tags)
    rank_weights: np.ndarray | None = None  # (K,) ranking = probability x weight (specific before general)


def ranked_tags(gaussian_tags, concept_tags) -> list[str]:
    """The tags of one ranking, in its columns' order: the Gaussian tags, then the other concepts."""
    known = set(gaussian_tags)
    return list(gaussian_tags) + [tag for tag in concept_tags if tag not in known]


def combine(gaussian: TagProbabilities | None, concepts: TagProbabilities) -> Scores:
    """The scores of every tag either side knows, in the order of `ranked_tags`."""
    known = gaussian.tags if gaussian is not None else []
    column = {tag: k for k, tag in enumerate(ranked_tags(known, concepts.tags))}
    n, size = len(concepts.probability), len(column)
    probability, distance, photos = np.zeros((n, size)), np.full((n, size), np.nan), np.zeros(size)
    if known:
        probability[:, :len(known)] = gaussian.probability
        photos[:len(known)] = gaussian.photos
        if gaussian.distance is not None:
            distance[:, :len(known)] = gaussian.distance
    columns = np.array([column[tag] for tag in concepts.tags], dtype=int)
    taught = photos[columns] / (photos[columns] + CONCEPT_PHOTOS)  # 0 for a tag no photo taught
    probability[:, columns] = taught * probability[:, columns] + (1 - taught) * concepts.probability
    ranking = probability.copy()
    if concepts.rank_weights is not None:
        ranking[:, columns] *= concepts.rank_weights
    return Scores(score=ranking, distance=distance, shown=probability)


def whitening_factors(means, covariances) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matrix (d, K*d), offset (K, d), log-determinants (K,)) of K Gaussians: row k of
    (z @ matrix).reshape(K, d) - offset has z's squared Mahalanobis distance to Gaussian k as its
    squared norm, so a batch of photos is scored against every Gaussian in one matrix product.
    Raises numpy's LinAlgError for a covariance that is not positive definite."""
    cholesky = np.linalg.cholesky(covariances)
    # covariance = C C^T, so distance² = |C^-1 (z - mean)|² = |(z - mean) @ W|² with W = C^-T
    per_tag = np.swapaxes(np.linalg.inv(cholesky), 1, 2)
    kinds, dim = np.shape(means)
    matrix = np.ascontiguousarray(per_tag.transpose(1, 0, 2).reshape(dim, kinds * dim))
    offset = np.einsum("kd,kde->ke", means, per_tag)
    logdet = 2 * np.log(np.diagonal(cholesky, axis1=1, axis2=2)).sum(axis=1)
    return matrix, offset, logdet


class BackgroundOdds:
    """P(tag | z) of each Gaussian tag against the background N(0, diag(background_variance)).

    Each tag's covariance, leaned on the background's, is factored here, once per tag model: at
    128 dimensions a Cholesky per tag costs more than the rest of a suggestion, so a photo costs
    one matrix product, as with the tag model's own whitening (lablr.plugins.mahalanobis). Given
    the odds of the tag model before (`previous`), only the tags whose statistics changed since
    are factored again: a feedback moves a few tags, not all of them.
    """

    def __init__(self, tag_model, background_variance, previous: "BackgroundOdds | None" = None):
        variance = np.maximum(np.asarray(background_variance, np.float64), 1e-12)
        self.variance, self.log_variance = variance, np.log(variance).sum()
        # kept so that the next tag model's odds know which tags changed
        self.tags, self.counts = list(tag_model.tags), np.asarray(tag_model.counts, np.float64)
        self.means, self.covariances = tag_model.centroids(), tag_model.covariances()
        kinds, dim = self.means.shape
        blocks, self.offset, self.logdet = np.empty((dim, kinds, dim)), np.empty((kinds, dim)), np.empty(kinds)
        kept, source = self._unchanged(previous)
        if len(kept):
            blocks[:, kept] = previous.whitening.reshape(dim, -1, dim)[:, source]
            self.offset[kept], self.logdet[kept] = previous.offset[source], previous.logdet[source]
        fresh = np.setdiff1d(np.arange(kinds), kept)
        if len(fresh):
            weights = (self.counts[fresh] / (self.counts[fresh] + SPREAD_PHOTOS))[:, None, None]
            blended = weights * self.covariances[fresh] + (1 - weights) * np.diag(WITHIN_SHARE * variance)
            matrix, self.offset[fresh], self.logdet[fresh] = whitening_factors(self.means[fresh], blended)
            blocks[:, fresh] = matrix.reshape(dim, len(fresh), dim)
        self.whitening = blocks.reshape(dim, kinds * dim)
        rest = np.maximum(self.counts.sum() - self.counts, BACKGROUND_PHOTOS)
        # what does not depend on the photo: each tag's log prior odds and its normalising constant
        self.constant = np.log(np.maximum(self.counts, 1e-12)) - 0.5 * self.logdet - np.log(rest)

    def _unchanged(self, previous) -> tuple[np.ndarray, np.ndarray]:
        """(rows here, the same tags' rows in `previous`) of the tags whose statistics are as they were."""
        nothing = np.zeros(0, int), np.zeros(0, int)
        if previous is None or previous.means.shape[1:] != self.means.shape[1:] or \
                not np.array_equal(previous.variance, self.variance):
            return nothing
        row_of = {tag: k for k, tag in enumerate(previous.tags)}
        here = np.array([k for k, tag in enumerate(self.tags) if tag in row_of], int)
        if not len(here):
            return nothing
        there = np.array([row_of[self.tags[k]] for k in here], int)
        same = ((previous.counts[there] == self.counts[here]) & (previous.means[there] == self.means[here]).all(axis=1)
                & (previous.covariances[there] == self.covariances[here]).all(axis=(1, 2)))
        return here[same], there[same]

    def __call__(self, latents) -> np.ndarray:
        latents = np.atleast_2d(np.asarray(latents, np.float64))
        log_background = -0.5 * ((latents**2 / self.variance).sum(axis=1) + self.log_variance)
        kinds, dim = self.offset.shape
        whitened = (latents @ self.whitening).reshape(len(latents), kinds, dim) - self.offset
        log_tag = -0.5 * np.einsum("nkd,nkd->nk", whitened, whitened)  # the 2π terms cancel
        return sigmoid(self.constant + log_tag - log_background[:, None])
