"""`lablr personal learn`: the keywords a photographer already wrote into their photos teach the
personal layer, offline, as feedback does.

A photo's keywords are its IPTC Keywords, XMP dc:subject and the leaf of each of Lightroom's
lr:hierarchicalSubject paths ("animals|birds|heron" -> heron), and the same in its XMP sidecars
(NAME.xmp, as Lightroom, digiKam and `lablr tag --sidecar` write it; NAME.EXT.xmp, as darktable
does), less those Lablr wrote itself (recorded in its own XMP namespace by `lablr tag`, in the
photo or a sidecar): learning its own guesses would only reinforce them. Each photo is one event,
known by its pixels, so it counts once however often it is learned; learned again, it gains the
keywords written into it since and loses those removed since (only if every source of its keywords
could be read, and never the tags of a photo taught by feedback, nor those of a copy without keywords).
`lablr personal undo`/`reset` take it back.
"""

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lablr.core import defaults
from lablr.core.data.catalog import keyword_key
from lablr.core.errors import LablrError
from lablr.core.personal import photos
from lablr.core.personal.layer import (
    KEYWORDS,
    Change,
    PersonalLayer,
    Reading,
    checked_tags,
    corrected_tags,
    hash_as_decoded,
    photo_hash,
)
from lablr.core.photometa.store import Embedded, Exiv2Store
from lablr.core.photometa.tagging import (
    find_photos,
    printable,
    read_regular,
    read_sidecar,
    shared_sidecars,
    sidecars_of,
)


@dataclass
class Outcome:
    path: Path
    # "learned", "known" (learned before), "untagged", "refused" (its keywords), "failed", "skipped" (a file
    # in a folder that is not a photo Lablr reads: a camera's raw file, say; or, with a reason, a sidecar that
    # several photos share)
    status: str
    tags: tuple = ()
    gained: tuple = ()  # of a known photo: its keywords written since it was learned, learned now
    removed: tuple = ()  # of a known photo: its keywords removed since it was learned, unlearned now
    kept: tuple = ()  # of a known photo: keywords it lacks now that stay learned, since not all of it was read
    reason: str = ""
    unread_sidecars: tuple = ()  # (path, why) of each sidecar beside it that could not be read


class _Photo(NamedTuple):
    path: Path
    pixels: np.ndarray
    tags: list[str]
    unread_sidecars: list[tuple[Path, str]]
    hashes: list[str]  # its identity in the layer, then the one layers recorded before (lablr.core.personal.layer)
    complete: bool  # the photo and every sidecar read whole: a keyword it lacks was removed, not unread

    def reading(self) -> Reading:
        return Reading(self.hashes, self.tags, self.complete)


def own_keywords(*sources: Embedded) -> list[str]:
    """The photographer's keywords in a photo and its sidecars: XMP, IPTC and Lightroom leaves, each once
    (as first spelled), less every XMP or IPTC keyword that Lablr's record in any of them says Lablr added.
    Lablr never writes Lightroom's hierarchy: a leaf of it is the photographer's even where Lablr added the
    same word as a keyword (`lablr tag` does not look at the hierarchy)."""
    written_by_lablr = {keyword_key(t) for source in sources if source.stamp for t in source.stamp.added}
    seen, out = set(), []
    for source in sources:
        flat = [keyword for keyword in source.xmp + source.iptc if keyword_key(keyword) not in written_by_lablr]
        for keyword in flat + source.hierarchy_leaves:
            key = keyword_key(keyword)
            if key and key not in seen:
                seen.add(key)
                out.append(keyword)
    return out


