"""From a catalog of tagged photos to a model bundle: select, prepare, train, fit, evaluate."""

import hashlib
from pathlib import Path

import numpy as np

from . import bundle, calibration, defaults
from .catalog import Catalog
from .errors import LablrError
from .evaluation import evaluate
from .imageset import ImageSet, prepare
from .model import Model
from .plugins import get_part
from .selection import Rules, Selection, select

EVALUATED_SCORERS = ("mahalanobis", "loglik")


def prepared_images(catalog_path, photos, size, *, progress=True) -> ImageSet:
    """The photos decoded at this size, from the cache beside the catalog or decoded now."""
    keys = sorted(p["key"] for p in photos)
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
    directory = Path(f"{catalog_path}.images") / f"{size}px-{digest}"
    if (directory / "index.json").exists():
        return ImageSet(directory)
    wanted = set(keys)
    for index in sorted(directory.parent.glob(f"{size}px-*/index.json")):  # e.g. all photos, by `lablr prepare`
        found = ImageSet(index.parent)
        if wanted <= set(found.keys):
            return found.subset(keys)
    return prepare(photos, directory, size, progress=progress)


def encode_set(encoder, images: ImageSet):
    """(keys, latents) of every image in the set, in the set's order."""
    keys, latents = [], []
    for batch_keys, batch in images.keyed_batches(256):
        keys += batch_keys
        latents.append(encoder.encode(batch))
    return keys, (np.concatenate(latents) if latents else np.zeros((0, encoder.latent_dim)))


def fit_model(encoder, encoder_name, selection: Selection, images: ImageSet, *,
              tag_model=defaults.DEFAULT_PARTS["tag_model"], tag_model_settings=None,
              scorer=defaults.DEFAULT_PARTS["scorer"], visualizer=defaults.DEFAULT_PARTS["visualizer"],
              manifest=None) -> Model:
    """Fit the tag model, the picture and the scores' calibration on the training photos' latents."""
    keys, latents = encode_set(encoder, images.subset(p["key"] for p in selection.train))
    tags_of = {p["key"]: p["tags"] for p in selection.train}
    photo_tags = [tags_of[k] for k in keys]

    def make_tag_model():
        return get_part("tag_model", tag_model)(**(tag_model_settings or {}))

    fitted = make_tag_model().fit(latents, photo_tags, selection.tags)
    picture = get_part("visualizer", visualizer)().fit(fitted)
    get_part("scorer", scorer)  # fail now, not at serving time, on a scorer nobody registered
    parts = {"encoder": {"plugin": encoder_name}, "tag_model": {"plugin": tag_model},
             "scorer": {"plugin": scorer}, "visualizer": {"plugin": visualizer}}
    calibrations = {name: calibration.fit(*calibration.cross_fitted_scores(
                        latents, photo_tags, selection.tags, make_tag_model, get_part("scorer", name)()))
                    for name in dict.fromkeys([scorer, *EVALUATED_SCORERS])}
    return Model({"encoder": encoder, "tag_model": fitted, "visualizer": picture},
                 bundle.with_calibrations({**(manifest or {}), "parts": parts}, calibrations))


def held_out_report(model: Model, selection: Selection, images: ImageSet, scorers=None) -> dict:
    """Figures on the held-out photos: the model's own scorer, the two built-in ones, the baseline."""
    scorers = list(scorers or dict.fromkeys([model.default_scorer, *EVALUATED_SCORERS]))
    keys, latents = encode_set(model.encoder, images.subset(p["key"] for p in selection.test))
    tags_of = {p["key"]: p["tags"] for p in selection.test}
    return evaluate(model, latents, [tags_of[k] for k in keys], scorers)


def data_summary(source, rules: Rules, selection: Selection) -> dict:
    return {"source": source, "rules": rules.as_dict(), "train_photos": len(selection.train),
            "test_photos": len(selection.test), "test_keys": sorted(p["key"] for p in selection.test)}


def train(catalog_path, out, *, encoder=defaults.DEFAULT_PARTS["encoder"], encoder_settings=None,
          tag_model=defaults.DEFAULT_PARTS["tag_model"], tag_model_settings=None, scorer=defaults.DEFAULT_PARTS["scorer"],
          visualizer=defaults.DEFAULT_PARTS["visualizer"], rules=Rules(), epochs=defaults.EPOCHS, work_dir=None,
          name=None, source=None, seed=0, progress=True) -> Model:
    """Train an encoder on the catalog's training photos, fit the tags, evaluate, save a bundle."""
    catalog = Catalog(catalog_path)
    selection = select(catalog.photos(source), rules)
    if not selection.train or not selection.test:
        raise LablrError(f"The catalog {catalog_path} has too few tagged photos for these rules "
                         f"(each tag needs {rules.min_tag_photos} photos). Import more with `lablr import`.")
    catalog.save_splits({p["key"]: "train" for p in selection.train} | {p["key"]: "test" for p in selection.test})
    part = get_part("encoder", encoder)(**(encoder_settings or {}))
    images = prepared_images(catalog_path, selection.train + selection.test, part.image_size, progress=progress)
    train_images = images.subset(p["key"] for p in selection.train)
    work_dir = Path(work_dir or f"{out}.work")
    part.fit(train_images, work_dir=work_dir, epochs=epochs, seed=seed, verbose="auto" if progress else 0)
    manifest = {"name": name or Path(out).name, "data": data_summary(source, rules, selection)}
    model = fit_model(part, encoder, selection, images, tag_model=tag_model, tag_model_settings=tag_model_settings,
                      scorer=scorer, visualizer=visualizer, manifest=manifest)
    model.manifest["evaluation"] = held_out_report(model, selection, images)
    model.save(out)
    return model
