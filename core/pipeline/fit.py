"""`lablr fit`: the pipeline with a bundle's own encoder: its tags fitted anew, or more photos added.

select -> encode -> fit -> calibrate -> picture -> evaluate -> save, from the bundle's recipe
(parts and settings) and the catalog's photos; `--add` adds to the bundle's sums the photos they
do not hold yet (lablr.core.fitted_photos).
"""

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lablr.core import bundle
from lablr.core.data.image_cache import prepared_images
from lablr.core.data.selection import Rules
from lablr.core.fitted_photos import FittedPhotos
from lablr.core.model import Model
from lablr.core.pipeline import stages
from lablr.core.pipeline.recipe import Recipe


def refit(model_name, catalog_path, out, *, rules: Rules | None = None, source=None) -> Model:
    """Fit the tag models on the catalog's training photos with the bundle's encoder (`add_photos` adds them to
    its statistics instead). Without rules, those `lablr prepare` recorded apply, else the source's defaults.
    """
    bundle.check_out(out)
    model, recipe, selection = _base_and_selection(model_name, catalog_path, rules, source)
    images = prepared_images(catalog_path, selection.train + selection.test, model.image_size)
    model = stages.fit_and_evaluate(recipe, model.encoder, selection, images, name=Path(out).name)
    model.save(out)
    return model


@dataclass
class Added:
    """What `lablr fit --add` did."""

    model: Model
    added: int  # photos added to the statistics
    skipped: int  # training photos of the catalog the statistics held already
    known: bool  # whether the bundle recorded which photos its statistics held
    new_tags: int = 0  # tags the photos added brought
    recalibrated: bool = False  # whether the calibration was fitted again, on the photos added

    def summary(self, model_name, catalog_path) -> str:
        """What a person is told, in one line."""
        calibrated = (f" The probabilities are calibrated again on the photos added"
                      f"{f' ({self.new_tags} new tags)' if self.new_tags else ''}." if self.recalibrated else "")
        if not self.known:
            return (f"{model_name} does not record which photos its statistics hold (it was written before Lablr "
                    f"recorded them): all {self.added} training photos of {catalog_path} were added, and any it "
                    f"was fitted on now count twice. Fit it anew without --add to start the record.{calibrated}")
        return (f"Added {self.added} photo{'s' * (self.added != 1)} to the tag statistics; skipped {self.skipped} "
                f"the model already holds.{calibrated}")


def add_photos(model_name, catalog_path, out, *, rules: Rules | None = None, source=None) -> Added:
    """Add the catalog's training photos that the bundle's statistics do not hold yet (exact: they are sums),
    and record them; a bundle without a record gets every one of them. The calibration is fitted again on
    them where it no longer holds (docs/bundle-format.md)."""
    bundle.check_out(out)
    model, recipe, selection = _base_and_selection(model_name, catalog_path, rules, source)
    held = _held_photos(model)
    keys = [p["key"] for p in selection.train]
    new = selection.train if held is None else [p for p, known in zip(selection.train, held.holds(keys)) if not known]
    encoded = stages.nothing_encoded(model.encoder.latent_dim)
    new_tags, recalibrate = 0, False
    if new:
        encoded = stages.encode(model.encoder, prepared_images(catalog_path, new, model.image_size), new)
        before = model.tag_model.copy()
        model.tag_model.update(encoded.latents, encoded.tags)
        new_tags = len(model.tag_model.tags) - len(before.tags)
        # The calibration is fitted again, on the photos added, when it never saw some of the tags or saw fewer
        # photos than are added; for the same tags and fewer new photos, the one fitted on more is the better.
        # Without a record, the photos may be in the statistics already: scored by them, none would be unseen.
        # A model without a calibration (the shipped `photos`: its tags against the encoder's background) has none.
        recalibrate = bool(held is not None and model.calibrations and (new_tags > 0 or len(new) >= len(held)))
        if recalibrate:
            model.manifest.calibration = stages.calibrate(recipe, encoded, model.tag_model.tags, base=before)
        model.visualizer.fit(model.tag_model)
        model.manifest.evaluation = None  # the figures no longer describe the model
    model.fitted_photos = None if held is None else held.union(encoded.keys)
    model.save(out)
    return Added(model, added=len(encoded.keys), skipped=len(selection.train) - len(new), known=held is not None,
                 new_tags=new_tags, recalibrated=recalibrate)


def _held_photos(model: Model) -> FittedPhotos | None:
    """The photos the model's statistics hold: its record; none at all when its tag model counts no photo
    (the shipped `photos`); None when it cannot tell (a bundle written before Lablr recorded them)."""
    if model.fitted_photos is not None:
        return model.fitted_photos
    return FittedPhotos.none() if not np.asarray(model.tag_model.counts).any() else None


def _base_and_selection(model_name, catalog_path, rules, source):
    """(the bundle, its recipe under the rules, the catalog's photos those rules select)."""
    model = Model.load(model_name)  # a scorer that does not suit the tag model fails here, at the start
    recipe = replace(Recipe.of_manifest(model.manifest, with_data=False), source=source, rules=rules)
    recipe, selection = stages.select_photos(catalog_path, recipe)
    stages.require_training_photos(selection, catalog_path, recipe.rules)
    return model, recipe, selection
