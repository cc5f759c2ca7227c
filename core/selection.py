"""Which photos train a model and which are held out to measure it.

The rules guard the figures against near-duplicates: one owner (a Flickr photographer, an
OpenClipart creator) contributes at most `per_owner_cap` photos, chosen by a hash so the
choice is the same on every machine; then a hash of each photo's key (or of its owner)
puts it on the training or the test side.
"""

import hashlib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

from . import defaults
from .catalog import normalize_tag


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
        return cls(**{**data, "stop_tags": tuple(data.get("stop_tags", ()))})


@dataclass
class Selection:
    train: list = field(default_factory=list)  # photo dicts: key, path, owner, tags
    test: list = field(default_factory=list)
    tags: list = field(default_factory=list)  # most frequent first
    counts: dict = field(default_factory=dict)  # training photos per tag


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
