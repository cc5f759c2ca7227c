"""Which photos train a model and which are held out to measure it.

The rules guard the figures against near-duplicates: one owner (a Flickr photographer, an
OpenClipart creator) contributes at most `per_owner_cap` photos, chosen by a hash so the
choice is the same on every machine; then a hash of each photo's key (or of its owner)
puts it on the training or the test side.

Which rules apply has one answer (`choose_rules`): those `lablr prepare` recorded in the
catalog with its split, else Lablr's defaults as the photos' source changes them (the
`selection_rules` hook: the flickr plugin splits by owner and drops non-visual tags), and on
top the options a person gave. The split is a hash under those rules, so `lablr train` and
`lablr fit` get the very split `prepare` recorded.
"""

import hashlib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from lablr.core import defaults
from lablr.core.data.catalog import Catalog, compact_tag, normalize_tag
from lablr.core.errors import LablrError


@dataclass(frozen=True)
class Rules:
    per_owner_cap: int = defaults.PER_OWNER_CAP
    min_tag_photos: int = defaults.MIN_TAG_PHOTOS  # counted before the cap
    test_fraction: float = defaults.TEST_FRACTION
    min_train_photos: int = defaults.MIN_TRAIN_PHOTOS  # counted on the training side
    split_by_owner: bool = False  # all photos of one owner on one side
    stop_tags: tuple = ()

    def as_dict(self):
        return {**asdict(self), "stop_tags": list(self.stop_tags)}

    @classmethod
    def from_dict(cls, data):
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise LablrError(f"Unknown selection rules: {', '.join(sorted(unknown))}.")
        return cls(**{**data, "stop_tags": tuple(data.get("stop_tags", ()))})


@dataclass
class Selection:
    train: list = field(default_factory=list)  # photo dicts: key, path, owner, tags
    test: list = field(default_factory=list)
    tags: list = field(default_factory=list)  # most frequent first
    counts: dict = field(default_factory=dict)  # training photos per tag


def source_rules(source: str | None) -> Rules:
    """Lablr's default rules, changed as the plugin of `source` asks (the selection_rules hook)."""
    from lablr.core.plugins import load_plugins, pm

    load_plugins()
    changes = pm.hook.selection_rules(source=source) if source else None
    return Rules.from_dict({**Rules().as_dict(), **(changes or {})})


def choose_rules(catalog: Catalog, source: str | None = None, changes: dict | None = None, *,
                 recorded: bool = True) -> tuple[Rules, str | None]:
    """(rules, source) for a catalog's photos: the recorded ones (with `recorded`, when the source
    agrees) or the source's defaults, with `changes` (the options a person gave) on top."""
    found = catalog.recorded_rules() if recorded else None
    if found and source in (None, found["source"]):
        base, source = Rules.from_dict(found["rules"]), found["source"]
    else:
        base = source_rules(source or catalog.only_source())
    return Rules.from_dict({**base.as_dict(), **(changes or {})}), source


def record_split(catalog: Catalog, selection: Selection, rules: Rules, source: str | None):
    """Record in the catalog which photos train and which are held out, and the rules that chose them."""
    sides = {p["key"]: "train" for p in selection.train} | {p["key"]: "test" for p in selection.test}
    catalog.save_splits(sides, rules=rules.as_dict(), source=source)


def stop_tag_list(spec) -> tuple:
    """'default' -> Lablr's list (defaults.NON_VISUAL_TAGS); a file -> its tags, one a line
    ('#' starts a comment); '' or 'none' -> no stop-list."""
    if str(spec).strip().lower() in ("", "none"):
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


def unit_hash(text: str) -> float:
    """A number in [0, 1) that depends only on the text."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def select(photos, rules: Rules = Rules()) -> Selection:
    stop = {normalize_tag(t) for t in rules.stop_tags}
    photos = [{**p, "tags": sorted({normalize_tag(t) for t in p["tags"]} - stop)} for p in photos]
    before_cap = Counter(t for p in photos for t in p["tags"])
    common = {t for t, n in before_cap.items() if n >= rules.min_tag_photos}
    photos = _keep_tags(photos, common)
    photos = _cap_per_owner(photos, rules.per_owner_cap)
    side = {p["key"]: _side(p, rules) for p in photos}
    train_counts = Counter(t for p in photos if side[p["key"]] == "train" for t in p["tags"])
    kept = {t for t, n in train_counts.items() if n >= rules.min_train_photos}
    photos = _keep_tags(photos, kept)
    tags = sorted(kept, key=lambda t: (-train_counts[t], t))
    return Selection(train=[p for p in photos if side[p["key"]] == "train"],
                     test=[p for p in photos if side[p["key"]] == "test"],
                     tags=tags, counts={t: train_counts[t] for t in tags})


def _keep_tags(photos, kept):
    out = []
    for photo in photos:
        tags = [t for t in photo["tags"] if t in kept]
        if tags:
            out.append({**photo, "tags": tags})
    return out


def _cap_per_owner(photos, cap):
    by_owner = defaultdict(list)
    for photo in photos:
        by_owner[photo.get("owner") or photo["key"]].append(photo)
    chosen = set()
    for owned in by_owner.values():
        owned.sort(key=lambda p: unit_hash("cap:" + p["key"]))
        chosen.update(p["key"] for p in owned[:cap])
    return [p for p in photos if p["key"] in chosen]


def _side(photo, rules):
    basis = (photo.get("owner") or photo["key"]) if rules.split_by_owner else photo["key"]
    return "test" if unit_hash("split:" + basis) < rules.test_fraction else "train"