def learn_photos(paths, model, layer: PersonalLayer, *, report=None, start=None) -> list[Outcome]:
    """Teach the layer every photo found; `start(count)` once they are found, `report(outcome)` per photo."""
    store, listings = Exiv2Store(), {}
    report = report or (lambda outcome: None)
    # learning reads the photos: their folders stay as they are
    photos, problems, others = find_photos(paths, tidy=False)
    if start:
        start(len(photos) + len(problems))
    outcomes = [Outcome(p.path, "failed", reason=p.reason) for p in problems]
    for outcome in outcomes:
        report(outcome)
    outcomes += [Outcome(path, "skipped") for path in others]  # not photos: said together, in the summary
    again = _ReadAgain()
    try:
        for first in range(0, len(photos), defaults.TAG_BATCH):
            batch = []
            for path in photos[first:first + defaults.TAG_BATCH]:
                try:
                    batch.append(_read(path, store, model, listings))
                except Exception as error:  # noqa: BLE001 - one bad photo must not stop the others
                    outcomes.append(_not_learned(path, error))
                    report(outcomes[-1])
            batch = [item for item in batch if _settled(item, layer, outcomes, report, again)]
            if batch:
                latents = model.encode(np.stack([photo.pixels for photo in batch]))
                for photo, latent in zip(batch, latents):
                    event = layer.record(photo.hashes[0], latent, photo.tags, None, known_as=photo.hashes[1:],
                                         source=KEYWORDS)
                    # no event: another copy of it came first, in this batch or from another process
                    if event:
                        again.settled.add(photo.hashes[0])
                    outcomes.append(_outcome(photo, "learned") if event else _known(photo, layer, again))
                    report(outcomes[-1])
    finally:  # interrupted too: what was found is kept
        again.correct(layer)  # in one write, which a running server replays once
    return outcomes + [Outcome(path, "skipped", reason=f"not learned: {count} photos here are called {path.stem}, and "
                               f"it could describe any of them; rename it {path.stem}.EXT.xmp after the one it "
                               "describes.") for path, count in shared_sidecars(listings)]


class _ReadAgain:
    """Photos learned before, read again in one run: what to correct at its end, in one write. Only photos
    that change are kept, so a run over a large library learned before holds little."""

    def __init__(self):
        self.readings = {}  # first hash -> Reading, merged over the copies of the photo read in this run
        self.settled = set()  # first hashes of photos learned in this run, or read again with nothing to change
        self.outcomes = {}  # first hash -> the outcome that says what changed: one per photo, which counts once

    def add(self, photo: _Photo, event, outcome: Outcome):
        key, reading = photo.hashes[0], photo.reading()
        if key in self.settled:  # another copy agrees with its event: the keywords of either, so this one only adds
            reading = replace(reading, complete=False)
        if key in self.readings:
            self.readings[key] = self.readings[key].merged(reading)
        elif event is not None and Change.of(event, corrected_tags(event, reading)):
            self.readings[key] = reading
        else:
            self.settled.add(key)
        self.outcomes.setdefault(key, outcome)

    def correct(self, layer: PersonalLayer):
        changes = layer.correct(self.readings.values())
        for key, change in changes.items():
            outcome = self.outcomes[key]
            outcome.gained, outcome.removed = tuple(change.gained), tuple(change.removed)


def _read(path: Path, store, model, listings: dict) -> _Photo:
    # found a moment ago, it may since be a link, a folder or a pipe (never read)
    _, data = read_regular(path, limit=defaults.MAX_PHOTO_BYTES)
    embedded = store.read(data)
    sidecars, unread_sidecars = [], []
    for sidecar in sidecars_of(path, listings):
        try:
            _, _, read = read_sidecar(sidecar, store)
        except LablrError as error:
            unread_sidecars.append((sidecar, error.message))
            continue
        sidecars.append(read)  # what was read of it is learned, as of a photo
        if read.unread:
            unread_sidecars.append((sidecar, f"not all of the sidecar could be read ({read.unread})"))
    tags = checked_tags(own_keywords(embedded, *sidecars), "keywords")
    unread = ([embedded.unread] if embedded.unread else []) + [f"{p.name}: {why}" for p, why in unread_sidecars]
    if not tags and unread:  # its keywords may be in what could not be read: not "without keywords"
        raise LablrError(f"no keywords could be read: {'; '.join(unread)}")
    pixels = model.decode(data)
    return _Photo(path, pixels, tags, unread_sidecars, [photo_hash(pixels), hash_as_decoded(pixels)], not unread)


def _outcome(photo: _Photo, status: str) -> Outcome:
    return Outcome(photo.path, status, tuple(photo.tags), unread_sidecars=tuple(photo.unread_sidecars))


def _settled(photo: _Photo, layer, outcomes, report, again: _ReadAgain) -> bool:
    """True if the photo still needs learning; otherwise its outcome is reported."""
    in_layer = layer.has(photo.hashes[0], known_as=photo.hashes[1:])
    if photo.tags and not in_layer:
        return True
    outcomes.append(_known(photo, layer, again) if photo.tags else _outcome(photo, "untagged"))
    report(outcomes[-1])
    return False


