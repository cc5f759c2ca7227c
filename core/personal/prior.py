"""How the user's own habits move a tag's probability: one log-odds offset per tag.

The served probability of a tag is the bundle's calibrated one, which already holds the tag's
popularity among everyone's photos (the tag model's photo count). Two things about this user
move it, each as a shift of the log-odds, added in `adjust` (the one place they are applied):

1. The user's own tag frequencies (a prior shift). The bundle's prior that a photo carries tag
   t is pi_m = count(t) / photos. The user's is estimated with a Beta prior centred on it,
   worth `strength` photos: pi_u = (n_u(t) + strength * pi_m) / (N_u + strength), where the
   user gave t to n_u(t) of their N_u photos. Changing the prior of a binary label from pi_m
   to pi_u moves its posterior log-odds by logit(pi_u) - logit(pi_m) (Bayes' rule; the
   likelihood of the photo is unchanged). A tag the user gave to 5 of 5 photos gains about
   +3 in log-odds; a tag they never used loses a little more with every photo they publish.

2. What the user did with the suggestions they saw (a per-user bias). Each suggestion shown
   is a labelled example: kept (1) or removed (0), at the log-odds l the user saw. The bias b
   of a tag is the maximum a posteriori estimate of logit P_u = l + b under a Gaussian prior
   N(0, variance) on b: a tag removed where it was predicted likely falls fast, one removed
   where it was unlikely anyway barely moves, and one kept more often than predicted rises.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from lablr.core import defaults
from lablr.core.parts import Scores
from lablr.core.pipeline.calibrate import sigmoid

_EDGE = 1e-9  # probabilities are kept inside (0, 1) so that their log-odds are finite


def logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), _EDGE, 1 - _EDGE)
    return np.log(p) - np.log1p(-p)


def prior_offsets(model_counts, model_photos: float, user_counts, user_photos: int,
                  strength: float = defaults.PERSONAL_PRIOR_PHOTOS) -> np.ndarray:
    """(K,) the log-odds shift from the model's tag priors to this user's (see 1. above)."""
    if user_photos == 0:
        return np.zeros(len(model_counts))
    model_prior = np.asarray(model_counts, dtype=np.float64) / max(model_photos, 1.0)
    user_prior = (np.asarray(user_counts, dtype=np.float64) + strength * model_prior) / (user_photos + strength)
    return logit(user_prior) - logit(model_prior)


def bias(shown_logits, kept, variance: float = defaults.PERSONAL_BIAS_VARIANCE) -> float:
    """The MAP log-odds bias of one tag from the suggestions of it the user saw (see 2. above)."""
    shown_logits = np.asarray(shown_logits, dtype=np.float64)
    kept = np.asarray(kept, dtype=np.float64)
    if not len(shown_logits):
        return 0.0
    b = 0.0
    for _ in range(50):  # Newton on a concave one-dimensional objective: a handful of steps
        p = 0.5 * (1 + np.tanh(0.5 * (shown_logits + b)))
        gradient = float((kept - p).sum()) - b / variance
        curvature = float((p * (1 - p)).sum()) + 1 / variance
        step = gradient / curvature
        b += step
        if abs(step) < 1e-9:
            break
    return b if math.isfinite(b) else 0.0


@dataclass(frozen=True)
class Offsets:
    """A user's log-odds shifts, one per tag of the model they were made for."""

    prior: np.ndarray  # (K,) from the user's tag frequencies
    bias: np.ndarray  # (K,) from the suggestions they kept and removed
    bias_scorer: str  # the scorer whose log-odds the user was shown: the bias is on its scale alone
    tag_bias: dict = field(default_factory=dict)  # tag -> bias, every tag's: a ranking with a photo vocabulary


def adjust(logits: np.ndarray, offsets: Offsets | None, *, holds_popularity: bool, scorer_name: str | None):
    """Log-odds (n, K) as this user's: the one place the personal offsets are applied.

    The prior shift moves a popularity the log-odds hold (`holds_popularity`): through the
    scorer's own score (`loglik`'s log prior; a scorer says so with `counts_popularity = True`),
    a calibration's count term, or the photo vocabulary's background odds. Where none holds one
    (`mahalanobis`, whose calibration dropped its count term because popularity ranked worse),
    there is none to move. The bias was fitted on the log-odds of the scorer the user was shown
    (`scorer_name`), and applies to that scorer's alone.
    """
    if offsets is None:
        return logits
    bias = offsets.bias if scorer_name == offsets.bias_scorer else 0.0
    return logits + bias + (offsets.prior if holds_popularity else 0.0)


def adjust_ranking(scores: Scores, tags: list[str], offsets: Offsets | None) -> Scores:
    """A ranking of tag-model and photo-vocabulary tags (lablr.core.ranking) as this user's: each tag's
    probability moved by its bias. The ranking is probability x a weight per tag, so it moves with it."""
    if offsets is None or not offsets.tag_bias:
        return scores
    columns = [k for k, tag in enumerate(tags) if offsets.tag_bias.get(tag)]
    if not columns:
        return scores
    shift = np.array([offsets.tag_bias[tags[k]] for k in columns])
    shown, ranking = scores.display.copy(), scores.score.copy()
    before = shown[:, columns]
    after = sigmoid(logit(before) + shift)
    ranking[:, columns] *= after / np.maximum(before, _EDGE)
    shown[:, columns] = after
    return Scores(score=ranking, distance=scores.distance, shown=shown)


def holds_popularity(scorer, calibration) -> bool:
    """Whether a scorer's calibrated log-odds hold each tag's popularity."""
    return bool(getattr(scorer, "counts_popularity", False) or calibration.count_slope != 0)
