"""`lablr tag`: the suggested tags written into each photo's own metadata, a folder at a time.

A photo is read once, scored, and, if it gains a keyword, written again beside itself under a
hidden name, flushed to disk, given the original's permissions, and renamed over the original:
after a crash (even `kill -9`) each photo is either as it was or fully tagged. A photo that
cannot be read or written is reported and left as it was. Lablr records in each photo it tags
(XMP, its own namespace) when, with which model and which keywords it added; a rerun skips
those photos unless forced.
"""

import errno
import os
import shutil
import stat
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from lablr.core import defaults
from lablr.core.data import decoding as imaging
from lablr.core.data.catalog import JOINERS, keyword_key
from lablr.core.errors import ImageError, LablrError
from lablr.core.files import alive, fsync_dir
from lablr.core.photometa.store import (
    WRITABLE,
    XMP_SIDECAR,
    Embedded,
    Exiv2Store,
    KeywordStore,
    Stamp,
    refuse_unread,
)

PARTIAL = ".lablr-partial"  # .NAME.PID.lablr-partial, beside the photo, while it is written


@dataclass(frozen=True)
class Options:
    k: int = defaults.TAG_K
    min_score: float | None = None
    dry_run: bool = False
    keep_mtime: bool = False
    sidecar: bool = False
    force: bool = False
    scorer: str | None = None


@dataclass
class Outcome:
    """What happened to one photo. status: tagged, would_tag, already_tagged, nothing_new, failed."""

    path: Path
    status: str
    added: list = field(default_factory=list)  # Suggestions, best first
    kept: list[str] = field(default_factory=list)  # the keywords it already had
    reason: str = ""
    written: Path | None = None  # the photo, or its sidecar
    note: str = ""  # what the user should know of a photo that was tagged

    def as_dict(self) -> dict:
        out = {"path": str(self.path), "status": self.status, "added": [s.as_dict() for s in self.added],
               "kept": self.kept}
        if self.reason:
            out["reason"] = self.reason
        if self.note:
            out["note"] = self.note
        if self.written:
            out["written"] = str(self.written)
        return out


@dataclass
class _Pending:
    path: Path
    data: bytes
    before: os.stat_result
    embedded: Embedded
    sidecar: bytes | None = None
    sidecar_before: os.stat_result | None = None
    beside: frozenset = frozenset()  # keyword_key of the keywords in its other sidecars


class Skip(LablrError):
    """A photo left as it was, for the reason given."""


def find_photos(paths, *, tidy: bool = True) -> tuple[list[Path], list[Outcome], list[Path]]:
    """(The photos named or found in the folders named, each once; the problems; the other files found in
    those folders, which Lablr does not read: a camera's raw files, say). Folders are searched recursively,
    hidden files left out, sidecars are not "other files".

    Only regular files are taken: a symbolic link (to a file, or to a folder) is reported and
    left alone, so that nothing outside the folders and files named is ever written. `tidy`
    removes the partial files a killed run left behind (not in a dry run: it changes nothing).
    """
    found, problems, others, seen, seen_others = [], [], [], set(), set()
    for given in map(Path, paths):
        if given.is_dir():  # a folder named may be a link to one: the user chose it
            if tidy:
                remove_leftovers(given)
            candidates, links, unread = _photos_in(given)
            problems += [Outcome(link, "failed", reason=SYMLINK) for link in links]
            others += _once(unread, seen_others)
        elif given.is_symlink():
            problems.append(Outcome(given, "failed", reason=SYMLINK))
            continue
        elif given.is_file():
            candidates = [given]
        elif given.exists():
            problems.append(Outcome(given, "failed", reason="it is not a regular file"))
            continue
        else:
            problems.append(Outcome(given, "failed", reason="no such file or folder"))
            continue
        found += _once(candidates, seen)
    return found, problems, others


def _once(paths, seen: set) -> list[Path]:
    """The paths to files not in `seen` (which they join), each once: a file named twice, or through
    two names for its folder, is one file."""
    new = []
    for path in paths:
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            new.append(path)
    return new


SYMLINK = "it is a symbolic link, which Lablr does not follow (name the file it points to)"


