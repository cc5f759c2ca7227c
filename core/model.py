"""A loaded model: encoder, tag model, scorer and visualizer, ready to suggest tags."""

import copy
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from lablr.core import bundle, defaults
from lablr.core.bundle import Manifest
from lablr.core.data import decoding as imaging
from lablr.core.data.catalog import normalize_tag
from lablr.core.errors import LablrError
from lablr.core.outputs import mark_picture
from lablr.core.parts import Scores
from lablr.core.personal import prior as personal_prior
from lablr.core.pipeline.calibrate import sigmoid
from lablr.core.plugins import check_pairing, get_part
from lablr.core.ranking import BackgroundOdds, TagProbabilities, combine, ranked_tags

PICTURE_TYPES = {"png": "image/png", "svg": "image/svg+xml"}  # the formats plot() draws in, and their media types


def check_picture_format(format: str):
    if format not in PICTURE_TYPES:
        raise LablrError(f"Unknown picture format {format!r}: use png or svg.", status=422, code="bad_parameter")


@dataclass
class Suggestion:
    tag: str
    score: float
    distance: float | None = None

    def as_dict(self):
        out = {"tag": self.tag, "score": round(self.score, 6)}
        if self.distance is not None:
            out["distance"] = round(self.distance, 4)
        return out


class Model:
    def __init__(self, parts: dict, manifest: Manifest, path: Path | None = None):
        self.encoder = parts["encoder"]
        self.tag_model = parts["tag_model"]
        self.visualizer = parts["visualizer"]
        self.part_names = manifest.part_names()
        self.default_scorer = self.part_names["scorer"]
        self.manifest = manifest
        self.path = path
        # The photos the tag model's statistics hold (lablr.core.fitted_photos): the bundle's record, or the
        # pipeline stage's that fitted them; None: not known, and the bundle saved records none
        self.fitted_photos = parts.get(bundle.FITTED_PHOTOS)
        self.calibrations = manifest.calibration  # {scorer: Calibration}: the scores shown are probabilities
        # The tags the encoder's classifier knows without training data (lablr.core.vocabulary), if any
        self.vocabulary = getattr(self.encoder, "vocabulary", None)
        self.personal_offsets = None  # this user's log-odds shifts per tag (lablr.core.personal.prior)
        self._scorers = {}
        # The last background odds derived, shared with the models with_tag_model makes: the next one
        # factors again only the tags that changed (the personal layer's feedback moves a few)
        self._latest_odds = {}

    @classmethod
    def load(cls, model=defaults.DEFAULT_MODEL) -> "Model":
        path = bundle.resolve(model)
        parts, manifest = bundle.load_parts(path)
        return cls(parts, manifest, path)

    def save(self, directory):
        stateful = {"encoder": self.encoder, "tag_model": self.tag_model, "visualizer": self.visualizer,
                    bundle.FITTED_PHOTOS: self.fitted_photos}
        return bundle.save(stateful, self.manifest, directory)

    def with_tag_model(self, tag_model, personal_offsets=None) -> "Model":
        """The same model with other tag statistics and the user's offsets (the personal layer's);
        this one is unchanged."""
        other = copy.copy(self)
        other.tag_model = tag_model
        other.fitted_photos = None  # other statistics: which photos they hold is not known here
        other.personal_offsets = personal_offsets
        for name in _CACHED:  # derived from the tag model, or cheap: derived again when first asked
            other.__dict__.pop(name, None)
        return other

    @property
    def name(self) -> str:
        return self.manifest.name or (self.path.name if self.path else "unsaved")

    @property
    def image_size(self) -> int:
        return self.encoder.image_size

    @cached_property
    def tags(self) -> list[str]:
        """Every tag the model ranks: the tag model's, then the photo vocabulary's other tags."""
        return ranked_tags(self.tag_model.tags, self.vocabulary_tags)

    @property
    def vocabulary_tags(self) -> list[str]:
        """The photo vocabulary's tags (none without one): known before any photo teaches them."""
        return [] if self.vocabulary is None else self.vocabulary.all_tags

    @cached_property
    def tag_index(self):
        return {tag: k for k, tag in enumerate(self.tags)}

    def scorer(self, name=None):
        """A registered scorer, once it is known to work with this model's tag model."""
        name = name or self.default_scorer
        if name not in self._scorers:
            check_pairing(name, self.part_names["tag_model"])
            self._scorers[name] = get_part("scorer", name)()
        return self._scorers[name]

    # -- the pipeline -------------------------------------------------------------------------------

    def decode(self, data: bytes) -> np.ndarray:
        return imaging.decode(data, self.image_size)

    def decode_all(self, datas) -> np.ndarray:
        """Several photos of one request, within its pixel budget -> (n, s, s, 3)."""
        return imaging.decode_all(datas, self.image_size)

    def encode(self, images: np.ndarray) -> np.ndarray:
        return self.encoder.encode(images)

    def score(self, latents, scorer=None, *, calibrated=True, concepts=None, bias=True) -> Scores:
        """Every tag's score; with a calibration for the scorer, ranked by it and shown as P(tag applies).

        With the photo vocabulary's probabilities of the same photos (`concepts`, (n, T) from
        `encode_with_concepts`), the scores are those of `self.tags`: both kinds on one scale
        (lablr.core.ranking). Without them, they are the tag model's alone. Without `bias`, the
        user's kept and removed suggestions near each photo do not move them (the user's prior does).
        """
        if concepts is None:
            return self._tag_model_scores(latents, scorer, calibrated, bias=bias)
        gaussian = self._gaussian_probabilities(latents, scorer) if self.tag_model.tags else None
        vocabulary = TagProbabilities(self.vocabulary.all_tags, concepts, rank_weights=self._rank_weights)
        combined = combine(gaussian, vocabulary)
        return personal_prior.adjust_ranking(combined, latents, self.tags, self.personal_offsets) if bias else combined

    def _tag_model_scores(self, latents, scorer, calibrated, *, bias=True) -> Scores:
        name = scorer or self.default_scorer
        raw = self.scorer(name).score(latents, self.tag_model)
        calibration = self.calibrations.get(name) if calibrated else None
        if calibration is None:
            return raw
        popular = personal_prior.holds_popularity(self.scorer(name), calibration)
        logit = personal_prior.adjust(calibration.logit(raw.score, self.tag_model.counts), self.personal_offsets,
                                      latents=latents, tags=self.tag_model.tags, holds_popularity=popular,
                                      scorer_name=name if bias else None)
        return Scores(score=logit, distance=raw.distance, shown=sigmoid(logit))

    def _gaussian_probabilities(self, latents, scorer) -> TagProbabilities:
        """The tag model's tags as probabilities: calibrated, or each against the encoder's background."""
        name = scorer or self.default_scorer
        if name in self.calibrations or self._background_odds is None:
            scores = self._tag_model_scores(latents, name, True, bias=False)  # biased once combined
            return TagProbabilities(self.tag_model.tags, scores.display, scores.distance, self.tag_model.counts)
        probability = self._background_odds(latents)
        if self.personal_offsets is not None:  # the background odds hold each tag's photo count
            probability = sigmoid(personal_prior.adjust(personal_prior.logit(probability), self.personal_offsets,
                                                        latents=latents, tags=self.tag_model.tags,
                                                        holds_popularity=True, scorer_name=None))
        return TagProbabilities(self.tag_model.tags, probability, None, self.tag_model.counts)

    @cached_property
    def _background_odds(self) -> BackgroundOdds | None:
        """The tag model's tags against the encoder's background, factored once per tag model."""
        background = getattr(self.encoder, "explained_variance", None)
        if background is None:
            return None
        odds = BackgroundOdds(self.tag_model, background, previous=self._latest_odds.get("odds"))
        self._latest_odds["odds"] = odds
        return odds

    @cached_property
    def _rank_weights(self):
        return self.vocabulary.rank_weights()

    def encode_with_concepts(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(latents, the photo vocabulary's probabilities (n, T) or None without one), in one run."""
        if self.vocabulary is None:
            return self.encode(images), None
        latents, logits = self.encoder.encode_with_logits(images)
        return latents, self.vocabulary.probabilities(logits, images)

    def suggest(self, images: np.ndarray, k: int = defaults.DEFAULT_K, *, scorer=None, exclude=()):
        """uint8 images (n, s, s, 3) -> for each, the k best tags, best first.

        `exclude` holds tags the photo already has, as a person typed them: they are compared in
        the catalog's normal form, so " Red " leaves out "red".
        """
        latents, concepts = self.encode_with_concepts(images)
        scores = self.score(latents, scorer, concepts=concepts)
        return [self._top(scores, row, k, exclude) for row in range(len(images))]

    def _top(self, scores, row, k, exclude):
        normal = (normalize_tag(t) for t in exclude)
        excluded = {self.tag_index[t] for t in normal if t in self.tag_index}
        order = [i for i in np.argsort(-scores.score[row], kind="stable") if i not in excluded][:k]
        shown = scores.display[row]
        distance = (lambda i: None) if scores.distance is None else (
            lambda i: None if np.isnan(scores.distance[row, i]) else float(scores.distance[row, i]))
        return [Suggestion(self.tags[i], float(shown[i]), distance(i)) for i in order]

    def plot(self, image: np.ndarray, k: int = defaults.DEFAULT_K, *, format="png", scorer=None) -> bytes:
        check_picture_format(format)
        latent, concepts = self.encode_with_concepts(image[None])
        top = self._top(self.score(latent, scorer, concepts=concepts), 0, k, ())
        picture = self.visualizer.draw(latent[0], self.tag_model, [s.tag for s in top], format=format)
        return mark_picture(picture, format)  # the API's too: `lablr plot -o` may draw again over a saved one

    def summary(self) -> dict:
        return {"name": self.name, "tags": len(self.tags), "encoder": self.part_names["encoder"],
                "scorer": self.default_scorer, "image_size": self.image_size, **self._probability_summary()}

    def _probability_summary(self) -> dict:
        """Whether scores are probabilities, and below which one a page hides a tag by default."""
        if self.default_scorer not in self.calibrations and self.vocabulary is None:
            return {"calibrated": False}
        return {"calibrated": True, "min_probability": defaults.DEFAULT_MIN_PROBABILITY}


_CACHED = [name for name, value in vars(Model).items() if isinstance(value, cached_property)]
