"""`lablr prepare`: a catalog's downloaded photos turned into a training set.

Every usable photo is decoded once, in parallel, into .npy shards beside the catalog (the cache
`lablr train`, `fit` and `evaluate` read from); images that fail to decode are marked broken
in the catalog and left out from then on. Then the selection rules (owner-grouped splits,
minimum photos per tag, an optional stop-list of non-visual tags) choose the training and the
held-out photos, and the split is recorded in the catalog.
"""

from collections import Counter
from pathlib import Path

from . import defaults
from .catalog import Catalog, compact_tag, normalize_tag
from .errors import LablrError
from .selection import Rules, select
from .training import prepared_images


def stop_tag_list(spec) -> tuple:
    """'default' -> Lablr's list (defaults.NON_VISUAL_TAGS); a file -> its tags, one a line
    ('#' starts a comment); None, '' or 'none' -> no stop-list."""
    if spec is None or str(spec).strip().lower() in ("", "none"):
        return ()
    if str(spec).strip().lower() == "default":
        return tuple(defaults.NON_VISUAL_TAGS)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise LablrError(f"--stop-tags takes 'default', 'none' or a file of tags, one a line; {spec} is not a file.")
    tags = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            tags += [normalize_tag(line), compact_tag(line)]  # "New York" stops "new york" and "newyork"
    return tuple(dict.fromkeys(t for t in tags if t))


def prepare_catalog(catalog_path, size=defaults.IMAGE_SIZE, rules: Rules = Rules(split_by_owner=True),
                    source=None, *, progress=True) -> dict:
    """Decode, record broken images, choose and record the split; returns a summary."""
    catalog = Catalog(catalog_path)
    photos = catalog.photos(source)
    if not photos:
        where = f" from {source}" if source else ""
        raise LablrError(f"No downloaded photos{where} in {catalog_path}. Add some first: `lablr import`, or a source plugin's command.")
    images = prepared_images(catalog_path, photos, size, progress=progress)
    broken = sorted(images.broken)
    catalog.mark_broken(broken)
    usable = catalog.photos(source)
    selection = select(usable, rules)
    catalog.save_splits({**{p["key"]: "train" for p in selection.train}, **{p["key"]: "test" for p in selection.test}})
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