def _photos_in(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(the regular photo files under folder, the links among the photo names, the other regular files but
    sidecars), sorted; links to folders are not entered and hidden names are left out."""
    photos, links, others = [], [], []
    for top, folders, names in os.walk(folder):  # followlinks=False: a linked folder is not entered
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in names:
            path = Path(top) / name
            suffix = path.suffix.lower()
            if name.startswith(".") or suffix == defaults.SIDECAR_SUFFIX:
                continue
            if suffix not in defaults.TAG_SUFFIXES:
                if not path.is_symlink() and path.is_file():
                    others.append(path)
            elif path.is_symlink():
                links.append(path)
            elif path.is_file():
                photos.append(path)
    return sorted(photos), sorted(links), sorted(others)


def remove_leftovers(folder: Path) -> int:
    """Delete the hidden partial files of an earlier run that was killed; returns how many."""
    removed = 0
    for partial in folder.rglob(f".*{PARTIAL}"):
        pid = partial.name[: -len(PARTIAL)].rsplit(".", 1)[-1]
        if pid.isdigit() and not alive(int(pid)):
            partial.unlink(missing_ok=True)
            removed += 1
    return removed


def tag_photos(paths, model, options: Options, *, store: KeywordStore | None = None, report=None, start=None):
    """Suggest and write tags for every photo. `start(count)` is called once the photos are found,
    `report(outcome)` as each is done."""
    store = store or Exiv2Store()
    report = report or (lambda outcome: None)
    photos, outcomes, _ = find_photos(paths, tidy=not options.dry_run)
    if start:
        start(len(photos) + len(outcomes))
    for outcome in outcomes:
        report(outcome)
    stamp = Stamp(model=model.name, tagged=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    listings = {}  # each folder's sidecars, listed once
    for first in range(0, len(photos), defaults.TAG_BATCH):
        pending, arrays = [], []
        for path in photos[first:first + defaults.TAG_BATCH]:
            try:
                item = _read(path, store, options, listings)
                arrays.append(imaging.decode(item.data, model.image_size))
                pending.append(item)
            except Exception as error:  # noqa: BLE001 - one bad photo must not stop the batch
                outcomes.append(_failed(path, error))
                report(outcomes[-1])
        found = model.suggest(np.stack(arrays), options.k, scorer=options.scorer) if pending else []
        for item, suggestions in zip(pending, found):
            try:
                outcomes.append(_apply(item, suggestions, store, stamp, options))
            except Exception as error:  # noqa: BLE001 - the photo is untouched: replacing it is the last step
                outcomes.append(_failed(item.path, error))
            report(outcomes[-1])
    return outcomes


def _failed(path, error) -> Outcome:
    if isinstance(error, LablrError):
        status = "already_tagged" if error.code == "already_tagged" else "failed"
        return Outcome(path, status, reason=error.message)
    return Outcome(path, "failed", reason=f"unexpected error ({type(error).__name__}: {error})")


def _read(path: Path, store: KeywordStore, options: Options, listings: dict) -> _Pending:
    before, data = read_regular(path, limit=defaults.MAX_PHOTO_BYTES)
    if not options.sidecar:
        _check_writable(path, before)  # said in a dry run too
    check_image(data)
    embedded = store.read(data)
    if not options.sidecar and embedded.mime not in WRITABLE:
        raise Skip(f"Lablr writes keywords into JPEG, PNG, TIFF and WebP photos, not {embedded.mime} "
                   "(--sidecar leaves the photo as it is)")
    if not options.sidecar:
        try:
            refuse_unread(embedded.unread)  # said in a dry run too
        except LablrError as error:
            raise Skip(f"{error.message} With --sidecar its tags go to {sidecar_path(path).name} beside it instead.") \
                from None
    sidecar = sidecar_before = None
    if options.sidecar:
        sidecar_file = sidecar_path(path)
        if sidecar_file.exists() or sidecar_file.is_symlink():
            name = f"its sidecar {sidecar_file.name}"
            sidecar_before, sidecar, sidecar_keywords = read_sidecar(sidecar_file, store, name)
            if sidecar_keywords.unread:
                raise Skip(f"Lablr could not read all of {name} ({sidecar_keywords.unread[:200]}), and writing it "
                           "would lose what it could not read; both were left as they were.",
                           code="unreadable_metadata")
            embedded = Embedded(embedded.mime, embedded.xmp + sidecar_keywords.xmp, embedded.iptc,
                                sidecar_keywords.stamp or embedded.stamp)
    if embedded.stamp and not options.force:
        raise Skip(f"already tagged by Lablr on {embedded.stamp.tagged} (--force to tag it again)",
                   code="already_tagged")
    beside = _keywords_beside(path, store, listings, sidecar_path(path) if options.sidecar else None)
    return _Pending(path, data, before, embedded, sidecar, sidecar_before, beside)


def _keywords_beside(photo: Path, store: KeywordStore, listings: dict, written: Path | None) -> frozenset:
    """keyword_key of each keyword (and Lightroom leaf) in the photo's sidecars other than the one written:
    darktable's NAME.EXT.xmp, or NAME.xmp beside a photo tagged in place. They are the photographer's
    already, so Lablr does not add them again: learning could not tell them from its own guesses then.
    A sidecar that cannot be read holds none that Lablr can see."""
    keys = set()
    for sidecar in sidecars_of(photo, listings):
        if sidecar == written:
            continue
        try:
            _, _, found = read_sidecar(sidecar, store)
        except LablrError:
            continue
        keys.update(keyword_key(k) for k in found.keywords + found.hierarchy_leaves)
    return frozenset(keys)


def read_sidecar(path: Path, store: KeywordStore, name: str = "the sidecar") -> tuple[os.stat_result, bytes, Embedded]:
    """(stat, bytes, keywords) of an XMP sidecar; its `unread` says what could not be read. Raises Skip, which
    says what is wrong with it, calling it `name`."""
    before, data = read_regular(path, name, limit=defaults.MAX_SIDECAR_BYTES)
    try:
        found = store.read(data)
    except ImageError:  # exiv2 tells a file it does not know from one cut short only by its first bytes
        raise Skip(f"{name} is damaged, cut short or not XMP") from None
    if found.mime != XMP_SIDECAR:
        raise Skip(f"{name} is not XMP but {found.mime}")
    return before, data, found


def read_regular(path: Path, name: str = "it", *, limit: int | None = None) -> tuple[os.stat_result, bytes]:
    """(stat, bytes) of a regular file, never through a symbolic link; one of more than `limit` bytes is
    refused (Skip) without being read."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise Skip(SYMLINK if name == "it" else f"{name} is a symbolic link, which Lablr does not follow") \
                from None
        raise Skip(f"cannot read {name} ({error.strerror})") from None
    before = os.fstat(descriptor)
    if not stat.S_ISREG(before.st_mode):  # before open(), which refuses a folder with an error of its own
        os.close(descriptor)
        raise Skip(f"{name} is not a regular file")
    with open(descriptor, "rb") as file:
        try:
            data = file.read() if limit is None else file.read(limit + 1)  # it may grow after fstat
        except OSError as error:
            raise Skip(f"cannot read {name} ({error.strerror})") from None
    if limit is not None and max(before.st_size, len(data)) > limit:
        raise Skip(f"{name} is larger than {limit:,} bytes, more than Lablr reads")
    return before, data


def _apply(item: _Pending, suggestions, store: KeywordStore, stamp: Stamp, options: Options) -> Outcome:
    kept, not_to_add = item.embedded.keywords, item.embedded.not_to_add | item.beside
    wanted = [s for s in suggestions
              if keyword_key(s.tag) not in not_to_add and (options.min_score is None or s.score >= options.min_score)]
    if not wanted:
        return Outcome(item.path, "nothing_new", kept=kept)
    if options.dry_run:
        return Outcome(item.path, "would_tag", added=wanted, kept=kept)
    tags, note = [s.tag for s in wanted], ""
    try:
        if options.sidecar:
            target = sidecar_path(item.path)
            _check_sidecar_is_ours(item.path)
            data = store.add_to_sidecar(item.sidecar, tags, stamp, photo=item.embedded).data
            replace_file(target, data, expected=item.sidecar_before, keep_mtime=options.keep_mtime)
            if item.sidecar is None and item.embedded.unread:
                note = PARTIAL_SIDECAR
        else:
            target = item.path
            data = store.add(item.data, tags, stamp).data
            replace_file(target, data, expected=item.before, keep_mtime=options.keep_mtime)
    except LablrError as error:
        return Outcome(item.path, "failed", kept=kept, reason=error.message)
    return Outcome(item.path, "tagged", added=wanted, kept=kept, written=target, note=note)


# A new sidecar begins with the photo's keywords; when its metadata could not be read whole, those read.
PARTIAL_SIDECAR = "not all of the photo's metadata could be read, so it may lack some of its keywords"


def sidecar_path(photo: Path) -> Path:
    """NAME.xmp, the sidecar `--sidecar` writes (Lightroom's and digiKam's name too)."""
    return photo.with_suffix(defaults.SIDECAR_SUFFIX)


def _check_sidecar_is_ours(photo: Path):
    """NAME.xmp belongs to one photo: refuse when NAME.jpg and NAME.png would share it."""
    siblings = [p.name for p in photo.parent.glob(photo.stem + ".*")
                if p.suffix.lower() in defaults.TAG_SUFFIXES and p.name != photo.name]
    if siblings:
        raise Skip(f"{photo.stem}{defaults.SIDECAR_SUFFIX} would also describe {siblings[0]}")


def _stat_or_none(path: Path):
    try:
        return path.lstat()  # a link put in the file's place counts as a change: never written through
    except FileNotFoundError:
        return None


def replace_file(path: Path, data: bytes, *, expected: os.stat_result | None, keep_mtime: bool):
    """Write data over path atomically, keeping its permissions, owner (when allowed) and extended
    attributes; its modification time too if keep_mtime. `expected` is path's stat when it was read
    (None: it did not exist): if the file changed since, nothing is written."""
    if expected is not None:
        _check_writable(path, expected)
    partial = path.with_name(f".{path.name}.{os.getpid()}{PARTIAL}")
    try:
        try:
            with open(partial, "xb") as file:
                file.write(data)
                file.flush()
                if expected is not None:
                    shutil.copystat(path, partial)  # mode, times, extended attributes
                    if (expected.st_uid, expected.st_gid) != (os.getuid(), os.getgid()):
                        os.chown(partial, expected.st_uid, expected.st_gid)
                if not keep_mtime:
                    os.utime(partial)
                os.fsync(file.fileno())
        except OSError as error:
            raise Skip(f"cannot write beside it ({error.strerror})") from None
        if _changed(path, expected):
            raise Skip("it changed while Lablr was working; run again")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _check_writable(path: Path, before: os.stat_result):
    if not before.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(path, os.W_OK):
        raise Skip("it is read-only (use --sidecar to leave it untouched)")
    if before.st_nlink > 1:
        raise Skip(f"it has {before.st_nlink} hard links, which rewriting it would separate (use --sidecar)")
    if not os.access(path.parent, os.W_OK):
        raise Skip("its folder is read-only")


def _changed(path: Path, expected: os.stat_result | None) -> bool:
    now = _stat_or_none(path)
    if expected is None or now is None:
        return (expected is None) != (now is None)
    return (now.st_ino, now.st_size, now.st_mtime_ns) != (expected.st_ino, expected.st_size, expected.st_mtime_ns)


def check_image(data: bytes):
    """A clear error for what is not an image at all, or is cut short in its header."""
    try:
        imaging.open_image(data)
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"The image is damaged or truncated ({error}).", code="truncated_image") from None


