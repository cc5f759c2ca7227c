"""The one pipeline from catalog to bundle, stage by stage:

    select -> encode -> fit tag statistics -> calibrate -> picture -> evaluate -> save

`lablr train` (train.py), `lablr fit` and `fit --add` (fit.py), `fit --shard` and `merge`
(shard.py), `fit --dask` (on_dask.py), `lablr build flickr` and scripts/build_bundle.py are
short compositions of these stages, driven by a recipe (recipe.py). A tag source that a bundle
learns from photos is fitted in one place, `fit_tags`; what depends on the fitted tags
(calibration, picture) follows from there.

Encoded photos always come ordered by key, whatever order the image cache keeps them in, so
that fitting the same photos in one run or in shards merged later gives the same model up to
float rounding (the calibration's folds follow the order).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lablr.core.bundle import FITTED_PHOTOS, Manifest, PartSpec, TrainingData
from lablr.core.data.catalog import Catalog
from lablr.core.data.image_cache import ImageSet, encode_set
from lablr.core.data.selection import Rules, Selection, choose_rules, select
from lablr.core.data.selection import record_split as save_split
from lablr.core.errors import LablrError
from lablr.core.fitted_photos import FittedPhotos
from lablr.core.model import Model
from lablr.core.parts import check_can_fit
from lablr.core.pipeline import calibrate as calibration
from lablr.core.pipeline.metrics import evaluate as figures
from lablr.core.pipeline.recipe import Recipe
from lablr.core.plugins import get_part, pairing_problem
from lablr.core.progress import keras_verbose

EVALUATED_SCORERS = ("mahalanobis", "loglik")  # built in, and calibrated and evaluated beside a bundle's own


@dataclass
class Encoded:
    """Photos as the encoder sees them, ordered by key: keys, latents (n, d), each photo's tags."""

    keys: list[str]
    latents: np.ndarray
    tags: list[list[str]]

    @classmethod
    def joined(cls, pieces) -> "Encoded":
        """Several encoded sets (shards) as one, ordered by key."""
        pieces = list(pieces)
        keys = [k for piece in pieces for k in piece.keys]
        latents = np.concatenate([piece.latents for piece in pieces])
        return _by_key(keys, latents, [t for piece in pieces for t in piece.tags])


def _by_key(keys, latents, tags) -> Encoded:
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return Encoded([keys[i] for i in order], np.asarray(latents)[order], [tags[i] for i in order])


# -- select -----------------------------------------------------------------------------------------


def select_photos(catalog_path, recipe: Recipe) -> tuple[Recipe, Selection]:
    """The training and held-out photos under the recipe's rules (or the catalog's, or the source's);
    the recipe comes back with the rules and source that applied."""
    rules, source = recipe.rules, recipe.source
    catalog = Catalog(catalog_path)
    if rules is None:
        rules, source = choose_rules(catalog, source)
    return recipe.with_data(source, rules), select(catalog.photos(source), rules)


def require_photos(selection: Selection, catalog_path, rules: Rules):
    """Training and held-out photos both, or a one-line error saying what to do."""
    if not selection.train or not selection.test:
        raise LablrError(f"The catalog {catalog_path} has too few tagged photos for these rules: "
                         f"{_what_a_tag_needs(rules)}")


def require_training_photos(selection: Selection, catalog_path, rules: Rules):
    """Training photos, or a one-line error saying what to do."""
    if not selection.train:
        raise LablrError(f"No photo in {catalog_path} has a tag that passes the rules: {_what_a_tag_needs(rules)}")


def _what_a_tag_needs(rules: Rules) -> str:
    return (f"a tag needs {rules.min_tag_photos} photos (--min-tag-photos) and {rules.min_train_photos} training "
            "photos (--min-train-photos). Import more with `lablr import`, or lower them.")


def record_split(catalog_path, selection: Selection, recipe: Recipe):
    """Record in the catalog which photos train and which are held out, and the rules that chose them."""
    save_split(Catalog(catalog_path), selection, recipe.rules, recipe.source)


def data_summary(recipe: Recipe, selection: Selection) -> TrainingData:
    return TrainingData(source=recipe.source, rules=recipe.rules.as_dict(), train_photos=len(selection.train),
                        test_photos=len(selection.test), test_keys=sorted(p["key"] for p in selection.test))


# -- encode -----------------------------------------------------------------------------------------


def encode(encoder, images: ImageSet, photos) -> Encoded:
    """The photos' latents under the encoder, with their tags, ordered by key."""
    tags_of = {p["key"]: p["tags"] for p in photos}
    keys, latents = encode_set(encoder, images.subset(tags_of))
    return _by_key(keys, latents, [tags_of[k] for k in keys])


def nothing_encoded(latent_dim: int) -> Encoded:
    return Encoded([], np.zeros((0, latent_dim)), [])


