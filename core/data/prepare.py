"""`lablr prepare`: a catalog's downloaded photos turned into a training set.

Every usable photo is decoded once, in parallel, into .npy shards beside the catalog (the cache
`lablr train`, `fit` and `evaluate` read from); images that fail to decode are marked broken
in the catalog and left out from then on. Then the selection rules (the source's defaults:
for Flickr, owner-grouped splits and the stop-list of non-visual tags) choose the training and
the held-out photos, and the split is recorded in the catalog with its rules, which
`lablr train` and `lablr fit` then use.
"""

from collections import Counter

from lablr.core import defaults
from lablr.core.data.catalog import Catalog, normalize_tag
from lablr.core.data.image_cache import prepared_images
from lablr.core.data.selection import Rules, choose_rules, record_split, select
from lablr.core.errors import LablrError


def prepare_catalog(catalog_path, size=defaults.IMAGE_SIZE, rules: Rules | None = None, source=None, *,
                    progress=True) -> dict:
    """Decode, record broken images, choose and record the split and its rules; returns a summary.

    Without rules, the photos' source's defaults apply (lablr.core.data.selection.source_rules).
    """
    catalog = Catalog(catalog_path)
    if rules is None:
        rules, source = choose_rules(catalog, source, recorded=False)
    photos = catalog.photos(source)
    if not photos:
        where = f" from {source}" if source else ""
        raise LablrError(f"No downloaded photos{where} in {catalog_path}. Add some first: `lablr import`, or a source plugin's command.")
    images = prepared_images(catalog_path, photos, size, progress=progress)
    broken = sorted(images.broken)
    catalog.mark_broken(broken)
    usable = catalog.photos(source)
    selection = select(usable, rules)
    record_split(catalog, selection, rules, source)
    train_owners = {p.get("owner") or p["key"] for p in selection.train}
    test_owners = {p.get("owner") or p["key"] for p in selection.test}
    stopped = {normalize_tag(t) for t in rules.stop_tags}
    return {
        "decoded": images.count, "broken": len(broken), "broken_examples": {k: images.broken[k] for k in broken[:5]},
        "image_size": size, "images": str(images.directory),
        "bytes": sum(f.stat().st_size for f in images.directory.iterdir()),
        "train": len(selection.train), "test": len(selection.test), "tags": selection.tags,
        "train_owners": len(train_owners), "test_owners": len(test_owners),
        "owners_on_both_sides": len(train_owners & test_owners) if rules.split_by_owner else None,
        "stopped_tag_uses": sum(n for t, n in Counter(t for p in usable for t in p["tags"]).items() if t in stopped),
    }
