"""`lablr personal learn`: the keywords a photographer already wrote into their photos teach the
personal layer, offline, as feedback does.

A photo's keywords are its IPTC Keywords, XMP dc:subject and the leaf of each of Lightroom's
lr:hierarchicalSubject paths ("animals|birds|heron" -> heron), less those Lablr wrote itself
(recorded in its own XMP namespace by `lablr tag`): learning its own guesses would only
reinforce them. Each photo is one event, known by its pixels, so it counts once however often
it is learned, and `lablr personal undo`/`reset` take it back.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lablr.core import defaults
from lablr.core.data.catalog import keyword_key
from lablr.core.errors import LablrError
from lablr.core.personal.layer import PersonalLayer, checked_tags, hash_as_decoded, photo_hash
from lablr.core.photometa.store import Embedded, Exiv2Store
from lablr.core.photometa.tagging import find_photos


@dataclass
class Outcome:
    path: Path
    status: str  # "learned", "known" (learned before), "untagged", "failed"
    tags: tuple = ()
    reason: str = ""


def own_keywords(embedded: Embedded) -> list[str]:
    """The photographer's keywords: XMP, IPTC and Lightroom leaves, each once, less Lablr's own."""
    written_by_lablr = {keyword_key(t) for t in embedded.stamp.added} if embedded.stamp else set()
    leaves = [path.split("|")[-1] for path in embedded.hierarchical]
    seen, out = set(), []
    for keyword in list(embedded.xmp) + list(embedded.iptc) + leaves:
        key = keyword_key(keyword)
        if key and key not in seen and key not in written_by_lablr:
            seen.add(key)
            out.append(keyword)
    return out


def learn_photos(paths, model, layer: PersonalLayer, *, report=None, start=None) -> list[Outcome]:
    """Teach the layer every photo found; `start(count)` once they are found, `report(outcome)` per photo."""
    store = Exiv2Store()
    report = report or (lambda outcome: None)
    photos, problems = find_photos(paths, tidy=False)  # learning reads the photos: their folders stay as they are
    if start:
        start(len(photos) + len(problems))
    outcomes = [Outcome(p.path, "failed", reason=p.reason) for p in problems]
    for outcome in outcomes:
        report(outcome)
    for first in range(0, len(photos), defaults.TAG_BATCH):
        batch = []
        for path in photos[first:first + defaults.TAG_BATCH]:
            try:
                batch.append(_read(path, store, model))
            except Exception as error:  # noqa: BLE001 - one bad photo must not stop the others
                outcomes.append(Outcome(path, "failed", reason=_reason(error)))
                report(outcomes[-1])
        batch = [item for item in batch if _settled(item, layer, outcomes, report)]
        if batch:
            latents = model.encode(np.stack([pixels for _, pixels, _ in batch]))
            for (path, pixels, tags), latent in zip(batch, latents):
                event = layer.record(photo_hash(pixels), latent, tags, None, known_as=[hash_as_decoded(pixels)])
                outcomes.append(Outcome(path, "learned" if event else "known", tuple(tags)))
                report(outcomes[-1])
    return outcomes


def _read(path: Path, store, model):
    data = path.read_bytes()
    embedded = store.read(data)
    tags = checked_tags(own_keywords(embedded), "keywords")
    if not tags and embedded.unread:  # its keywords may be in what could not be read: not "without keywords"
        raise LablrError(f"no keywords could be read: {embedded.unread}")
    return path, model.decode(data), tags


def _settled(item, layer, outcomes, report) -> bool:
    """True if the photo still needs learning; otherwise its outcome is reported."""
    path, pixels, tags = item
    if not tags:
        outcomes.append(Outcome(path, "untagged"))
    elif layer.has(photo_hash(pixels), known_as=[hash_as_decoded(pixels)]):
        outcomes.append(Outcome(path, "known", tuple(tags)))
    else:
        return True
    report(outcomes[-1])
    return False


def _reason(error) -> str:
    if isinstance(error, LablrError):
        return error.message
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return f"{type(error).__name__}: {error}"


def summary_line(outcomes) -> str:
    counts = {status: sum(o.status == status for o in outcomes) for status in ("learned", "known", "untagged",
                                                                                "failed")}
    return (f"Learned from {counts['learned']} photos; {counts['known']} already known, "
            f"{counts['untagged']} without keywords of their own, {counts['failed']} unreadable.")
