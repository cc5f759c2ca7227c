"""How the user's own habits move a tag's probability: shifts of its log-odds.

The served probability of a tag is the bundle's calibrated one, which already holds the tag's
popularity among everyone's photos (the tag model's photo count). Two things about this user
move it, each as a shift of the log-odds, added in `adjust` and `adjust_ranking`:

1. The user's own tag frequencies (a prior shift, one per tag). The bundle's prior that a photo
   carries tag t is pi_m = count(t) / photos. The user's is estimated with a Beta prior centred
   on it, worth s photos: pi_u = (n_u(t) + s pi_m) / (N_u + s), where the user gave t to n_u(t)
   of their N_u photos. Changing the prior of a binary label from pi_m to pi_u moves its
   posterior log-odds by logit(pi_u) - logit(pi_m) (Bayes' rule; the likelihood of the photo is
   unchanged). s is how far this user's habits are from everyone's, estimated from their own
   counts (`prior_strength`): a user who tags as the bundle's photographers did keeps the
   bundle's priors; one who gave a new tag to 5 of 5 photos, or tags unlike anyone, is led by
   their own counts.

2. What the user did with the suggestions they saw on similar photos (a local bias). Each
   suggestion shown is a labelled example: kept (1) or removed (0), at the log-odds l the user
   saw. For the photo being scored, the bias b of a tag is the maximum a posteriori estimate of
   logit P_u = l + b under a Gaussian prior N(0, variance) on b, from the examples on the
   user's `neighbours` photos nearest to it in latent space: a tag removed where it was
   predicted likely falls fast on photos like those, one removed where it was unlikely anyway
   barely moves, one kept more often than predicted rises, and photos unlike them keep their
   own evidence. (One bias per tag on every photo learned noise where the model was right: it
   cost 0.03 mAP on photos like the bundle's own; docs/personal.md.)
"""

from dataclasses import dataclass, replace

import numpy as np

from lablr.core import defaults
from lablr.core.parts import Scores
from lablr.core.pipeline.calibrate import sigmoid

_EDGE = 1e-9  # probabilities are kept inside (0, 1) so that their log-odds are finite


def logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), _EDGE, 1 - _EDGE)
    return np.log(p) - np.log1p(-p)


def prior_offsets(model_counts, model_photos: float, user_counts, user_photos: int,
                  strength: float | None = None) -> np.ndarray:
    """(K,) the log-odds shift from the model's tag priors to this user's (see 1. above); the prior's
    strength is estimated from the user's counts unless given."""
    if user_photos == 0:
        return np.zeros(len(model_counts))
    model_prior = np.clip(np.asarray(model_counts, dtype=np.float64) / max(model_photos, 1.0), _EDGE, 1 - _EDGE)
    user_counts = np.asarray(user_counts, dtype=np.float64)
    if strength is None:
        strength = prior_strength(model_prior, user_counts, user_photos)
    user_prior = (user_counts + strength * model_prior) / (user_photos + strength)
    return logit(user_prior) - logit(model_prior)


def prior_strength(model_prior, user_counts, user_photos: int) -> float:
    """How many photos the model's tag priors are worth against this user's: the strength s under
    which the user's counts are most likely, each n_u(t) ~ Beta-binomial(N_u, s pi_m, s (1 - pi_m))
    (an empirical-Bayes estimate). A user who tags as everyone does gets a large s, and their
    priors stay the model's; one whose habits differ gets a small one, and their own counts lead."""
    a, b = STRENGTHS[:, None] * model_prior, STRENGTHS[:, None] * (1 - model_prior)
    likelihood = (log_beta(user_counts + a, user_photos - user_counts + b) - log_beta(a, b)).sum(axis=1)
    return float(STRENGTHS[np.argmax(likelihood)])


# The strengths tried: 2 photos (below that, a user's first few photos would overturn the bundle's
# priors of every tag they did not use) to 65,536 (the bundle's priors, as good as unchanged)
STRENGTHS = 2.0 ** np.arange(1, 16.5, 0.5)


def log_beta(a, b):
    return log_gamma(a) + log_gamma(b) - log_gamma(a + b)


def log_gamma(x):
    """log Γ(x) for x > 0, elementwise: Stirling's series from x + 7 on, then Γ(x) = Γ(x + 7) / x(x+1)...(x+6)."""
    x = np.asarray(x, dtype=np.float64)
    shifted = x + 7
    series = 1 / (12 * shifted) - 1 / (360 * shifted**3) + 1 / (1260 * shifted**5)
    stirling = (shifted - 0.5) * np.log(shifted) - shifted + 0.5 * np.log(2 * np.pi) + series
    return stirling - sum(np.log(x + i) for i in range(7))


