"""`lablr train`: from a catalog of tagged photos to a model bundle: select, train, fit, evaluate."""

from pathlib import Path

from lablr.core import defaults
from lablr.core.bundle import Manifest, PartSpec, TrainingData
from lablr.core.data.catalog import Catalog
from lablr.core.data.image_cache import ImageSet, encode_set, prepared_images
from lablr.core.data.selection import Rules, Selection, choose_rules, select
from lablr.core.errors import LablrError
from lablr.core.model import Model
from lablr.core.parts import check_can_fit
from lablr.core.pipeline import calibrate as calibration
from lablr.core.pipeline import multiworker
from lablr.core.pipeline.evaluate import EVALUATED_SCORERS, held_out_report
from lablr.core.plugins import check_pairing, get_part, pairing_problem


def fit_model(encoder, encoder_name, selection: Selection, images: ImageSet, *,
              tag_model=defaults.DEFAULT_PARTS["tag_model"], tag_model_settings=None,
              scorer=defaults.DEFAULT_PARTS["scorer"], visualizer=defaults.DEFAULT_PARTS["visualizer"],
              name=None, data: TrainingData | None = None) -> Model:
    """Fit the tag model, the picture and the scores' calibration on the training photos' latents."""
    check_pairing(scorer, tag_model)
    keys, latents = encode_set(encoder, images.subset(p["key"] for p in selection.train))
    tags_of = {p["key"]: p["tags"] for p in selection.train}
    photo_tags = [tags_of[k] for k in keys]

    def make_tag_model():
        return get_part("tag_model", tag_model)(**(tag_model_settings or {}))

    fitted = make_tag_model().fit(latents, photo_tags, selection.tags)
    picture = get_part("visualizer", visualizer)().fit(fitted)
    names = {"encoder": encoder_name, "tag_model": tag_model, "scorer": scorer, "visualizer": visualizer}
    manifest = Manifest(parts={kind: PartSpec(part) for kind, part in names.items()}, name=name, data=data,
                        calibration=fit_calibrations(latents, photo_tags, selection.tags, make_tag_model,
                                                     [scorer, *calibrated_built_ins(tag_model)]))
    return Model({"encoder": encoder, "tag_model": fitted, "visualizer": picture}, manifest)


def fit_calibrations(latents, photo_tags, tags, make_tag_model, scorers) -> dict:
    """{scorer: Calibration}, each cross-fitted on the training photos (never the held-out ones)."""
    return {name: calibration.fit(*calibration.cross_fitted_scores(
                latents, photo_tags, tags, make_tag_model, get_part("scorer", name)()))
            for name in dict.fromkeys(scorers)}


def calibrated_built_ins(tag_model) -> list[str]:
    """The built-in scorers that suit the tag model: calibrated too, so `?scorer=` shows probabilities."""
    return [name for name in EVALUATED_SCORERS if not pairing_problem(name, tag_model)]


def data_summary(source, rules: Rules, selection: Selection) -> TrainingData:
    return TrainingData(source=source, rules=rules.as_dict(), train_photos=len(selection.train),
                        test_photos=len(selection.test), test_keys=sorted(p["key"] for p in selection.test))


def encoder_to_train(name, settings=None):
    """The encoder part, built from its settings and asked whether it can be trained here: a missing
    extra or a bad setting fails at once, before any catalog or photo is read."""
    part = get_part("encoder", name)(**(settings or {}))
    check_can_fit(part)
    return part


def train(catalog_path, out, *, encoder=defaults.DEFAULT_PARTS["encoder"], encoder_settings=None,
          tag_model=defaults.DEFAULT_PARTS["tag_model"], tag_model_settings=None,
          scorer=defaults.DEFAULT_PARTS["scorer"], visualizer=defaults.DEFAULT_PARTS["visualizer"],
          rules: Rules | None = None, epochs=defaults.EPOCHS, work_dir=None, name=None, source=None, seed=0,
          progress=True) -> Model | None:
    """Train an encoder on the catalog's training photos, fit the tags, evaluate, save a bundle.

    Without rules, those `lablr prepare` recorded apply, else the source's defaults. With
    TF_CONFIG set this process is one worker of a multi-worker job; only the chief writes to
    the catalog and the bundle, and the other workers return None.
    """
    check_pairing(scorer, tag_model)  # now, not after hours of training
    part = encoder_to_train(encoder, encoder_settings)
    role = multiworker.role()
    catalog = Catalog(catalog_path)
    if rules is None:
        rules, source = choose_rules(catalog, source)
    selection = select(catalog.photos(source), rules)
    if not selection.train or not selection.test:
        raise LablrError(f"The catalog {catalog_path} has too few tagged photos for these rules "
                         f"(each tag needs {rules.min_tag_photos} photos). Import more with `lablr import`.")
    if role is None or role.is_chief:
        catalog.save_splits({p["key"]: "train" for p in selection.train} | {p["key"]: "test" for p in selection.test},
                            rules=rules.as_dict(), source=source)
    images = prepared_images(catalog_path, selection.train + selection.test, part.image_size, progress=progress,
                             decode=role is None)
    train_images = images.subset(p["key"] for p in selection.train)
    work_dir = Path(work_dir or f"{out}.work")
    part.fit(train_images, work_dir=work_dir, epochs=epochs, seed=seed, verbose="auto" if progress else 0)
    if role and not role.is_chief:
        return None
    model = fit_model(part, encoder, selection, images, tag_model=tag_model, tag_model_settings=tag_model_settings,
                      scorer=scorer, visualizer=visualizer, name=name or Path(out).name,
                      data=data_summary(source, rules, selection))
    model.manifest.evaluation = held_out_report(model, selection, images)
    model.save(out)
    return model
