"""`lablr train`: the pipeline with an encoder trained on the catalog's photos.

select -> (train the encoder) -> encode -> fit -> calibrate -> picture -> evaluate -> save,
from a recipe: a command's options, or a bundle's recipe (`lablr train --like NAME_OR_PATH`).
"""

from pathlib import Path

from lablr.core import bundle
from lablr.core.data.image_cache import prepared_images
from lablr.core.data.selection import Rules
from lablr.core.model import Model
from lablr.core.pipeline import multiworker, stages
from lablr.core.pipeline.recipe import Recipe


def train(catalog_path, out, *, recipe: Recipe | None = None, encoder=None, encoder_settings=None,
          tag_model=None, tag_model_settings=None, scorer=None, visualizer=None, rules: Rules | None = None,
          epochs=None, work_dir=None, name=None, source=None, seed=None, progress=True) -> Model | None:
    """Train an encoder on the catalog's training photos, fit the tags, evaluate, save a bundle.

    The parts are the recipe's, else those named here, else Lablr's defaults. Without rules,
    those `lablr prepare` recorded apply, else the source's defaults. With TF_CONFIG set this
    process is one worker of a multi-worker job; only the chief writes to the catalog and the
    bundle, and the other workers return None.
    """
    recipe = recipe or Recipe.from_options(encoder=encoder, encoder_settings=encoder_settings, tag_model=tag_model,
                                           tag_model_settings=tag_model_settings, scorer=scorer,
                                           visualizer=visualizer)
    recipe = recipe.but(source=source, rules=rules, epochs=epochs, seed=seed)
    recipe.check()  # now, not after hours of training
    bundle.check_out(out)
    encoder = stages.new_encoder(recipe)  # a missing extra: said before any photo is read
    role = multiworker.role()
    recipe, selection = stages.select_photos(catalog_path, recipe)
    stages.require_photos(selection, catalog_path, recipe.rules)
    if role is None or role.is_chief:
        stages.record_split(catalog_path, selection, recipe)
    images = prepared_images(catalog_path, selection.train + selection.test, encoder.image_size,
                             progress=progress, decode=role is None)
    stages.train_encoder(encoder, recipe, images, selection, Path(work_dir or f"{out}.work"), progress=progress)
    if role and not role.is_chief:
        return None
    model = stages.fit_and_evaluate(recipe, encoder, selection, images, name=name or Path(out).name)
    model.save(out)
    return model