def fitted_bias(tag, shown_logits, kept, tags: int, variance):
    """(tags,) the MAP log-odds bias of each tag from the suggestions the user saw (see 2. above):
    suggestion i was of tag[i], shown at shown_logits[i], and kept (1.0) or not. `variance` is one
    prior variance, or one per tag."""
    b = np.zeros(tags)
    for _ in range(50):  # Newton on a concave objective, one dimension per tag: a handful of steps
        p = sigmoid(shown_logits + b[tag])
        gradient = np.bincount(tag, kept - p, tags) - b / variance
        curvature = np.bincount(tag, p * (1 - p), tags) + 1 / variance
        step = gradient / curvature
        b += step
        if np.abs(step).max(initial=0) < 1e-9:
            break
    return np.where(np.isfinite(b), b, 0.0)


BIAS_VARIANCES = 2.0 ** np.arange(-3, 5)  # the prior variances tried: 1/8 to 16
CHECKED_PHOTOS = 256  # the user's latest photos with answers on which each variance is tried


@dataclass(frozen=True)
class Reactions:
    """What the user did with the suggestions they saw, and on which of their photos."""

    latents: np.ndarray  # (E, d) every photo the user taught, in order
    tags: list  # the tags ever shown
    event: np.ndarray  # (M,) the photo each suggestion was shown on (a row of latents), in order
    tag: np.ndarray  # (M,) its tag (an index into tags)
    shown_logits: np.ndarray  # (M,) the log-odds it was shown at, without its bias
    kept: np.ndarray  # (M,) 1.0 if the user kept it
    variance: float | np.ndarray = defaults.PERSONAL_BIAS_DEFAULT_VARIANCE  # a bias's prior variance, or each tag's

    def bias(self, latents, tags, *, neighbours: int = defaults.PERSONAL_BIAS_NEIGHBOURS) -> np.ndarray:
        """(n, len(tags)) each tag's bias for each photo, from the suggestions on the user's
        `neighbours` photos most like it (see 2. above)."""
        latents = np.atleast_2d(np.asarray(latents, dtype=np.float64))
        out = np.zeros((len(latents), len(tags)))
        index = {tag: k for k, tag in enumerate(tags)}
        columns = np.array([index.get(tag, -1) for tag in self.tags], dtype=int)
        served = columns >= 0
        if not len(self.tag) or not served.any():
            return out
        for row, near in enumerate(nearest(self.latents, latents, neighbours)):
            chosen = self.shown_on(near)
            b = fitted_bias(self.tag[chosen], self.shown_logits[chosen], self.kept[chosen], len(self.tags),
                            self.variance)
            out[row, columns[served]] = b[served]
        return out

    def shown_on(self, photos) -> np.ndarray:
        """The suggestions shown on these photos (rows of latents), as indices."""
        starts, ends = np.searchsorted(self.event, photos), np.searchsorted(self.event, photos, side="right")
        return np.concatenate([np.arange(start, end) for start, end in zip(starts, ends)] + [np.zeros(0, int)])

    def with_fitted_variance(self, neighbours: int = defaults.PERSONAL_BIAS_NEIGHBOURS) -> "Reactions":
        """These reactions with each tag's prior variance the one that best predicts the user's own
        answers: each of their latest photos with answers is predicted from the answers on its
        nearest other photos, under each variance tried (cross-validation). A tag answered as the
        probabilities shown predict gets a small variance, and biases near 0; one the user keeps
        removing where it was shown as likely, a large one. A tag with nothing to compare (answered
        on one photo, or never near another answer of it) keeps the default."""
        fit = self._answers_predicted(neighbours)
        if fit is None:
            return self
        told = np.ptp(fit, axis=0) > 1e-9  # tags whose answers the variance changes the prediction of
        return replace(self, variance=np.where(told, BIAS_VARIANCES[np.argmax(fit, axis=0)], self.variance))

    def _answers_predicted(self, neighbours: int) -> np.ndarray | None:
        """(variances tried, tags) the log-likelihood of the answers on the latest photos, each
        predicted from the answers on its nearest other photos; None with nothing to predict from."""
        checked = np.unique(self.event)[-CHECKED_PHOTOS:]
        others = nearest(self.latents, self.latents[checked], neighbours, leave_out=checked)
        trained = [self.shown_on(near) for near in others]
        tested = [self.shown_on([photo]) for photo in checked]
        trained_rows = np.repeat(np.arange(len(checked)), [len(t) for t in trained])
        tested_rows = np.repeat(np.arange(len(checked)), [len(t) for t in tested])
        trained, tested = np.concatenate(trained), np.concatenate(tested)
        if not len(trained):
            return None
        # one bias per (photo checked, variance tried, tag), all fitted at once
        tried, tags = len(BIAS_VARIANCES), len(self.tags)
        variances = np.arange(tried)[:, None]
        keys = ((trained_rows * tried + variances) * tags + self.tag[trained]).ravel()
        unique, group = np.unique(keys, return_inverse=True)
        b = fitted_bias(group, np.tile(self.shown_logits[trained], tried), np.tile(self.kept[trained], tried),
                        len(unique), BIAS_VARIANCES[unique // tags % tried])
        wanted = (tested_rows * tried + variances) * tags + self.tag[tested]  # (variances tried, answers)
        where = np.minimum(np.searchsorted(unique, wanted), len(unique) - 1)
        z = self.shown_logits[tested] + np.where(unique[where] == wanted, b[where], 0.0)
        kept = self.kept[tested]
        likelihood = -(kept * np.logaddexp(0, -z) + (1 - kept) * np.logaddexp(0, z))
        return np.stack([np.bincount(self.tag[tested], row, tags) for row in likelihood])


def nearest(rows, latents, count: int, leave_out=None) -> np.ndarray:
    """(n, count) the indices of the rows nearest each latent (all of them, if no more); with
    `leave_out` (n,), the row that latent is, left out."""
    rows, latents = np.asarray(rows, dtype=np.float64), np.atleast_2d(latents)
    squared = (rows**2).sum(axis=1) - 2 * latents @ rows.T  # + |latent|^2, the same for the whole line
    if leave_out is not None:
        squared[np.arange(len(latents)), leave_out] = np.inf
    available = len(rows) - (leave_out is not None)
    if available <= count:
        return np.argsort(squared, axis=1)[:, :max(available, 0)]
    return np.argpartition(squared, count - 1, axis=1)[:, :count]


@dataclass(frozen=True)
class Offsets:
    """A user's log-odds shifts, for the tags of the model they were made for."""

    prior: np.ndarray  # (K,) from the user's tag frequencies, in the tag model's order
    reactions: Reactions | None  # the suggestions they kept and removed: a bias near each photo
    bias_scorer: str  # the scorer whose log-odds the user was shown: the bias is on its scale alone

    def bias(self, latents, tags) -> np.ndarray:
        """(n, len(tags)) each tag's bias near each photo."""
        if self.reactions is None:
            return np.zeros((len(np.atleast_2d(latents)), len(tags)))
        return self.reactions.bias(latents, tags)


def adjust(logits: np.ndarray, offsets: Offsets | None, *, latents, tags, holds_popularity: bool,
           scorer_name: str | None):
    """Log-odds (n, K) of `tags` for these latents as this user's: where the tag model's are moved.

    The prior shift moves a popularity the log-odds hold (`holds_popularity`): through the
    scorer's own score (`loglik`'s log prior; a scorer says so with `counts_popularity = True`),
    a calibration's count term, or the photo vocabulary's background odds. Where none holds one
    (`mahalanobis`, whose calibration dropped its count term because popularity ranked worse),
    there is none to move. The bias was fitted on the log-odds of the scorer the user was shown
    (`scorer_name`), and applies to that scorer's alone.
    """
    if offsets is None:
        return logits
    bias = offsets.bias(latents, tags) if scorer_name == offsets.bias_scorer else 0.0
    return logits + bias + (offsets.prior if holds_popularity else 0.0)


def adjust_ranking(scores: Scores, latents, tags: list[str], offsets: Offsets | None) -> Scores:
    """A ranking of tag-model and photo-vocabulary tags (lablr.core.ranking) as this user's: each tag's
    probability moved by its bias. The ranking is probability x a weight per tag, so it moves with it."""
    if offsets is None or offsets.reactions is None:
        return scores
    shift = offsets.bias(latents, tags)
    shown = np.where(shift != 0, sigmoid(logit(scores.display) + shift), scores.display)
    ranking = scores.score * shown / np.maximum(scores.display, _EDGE)
    return Scores(score=ranking, distance=scores.distance, shown=shown)


def holds_popularity(scorer, calibration) -> bool:
    """Whether a scorer's calibrated log-odds hold each tag's popularity."""
    return bool(getattr(scorer, "counts_popularity", False) or calibration.count_slope != 0)
