"""Working with a trained bundle: fit its tags anew, add photos, evaluate it."""

from pathlib import Path

from . import defaults
from .catalog import Catalog
from .errors import LablrError
from .model import Model
from .selection import Rules, Selection, select
from .training import data_summary, encode_set, fit_model, held_out_report, prepared_images


def refit(model_name, catalog_path, out, *, add=False, rules=Rules(), source=None) -> Model:
    """Fit the tag models on the catalog's training photos with the bundle's encoder.

    With add=True the photos are added to the bundle's statistics instead (exact: they are sums).
    """
    model = Model.load(model_name)
    selection = select(Catalog(catalog_path).photos(source), rules)
    if not selection.train:
        raise LablrError(f"No photo in {catalog_path} has a tag that passes the rules.")
    images = prepared_images(catalog_path, selection.train + selection.test, model.image_size)
    if add:
        keys, latents = encode_set(model.encoder, images.subset(p["key"] for p in selection.train))
        tags_of = {p["key"]: p["tags"] for p in selection.train}
        model.tag_model.update(latents, [tags_of[k] for k in keys])
        model.visualizer.fit(model.tag_model)
        model.manifest.pop("evaluation", None)
    else:
        manifest = {"name": Path(out).name, "data": data_summary(source, rules, selection)}
        model = fit_model(model.encoder, model.plugins["encoder"], selection, images,
                          tag_model=model.plugins["tag_model"], tag_model_settings=model.tag_model.settings(),
                          scorer=model.default_scorer,
                          visualizer=model.plugins["visualizer"], manifest=manifest)
        if selection.test:
            model.manifest["evaluation"] = held_out_report(model, selection, images)
    model.save(out)
    return model


def evaluate_bundle(model_name=defaults.DEFAULT_MODEL, catalog_path=None, *, scorers=None, cache=None) -> dict:
    """Evaluate on a catalog's held-out photos, or by default on those recorded in the bundle."""
    model = Model.load(model_name)
    if catalog_path:  # the held-out side under the rules the model was trained with
        data = model.manifest.get("data") or {}
        rules = Rules.from_dict(data["rules"]) if data.get("rules") else Rules()
        selection = select(Catalog(catalog_path).photos(data.get("source")), rules)
    else:
        catalog_path, selection = _recorded_split(model, cache)
    known = set(model.tag_model.tags)
    test = [{**p, "tags": [t for t in p["tags"] if t in known]} for p in selection.test]
    selection = Selection(test=[p for p in test if p["tags"]])
    if not selection.test:
        raise LablrError("No held-out photo carries any of the model's tags.")
    images = prepared_images(catalog_path, selection.test, model.image_size)
    report = held_out_report(model, selection, images, scorers)
    report["model"] = model.name
    if "ece" in report.get(model.default_scorer, {}):  # the calibration error of what people are shown
        report["ece"] = report[model.default_scorer]["ece"]
    return report


def _recorded_split(model: Model, cache: Path):
    data = model.manifest.get("data") or {}
    if data.get("source") != "openclipart" or not data.get("test_keys"):
        raise LablrError(f"The model {model.name} records no held-out photos; give --catalog.")
    from .importing import import_source

    catalog_path = Path(cache or ".") / "openclipart.db"
    catalog_path.parent.mkdir(parents=True, exist_ok=True)
    wanted = set(data["test_keys"])
    photos = [p for p in Catalog(catalog_path).photos() if p["key"] in wanted]
    if len(photos) < len(wanted):  # first use, or an import that was cut short: adding is idempotent
        import_source("openclipart", None, catalog_path)
        photos = [p for p in Catalog(catalog_path).photos() if p["key"] in wanted]
    if len(photos) < len(wanted):
        raise LablrError(f"{len(wanted) - len(photos)} of the {len(wanted)} held-out images of {model.name} are "
                         "missing from this OpenClipart installation; the figures would not be comparable.")
    return catalog_path, Selection(test=photos)