def embed(data: bytes, tags: list[str], model_name: str, *, store: KeywordStore | None = None):
    """A photo's bytes with the tags it lacks embedded (the web page's "Download with tags")."""
    store = store or Exiv2Store()
    stamp = Stamp(model=model_name, tagged=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    check_image(data)
    embedded = store.read(data)
    written = store.add(data, tags, stamp)
    return written, embedded


def describe(outcome: Outcome) -> str | None:
    """One line for a photo that was or would be changed, or could not be; None for the others."""
    name = printable(str(outcome.path))
    if outcome.status == "tagged":
        return f"{name}: added {printable(', '.join(s.tag for s in outcome.added))}{_sidecar_said(outcome)}"
    if outcome.status == "would_tag":
        return f"{name}: would add " + printable(", ".join(f"{s.tag} ({s.score:.2f})" for s in outcome.added))
    if outcome.status == "failed":
        return f"{name}: not changed: {printable(outcome.reason)}"
    return None


def _sidecar_said(outcome: Outcome) -> str:
    """" (NAME.xmp)" for a photo tagged beside itself, with its note if it has one; "" for one tagged in place."""
    if not (outcome.written and outcome.written.suffix == defaults.SIDECAR_SUFFIX):
        return ""
    return f" ({printable(outcome.written.name)}{'; ' + outcome.note if outcome.note else ''})"


def printable(text: str) -> str:
    """Text as a terminal may show it: a control character (newline, ESC) or a lone surrogate of an
    undecodable file name is written as its escape, so a file name cannot break or restyle the output."""
    return "".join(char if char.isprintable() or char in JOINERS else _escaped(char) for char in text)


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def summary_line(counts: dict, dry_run: bool) -> str:
    if dry_run:
        head = (f"Would tag {counts['would_tag']} photos with {counts['keywords']} keywords "
                "(dry run: nothing was written)")
    else:
        head = f"Tagged {counts['tagged']} photos with {counts['keywords']} keywords"
    return (f"{head}; {counts['already_tagged']} already tagged by Lablr, {counts['nothing_new']} with nothing "
            f"new to add, {counts['failed']} left unchanged because they could not be read or written.")


def summarize(outcomes) -> dict:
    counts = {status: 0 for status in ("tagged", "would_tag", "already_tagged", "nothing_new", "failed")}
    for outcome in outcomes:
        counts[outcome.status] += 1
    counts["keywords"] = sum(len(o.added) for o in outcomes if o.status in ("tagged", "would_tag"))
    counts["photos"] = len(outcomes)
    return counts


def sidecars_of(photo: Path, listings: dict) -> list[Path]:
    """The photo's XMP sidecars that are there, the suffix in any case: NAME.xmp (the name `lablr tag
    --sidecar` writes, Lightroom's and digiKam's), then NAME.EXT.xmp (darktable's). NAME.xmp is the photo's
    only if no other photo in its folder is called NAME: beside IMG_1.jpg and IMG_1.png, IMG_1.xmp could
    describe either, so it is taken as neither's (as `lablr tag --sidecar` will not write it), and each has
    only its NAME.EXT.xmp. `listings` keeps each folder's names, so that a folder is listed once."""
    if photo.parent not in listings:
        listings[photo.parent] = _listing(photo.parent)
    sidecars, photo_stems = listings[photo.parent]
    own_name = [sidecar_path(photo).stem] if photo_stems[photo.stem] <= 1 else []
    stems = dict.fromkeys([*own_name, photo.name])
    return [photo.parent / name for stem in stems for name in sidecars.get(stem, [])]


def shared_sidecars(listings: dict) -> list[tuple[Path, int]]:
    """(NAME.xmp, how many photos are called NAME) for each sidecar in the folders listed that is no photo's,
    as several photos share its name (sidecars_of)."""
    return [(folder / name, photo_stems[stem]) for folder, (sidecars, photo_stems) in listings.items()
            for stem, names in sidecars.items() if photo_stems[stem] > 1 for name in names]


def _listing(folder: Path) -> tuple[dict[str, list[str]], Counter]:
    """({stem: [names]} of the files in folder whose suffix is .xmp in any case, how many photos have each stem),
    hidden files left out."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:  # a folder that cannot be listed has no sidecars Lablr can find
        return {}, Counter()
    sidecars, photo_stems = {}, Counter()
    for name in names:
        stem, suffix = os.path.splitext(name)
        if name.startswith("."):
            continue
        if suffix.lower() == defaults.SIDECAR_SUFFIX:
            sidecars.setdefault(stem, []).append(name)
        elif suffix.lower() in defaults.TAG_SUFFIXES:
            photo_stems[stem] += 1
    return sidecars, photo_stems