def _known(photo: _Photo, layer, again: _ReadAgain) -> Outcome:
    """The outcome of a photo learned before: its keywords as read now go to `again`, for the layer to be
    corrected at the end; what it gained and lost is filled in then."""
    event = layer.event_of(photo.hashes)  # None: undone meanwhile
    tags = [] if event is None else corrected_tags(event, photo.reading())
    if len(tags) > defaults.PERSONAL_MAX_EVENT_TAGS:
        return _not_learned(photo.path, LablrError(
            f"At most {defaults.PERSONAL_MAX_EVENT_TAGS} tags per photo; with the keywords written since it was "
            f"learned it has {len(tags)}.", code="bad_tags", status=422))
    outcome = _outcome(photo, "known")
    again.add(photo, event, outcome)
    if event is not None and not photo.complete and event.source == KEYWORDS:
        outcome.kept = tuple(tag for tag in event.tags if tag not in photo.tags)
    return outcome


def problem_lines(outcome: Outcome) -> list[str]:
    """One line for a photo that could not be learned, and one for each of its sidecars that could not be read,
    with control characters escaped: a file name cannot break or restyle the terminal."""
    lines = [f"{outcome.path}: {outcome.reason}"] if outcome.status in ("refused", "failed") else []
    if outcome.kept:
        lines.append(f"{outcome.path}: not all of its keywords could be read, so those it lacks now stay learned: "
                     + ", ".join(outcome.kept[:5]) + (", ..." if len(outcome.kept) > 5 else ""))
    return [printable(line) for line in lines + [f"{path}: {why}" for path, why in outcome.unread_sidecars]]


def _not_learned(path: Path, error: Exception) -> Outcome:
    """A photo that was read but whose keywords a photo may not have (too many, or one that is not a tag)
    is refused; one that could not be read failed."""
    refused = isinstance(error, LablrError) and error.code == "bad_tags"
    return Outcome(path, "refused" if refused else "failed", reason=_reason(error))


def _reason(error) -> str:
    if isinstance(error, LablrError):
        return error.message
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return f"{type(error).__name__}: {error}"


def summary_line(outcomes) -> str:
    counts = {status: sum(o.status == status for o in outcomes)
              for status in ("learned", "known", "untagged", "refused", "failed")}
    sidecars = sum(len(o.unread_sidecars) for o in outcomes)
    return (f"Learned from {photos(counts['learned'])}; {counts['known']} already known{_changes(outcomes)}, "
            f"{counts['untagged']} without keywords of their own, {counts['failed']} unreadable"
            + (f", {counts['refused']} refused for their keywords" if counts["refused"] else "")
            + (f"; {sidecars} sidecar{'s' * (sidecars != 1)} could not be read." if sidecars else "."))


def skipped_lines(outcomes) -> list[str]:
    """What was left out: one line for the files in the folders that are not photos Lablr reads (how many of each
    suffix, and what to do about a camera's raw files), one for each sidecar that several photos share."""
    skipped = [o for o in outcomes if o.status == "skipped"]
    suffixes = Counter(o.path.suffix.lower() or "without a suffix" for o in skipped if not o.reason)
    lines = [f"{o.path}: {o.reason}" for o in skipped if o.reason]
    if suffixes:
        found = ", ".join(f"{count} {suffix}" for suffix, count in suffixes.most_common(5))
        more = f" and {len(suffixes) - 5} more kinds" if len(suffixes) > 5 else ""
        count = sum(suffixes.values())
        lines.insert(0, f"{count} other file{'s' * (count != 1)} left out ({found}{more}): Lablr reads photos in "
                        f"{', '.join(defaults.TAG_SUFFIXES)} files; for a camera's raw files, learn from the JPEG, "
                        "TIFF or PNG files exported from them.")
    return [printable(line) for line in lines]


def _changes(outcomes) -> str:
    """" (1 of them with new keywords, now learned; ...)": what learning again changed, if anything. Each photo
    is counted once: one that gained keywords and lost others is in the third part alone."""
    parts = [(sum(bool(o.gained) and not o.removed for o in outcomes), "with new keywords, now learned"),
             (sum(bool(o.removed) and not o.gained for o in outcomes), "with keywords removed since, now unlearned"),
             (sum(bool(o.gained) and bool(o.removed) for o in outcomes),
              "with new keywords and others removed since, now learned and unlearned")]
    said = [f"{count} {'of them ' * (not i)}{what}" for i, (count, what) in enumerate(p for p in parts if p[0])]
    return f" ({'; '.join(said)})" if said else ""
