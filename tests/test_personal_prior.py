"""The personal prior's strength comes from the user's own counts: a user who tags as the bundle's
photographers did keeps the bundle's priors; one whose habits differ is led by their own."""

import numpy as np

from lablr.core.personal.prior import prior_offsets

BUNDLE_PHOTOS = 2000
BUNDLE_COUNTS = np.array([900, 400, 200, 120, 60, 30, 10, 5])


def test_a_user_who_tags_as_everyone_does_keeps_the_bundles_priors():
    rng = np.random.default_rng(0)
    photos = 300
    counts = rng.binomial(photos, BUNDLE_COUNTS / BUNDLE_PHOTOS)  # this user's tags, drawn as the bundle's were
    shift = prior_offsets(BUNDLE_COUNTS, BUNDLE_PHOTOS, counts, photos)
    assert np.abs(shift).max() < 0.1


def test_a_user_whose_habits_differ_is_led_by_their_own_counts():
    photos = 300
    counts = np.array([0, 0, 10, 120, 280, 0, 0, 300])  # the bundle's rarest tag on every photo, its commonest never
    shift = prior_offsets(BUNDLE_COUNTS, BUNDLE_PHOTOS, counts, photos)
    assert shift[-1] > 4 and shift[4] > 2  # well above the bundle's priors
    assert shift[0] < -3  # a tag everyone uses and this user never does falls
    assert np.all(np.sign(shift) == np.sign(counts / photos - BUNDLE_COUNTS / BUNDLE_PHOTOS))


def test_a_tag_given_to_five_of_five_photos_is_led_by_the_user():
    counts = np.append(np.zeros(len(BUNDLE_COUNTS)), 5)  # a new tag, and nothing else
    shift = prior_offsets(np.append(BUNDLE_COUNTS, 5), BUNDLE_PHOTOS + 5, counts, 5)
    assert shift[-1] > 4


def reactions_of(rng, kept_as):
    """A user's answers on 60 photos in 3 groups of similar ones, 4 suggestions shown on each."""
    from lablr.core.personal.prior import Reactions

    latents = np.repeat(np.eye(3) * 10, 20, axis=0) + rng.normal(size=(60, 3))
    event = np.repeat(np.arange(60), 4)
    tag = np.tile(np.arange(4), 60)
    shown = rng.uniform(-2, 2, size=len(event))
    return Reactions(latents, ["a", "b", "c", "d"], event, tag, shown, kept_as(shown, tag, event).astype(float))


def test_answers_as_the_probabilities_shown_predict_keep_the_biases_small():
    rng = np.random.default_rng(0)
    calibrated = reactions_of(rng, lambda shown, tag, event: rng.uniform(size=len(shown)) < 1 / (1 + np.exp(-shown)))
    assert np.all(calibrated.with_fitted_variance().variance <= 1)


def test_a_user_who_keeps_removing_one_tag_on_similar_photos_gets_large_biases():
    rng = np.random.default_rng(0)
    # tag "a" is never kept on the first group of photos; otherwise the answers are as shown
    removing = reactions_of(rng, lambda shown, tag, event: ((tag != 0) | (event >= 20))
                            & (rng.uniform(size=len(shown)) < 1 / (1 + np.exp(-shown))))
    fitted = removing.with_fitted_variance()
    assert fitted.variance[0] >= 4  # tag "a"
    bias = fitted.bias(np.array([[10.0, 0, 0], [0, 10.0, 0]]), ["a", "b"])
    assert bias[0, 0] < -2 and abs(bias[1, 0]) < 1  # "a" falls on photos like the first group alone
