"""`loglik`: each tag's full Gaussian log-likelihood plus the log of its popularity.

Among tags that fit a photo equally well, the more popular one wins, since Lablr is about
views. The score is the log posterior of the tag given the photo (Bayes' rule over the tags,
popularity as the prior), shown to people as a probability; ranking by it is ranking by
log-likelihood + log prior.
"""

import numpy as np

from lablr.core import hookimpl
from lablr.core.parts import Scores

from .mahalanobis import mahalanobis_distances


@hookimpl
def register_scorers(register):
    register("loglik", LogLikelihoodScorer)


class LogLikelihoodScorer:
    requires = ("whitening",)  # Gaussian whitening factors: the distances in one matrix product
    counts_popularity = True  # its score holds each tag's log prior (lablr.core.personal.prior)

    def score(self, latents, tag_model) -> Scores:
        distance = mahalanobis_distances(latents, tag_model)
        dim = tag_model.centroids().shape[1]
        log_prior = np.log(tag_model.counts / tag_model.counts.sum())
        log_likelihood = -0.5 * (distance**2 + tag_model.dispersion() + dim * np.log(2 * np.pi))
        joint = log_likelihood + log_prior
        top = joint.max(axis=1, keepdims=True)
        log_posterior = joint - top - np.log(np.exp(joint - top).sum(axis=1, keepdims=True))
        return Scores(score=log_posterior, distance=distance, shown=np.exp(log_posterior))
