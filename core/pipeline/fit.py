"""`lablr fit`: the pipeline with a bundle's own encoder: its tags fitted anew, or more photos added.

select -> encode -> fit -> calibrate -> picture -> evaluate -> save, from the bundle's recipe
(parts and settings) and the catalog's photos; `--add` adds the photos to the bundle's sums.
"""

from dataclasses import replace
from pathlib import Path

from lablr.core.data.image_cache import prepared_images
from lablr.core.data.selection import Rules
from lablr.core.model import Model
from lablr.core.pipeline import stages
from lablr.core.pipeline.recipe import Recipe


def refit(model_name, catalog_path, out, *, add=False, rules: Rules | None = None, source=None) -> Model:
    """Fit the tag models on the catalog's training photos with the bundle's encoder.

    With add=True the photos are added to the bundle's statistics instead (exact: they are sums).
    Without rules, those `lablr prepare` recorded apply, else the source's defaults.
    """
    model = Model.load(model_name)  # a scorer that does not suit the tag model fails here, at the start
    recipe = replace(Recipe.of_manifest(model.manifest, with_data=False), source=source, rules=rules)
    recipe, selection = stages.select_photos(catalog_path, recipe)
    stages.require_training_photos(selection, catalog_path, recipe.rules)
    images = prepared_images(catalog_path, selection.train + selection.test, model.image_size)
    if add:
        encoded = stages.encode(model.encoder, images, selection.train)
        model.tag_model.update(encoded.latents, encoded.tags)
        model.visualizer.fit(model.tag_model)
        model.manifest.evaluation = None
    else:
        model = stages.fit_and_evaluate(recipe, model.encoder, selection, images, name=Path(out).name)
    model.save(out)
    return model
