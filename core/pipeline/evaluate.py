"""`lablr evaluate`: how good a model's suggestions are on held-out photos.

The held-out photos are those a bundle records (by default, OpenClipart's: imported into the
cache on first use), or a catalog's held-out side under the rules the model was trained with.
The metrics themselves are in lablr.core.pipeline.metrics.
"""

from pathlib import Path

from lablr.core import defaults
from lablr.core.data.catalog import Catalog
from lablr.core.data.image_cache import ImageSet, encode_set, prepared_images
from lablr.core.data.selection import Rules, Selection, select
from lablr.core.errors import LablrError
from lablr.core.model import Model
from lablr.core.pipeline.metrics import evaluate
from lablr.core.plugins import pairing_problem

EVALUATED_SCORERS = ("mahalanobis", "loglik")


def held_out_report(model: Model, selection: Selection, images: ImageSet, scorers=None) -> dict:
    """Figures on the held-out photos: the model's own scorer, the built-in ones that suit its tag model,
    and the popularity baseline."""
    built_in = [name for name in EVALUATED_SCORERS if not pairing_problem(name, model.part_names["tag_model"])]
    scorers = list(scorers or dict.fromkeys([model.default_scorer, *built_in]))
    keys, latents = encode_set(model.encoder, images.subset(p["key"] for p in selection.test))
    tags_of = {p["key"]: p["tags"] for p in selection.test}
    return evaluate(model, latents, [tags_of[k] for k in keys], scorers)


def evaluate_bundle(model_name=defaults.DEFAULT_MODEL, catalog_path=None, *, scorers=None, cache=None) -> dict:
    """Evaluate on a catalog's held-out photos, or by default on those recorded in the bundle."""
    model = Model.load(model_name)
    if catalog_path:  # the held-out side under the rules the model was trained with
        data = model.manifest.data
        rules = Rules.from_dict(data.rules) if data and data.rules else Rules()
        selection = select(Catalog(catalog_path).photos(data.source if data else None), rules)
    elif model.vocabulary is not None and model.manifest.data is None:
        raise LablrError(f"The model {model.name} learned its tags on no photos of its own: its photo vocabulary is "
                         f"measured on photographs by scripts/bench_photos.py (README, Quality). `lablr evaluate "
                         f"--model {defaults.BENCHMARK_MODEL}` reproduces the OpenClipart benchmark; --catalog "
                         f"measures this model on your own tagged photos.")
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
    data = model.manifest.data
    if not data or data.source != "openclipart" or not data.test_keys:
        raise LablrError(f"The model {model.name} records no held-out photos; give --catalog.")
    from lablr.core.data.importing import import_source

    catalog_path = Path(cache or ".") / "openclipart.db"
    catalog_path.parent.mkdir(parents=True, exist_ok=True)
    wanted = set(data.test_keys)
    photos = [p for p in Catalog(catalog_path).photos() if p["key"] in wanted]
    if len(photos) < len(wanted):  # first use, or an import that was cut short: adding is idempotent
        import_source("openclipart", None, catalog_path)
        photos = [p for p in Catalog(catalog_path).photos() if p["key"] in wanted]
    if len(photos) < len(wanted):
        raise LablrError(f"{len(wanted) - len(photos)} of the {len(wanted)} held-out images of {model.name} are "
                         "missing from this OpenClipart installation; the figures would not be comparable.")
    return catalog_path, Selection(test=photos)
