"""`lablr evaluate`: how good a model's suggestions are on held-out photos.

The held-out photos are those a bundle records (imported again into the cache on first use,
from a source that needs no location, such as Debian's OpenClipart), or a catalog's held-out
side under the rules the model was trained with. The metrics themselves are in
lablr.core.pipeline.metrics; the held-out stage of the pipeline in lablr.core.pipeline.stages.
"""

from pathlib import Path

from lablr.core import defaults
from lablr.core.data.catalog import Catalog
from lablr.core.data.image_cache import prepared_images
from lablr.core.data.selection import Rules, Selection, select
from lablr.core.errors import LablrError
from lablr.core.model import Model
from lablr.core.pipeline.stages import held_out_report
from lablr.core.plugins import get_part


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
        catalog_path, selection = recorded_split(model, cache)
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


def recorded_split(model: Model, cache: Path):
    """(catalog, selection) of the held-out photos the bundle records, imported into the cache when their
    source can be read without a location (its `needs_location` is False)."""
    data = model.manifest.data
    if not data or not data.source or not data.test_keys or _needs_location(data.source):
        raise LablrError(f"The model {model.name} records no held-out photos; give --catalog.")
    from lablr.core.data.importing import import_source

    catalog_path = Path(cache or ".") / f"{data.source}.db"
    catalog_path.parent.mkdir(parents=True, exist_ok=True)
    wanted = set(data.test_keys)
    photos = [p for p in Catalog(catalog_path).photos() if p["key"] in wanted]
    if len(photos) < len(wanted):  # first use, or an import that was cut short: adding is idempotent
        import_source(data.source, None, catalog_path)
        photos = [p for p in Catalog(catalog_path).photos() if p["key"] in wanted]
    if len(photos) < len(wanted):
        raise LablrError(f"{len(wanted) - len(photos)} of the {len(wanted)} held-out images of {model.name} are "
                         f"missing from this {data.source} installation; the figures would not be comparable.")
    return catalog_path, Selection(test=photos)


def _needs_location(source) -> bool:
    try:
        return getattr(get_part("source", source).factory, "needs_location", True)
    except LablrError:  # the source's plugin is not installed here
        return True
