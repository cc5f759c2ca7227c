"""`lablr fit`: a trained bundle's tags fitted anew, or more photos added to them."""

from pathlib import Path

from lablr.core.data.catalog import Catalog
from lablr.core.data.image_cache import encode_set, prepared_images
from lablr.core.data.selection import Rules, choose_rules, select
from lablr.core.errors import LablrError
from lablr.core.model import Model
from lablr.core.pipeline.evaluate import held_out_report
from lablr.core.pipeline.train import data_summary, fit_model


def refit(model_name, catalog_path, out, *, add=False, rules: Rules | None = None, source=None) -> Model:
    """Fit the tag models on the catalog's training photos with the bundle's encoder.

    With add=True the photos are added to the bundle's statistics instead (exact: they are sums).
    Without rules, those `lablr prepare` recorded apply, else the source's defaults.
    """
    model = Model.load(model_name)  # a scorer that does not suit the tag model fails here, at the start
    catalog = Catalog(catalog_path)
    if rules is None:
        rules, source = choose_rules(catalog, source)
    selection = select(catalog.photos(source), rules)
    if not selection.train:
        raise LablrError(f"No photo in {catalog_path} has a tag that passes the rules.")
    images = prepared_images(catalog_path, selection.train + selection.test, model.image_size)
    if add:
        keys, latents = encode_set(model.encoder, images.subset(p["key"] for p in selection.train))
        tags_of = {p["key"]: p["tags"] for p in selection.train}
        model.tag_model.update(latents, [tags_of[k] for k in keys])
        model.visualizer.fit(model.tag_model)
        model.manifest.evaluation = None
    else:
        names = model.part_names
        model = fit_model(model.encoder, names["encoder"], selection, images, tag_model=names["tag_model"],
                          tag_model_settings=model.tag_model.settings(), scorer=names["scorer"],
                          visualizer=names["visualizer"], name=Path(out).name,
                          data=data_summary(source, rules, selection))
        if selection.test:
            model.manifest.evaluation = held_out_report(model, selection, images)
    model.save(out)
    return model