# -- fit, calibrate, picture ------------------------------------------------------------------------


def new_tag_model(recipe: Recipe):
    """An empty tag model of the recipe's kind and settings."""
    return get_part("tag_model", recipe.parts["tag_model"].name)(**recipe.settings("tag_model"))


def fit_tags(recipe: Recipe, encoded: Encoded, tags) -> object:
    """The tag statistics of the encoded photos: the one place a bundle's tag sources are fitted."""
    return new_tag_model(recipe).fit(encoded.latents, encoded.tags, tags)


def calibrate(recipe: Recipe, encoded: Encoded, tags, *, base=None) -> dict:
    """{scorer: Calibration} for the recipe's scorer and the built-in ones that suit its tag model,
    each cross-fitted on the training photos (never the held-out ones); with `base`, on photos added
    to that tag model, each scored by it and the other photos added."""
    return {name: calibration.fit(*calibration.cross_fitted_scores(
                encoded.latents, encoded.tags, tags, lambda: new_tag_model(recipe), get_part("scorer", name)(),
                base=base))
            for name in calibrated_scorers(recipe)}


def calibrated_scorers(recipe: Recipe) -> list[str]:
    """The recipe's scorer, and the built-in scorers that suit the tag model: calibrated too, so that
    `?scorer=` shows probabilities."""
    tag_model = recipe.parts["tag_model"].name
    return list(dict.fromkeys([recipe.parts["scorer"].name, *_built_in_scorers(tag_model)]))


def _built_in_scorers(tag_model: str) -> list[str]:
    return [name for name in EVALUATED_SCORERS if not pairing_problem(name, tag_model)]


def draw_picture(recipe: Recipe, tag_model):
    return get_part("visualizer", recipe.parts["visualizer"].name)(**recipe.settings("visualizer")).fit(tag_model)


def assemble(recipe: Recipe, encoder, tag_model, calibrations: dict, *, name, data: TrainingData | None,
             photos) -> Model:
    """A model of the fitted parts, its manifest recording the recipe, and the record of the photos (their
    keys) its tag statistics hold: the one place a bundle from a catalog gets that record."""
    manifest = Manifest(parts={kind: PartSpec(spec.name, dict(spec.settings)) for kind, spec in recipe.parts.items()},
                        name=name, data=data, calibration=calibrations, training=recipe.training_record())
    return Model({"encoder": encoder, "tag_model": tag_model, "visualizer": draw_picture(recipe, tag_model),
                  FITTED_PHOTOS: FittedPhotos.of_keys(photos)}, manifest)


def fit_model(recipe: Recipe, encoder, encoded: Encoded, tags, *, name, data: TrainingData | None) -> Model:
    """Fit tag statistics -> calibrate -> picture, on encoded training photos."""
    recipe.check()
    return assemble(recipe, encoder, fit_tags(recipe, encoded, tags), calibrate(recipe, encoded, tags),
                    name=name, data=data, photos=encoded.keys)


# -- evaluate ---------------------------------------------------------------------------------------


def held_out_report(model: Model, selection: Selection, images: ImageSet, scorers=None) -> dict:
    """Figures on the held-out photos: the model's own scorer, the built-in ones that suit its tag model,
    and the popularity baseline."""
    scorers = list(scorers or dict.fromkeys([model.default_scorer,
                                             *_built_in_scorers(model.part_names["tag_model"])]))
    encoded = encode(model.encoder, images, selection.test)
    return figures(model, encoded.latents, encoded.tags, scorers)


# -- the stages after encoding, for a selection ----------------------------------------------------


def fit_and_evaluate(recipe: Recipe, encoder, selection: Selection, images: ImageSet, *, name) -> Model:
    """Encode the training photos, fit, calibrate, picture; then the figures on the held-out photos."""
    model = fit_model(recipe, encoder, encode(encoder, images, selection.train), selection.tags, name=name,
                      data=data_summary(recipe, selection))
    if selection.test:
        model.manifest.evaluation = held_out_report(model, selection, images)
    return model


def new_encoder(recipe: Recipe):
    """An untrained encoder of the recipe's kind and settings, asked whether it can be trained here: a
    missing extra or a bad setting fails at once, before any catalog or photo is read."""
    encoder = get_part("encoder", recipe.parts["encoder"].name)(**recipe.settings("encoder"))
    check_can_fit(encoder)
    return encoder


def train_encoder(encoder, recipe: Recipe, images: ImageSet, selection: Selection, work_dir: Path, *,
                  progress=True):
    """The encoder trained on the training photos for the recipe's epochs (resumable from the checkpoints
    in work_dir)."""
    encoder.fit(images.subset(p["key"] for p in selection.train), work_dir=Path(work_dir), epochs=recipe.epochs,
                seed=recipe.seed, verbose=keras_verbose(progress))
    return encoder
