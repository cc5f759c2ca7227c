"""The personal layer: the photos a user publishes teach the model they use.

Each feedback event (time, photo hash, the photo's latent, its final tags, what had been
suggested; never the image) is one row in a SQLite file under the user's data directory. The
layer belongs to one bundle: the file is named by the checksum of the bundle's manifest (which
holds the checksums of all its files), so a latent from one encoder never enters another
model's statistics, and the bundle itself is never written.

A photo is known by its decoded pixels (`photo_hash`), so it counts once however often it is
sent or learned, even after `lablr tag` rewrote its keywords.

The served tag model is the bundle's exact sums plus the latents of every event, so undoing an
event removes exactly what it added (lablr.core.personal.learning). Two stamps in the same file
say what changed: `version` moves with every write, `removals` with every undo, reset or change to
the tags of events already there (`correct`). Each server process compares them before a request:
new events are added to its model one by one, a removal replays the events that are left.
"""

import errno
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from lablr.core import bundle, defaults
from lablr.core.data.catalog import TAG_RULE, is_acceptable_tag, normalize_tag
from lablr.core.errors import LablrError
from lablr.core.files import fsync_dir, partial_path, write_output
from lablr.core.outputs import check_replaceable

FILE_SUFFIX = ".sqlite"
SCHEMA = """
create table if not exists events (
    id integer primary key autoincrement,
    time text not null,
    photo_hash text not null unique,
    latent blob not null,
    tags text not null,
    suggested text,
    shown text,
    source text
);
create table if not exists meta (key text primary key, value text not null);
insert or ignore into meta (key, value) values ('version', '0');
insert or ignore into meta (key, value) values ('removals', '0');
"""
# Columns later Lablrs added, each added to an older layer's events as it is opened; its events are kept
# as they are. Layers written before photos were known by their pixels hold file hashes in photo_hash, and
# no `shown`; those written before `lablr personal learn` honoured corrections, no `source` (NULL: whence
# the tags came is not known, so they are only ever added to).
MIGRATIONS = {"shown": "alter table events add column shown text",
              "source": "alter table events add column source text"}
KEYWORDS = "keywords"  # an event's source: the photo's own keywords (`lablr personal learn`), read again later
FEEDBACK = "feedback"  # the tags the user published: the file may well lack them, so they are never taken away
EVENT_BATCH = 200  # events read at once: with 75 tags of 100 emoji each, and as many suggested, 30 MB


def layer_path(bundle_path) -> Path:
    """Where the layer of a bundle lives: named by the bundle's checksum, so each model has its own."""
    return defaults.data_dir() / "personal" / (bundle.checksum(bundle_path) + FILE_SUFFIX)


def photo_hash(pixels: np.ndarray) -> str:
    """A photo's identity: its decoded pixels, so that rewriting its keywords (`lablr tag`) or any
    other metadata leaves it the same photo; its orientation tag too, which photo managers rewrite to
    turn a photo. So the picture is taken without the white it was fitted into, in whichever of its
    eight turns and flips comes first."""
    picture = _without_padding(np.ascontiguousarray(pixels, dtype=np.uint8))
    turns = [np.rot90(flipped, k) for flipped in (picture, picture[:, ::-1]) for k in range(4)]
    return min(_digest(turned) for turned in turns)


def hash_as_decoded(pixels: np.ndarray) -> str:
    """The identity layers recorded before the orientation tag was left out of it, checked so that such a
    layer still counts its photos once."""
    return _digest(pixels)


def _digest(pixels: np.ndarray) -> str:
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    return hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()


def _without_padding(pixels: np.ndarray) -> np.ndarray:
    """The pixels less the white rows and columns at their edges (where decoding centred the picture
    in a square: on which side the odd one falls depends on the way up)."""
    inked = (pixels != 255).any(axis=-1)
    rows, columns = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    if not len(rows):
        return pixels[:0, :0]
    return pixels[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]


def parse_tags(text: str | None, what: str = "tags") -> list[str]:
    """Comma-separated tags -> their stored form, in order, each once. Raises LablrError (422)."""
    return checked_tags((text or "").split(","), what)


def checked_tags(raw_tags, what: str = "tags") -> list[str]:
    """Tags -> their stored form, in order, each once. Raises LablrError (422)."""
    tags = []
    for raw in raw_tags:
        tag = normalize_tag(raw)
        if not tag or tag in tags:
            continue
        if not is_acceptable_tag(tag):
            raise LablrError(f"A tag in {what} is {TAG_RULE}: {tag[:40]!r}.", code="bad_tags", status=422)
        tags.append(tag)
    if len(tags) > defaults.PERSONAL_MAX_EVENT_TAGS:
        raise LablrError(f"At most {defaults.PERSONAL_MAX_EVENT_TAGS} {what} per photo; this one has {len(tags)}.",
                         code="bad_tags", status=422)
    return tags


@dataclass
class Event:
    id: int
    time: str
    photo_hash: str
    latent: np.ndarray
    tags: list[str]
    suggested: list[str] | None  # the suggestions the user saw (shown, not those hidden below the threshold)
    shown: list[float] | None = None  # the log-odds each of them was shown at, when known
    source: str | None = None  # KEYWORDS, FEEDBACK, or None (recorded before Lablr kept it)

    def as_dict(self, latent=False) -> dict:
        out = {"id": self.id, "time": self.time, "photo_hash": self.photo_hash, "tags": self.tags,
               "suggested": self.suggested, "source": self.source}
        if latent:
            out["latent"] = self.latent.tolist()
            out["shown"] = self.shown
        return out


class PersonalLayer:
    """One model's personal layer: a SQLite file of feedback events.

    Three connections: writes queue on one; events are read through another; the stamps every
    request checks have their own, so that they wait neither on a write's fsync (WAL lets a
    reader in beside a writer) nor on a long read of events.
    """

    def __init__(self, path, *, latent_dim: int | None, min_photos: int = defaults.PERSONAL_MIN_PHOTOS,
                 model_name=None, max_events: int = defaults.PERSONAL_MAX_EVENTS):
        self.path = Path(path)
        self.latent_dim = latent_dim
        self.min_photos = min_photos
        self.max_events = max_events
        self.model_name = model_name
        self._lock = threading.Lock()  # the writing connection, shared by the threads of one process
        self._read_lock = threading.Lock()
        self._stamps_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the user's own: tags, photo hashes
        try:
            if not self.path.exists():
                _create(self.path)
            with _turn(self.path):  # a layer being copied in (_copy_in) is whole once its turn is over
                if self.path.stat().st_size == 0:  # SQLite would take it for a new layer and begin one over it
                    raise self.damaged("it is empty: it was cut short")
            self._db = self._connect()
            # Switching to WAL does not wait on SQLite's busy timeout: workers starting together
            # take turns through a lock file instead of failing with "database is locked".
            with self._lock, _turn(self.path):
                self._db.execute("pragma journal_mode=wal")
                self._db.executescript(SCHEMA)  # idempotent, so workers starting together agree
                self._migrate()
                if model_name:
                    self._db.execute("insert or ignore into meta (key, value) values ('model', ?)", [model_name])
            self._reader, self._stamps_reader = self._connect(), self._connect()
        except (sqlite3.OperationalError, OSError) as error:  # a full disk, a folder it may not write...
            raise self.unwritable(error) from None
        except sqlite3.DatabaseError as error:
            raise self.damaged(error) from None

    def damaged(self, why) -> LablrError:
        return LablrError(f"The personal layer {self.path} cannot be read ({why}). Move it away to start "
                          "afresh, or serve the model alone with --no-personal.", code="bad_personal_layer",
                          status=503)

    def unwritable(self, why) -> LablrError:
        return LablrError(f"The personal layer {self.path} cannot be written now ({why}); it is as it was before "
                          "this change. Free some disk space and try again, or serve the model alone with "
                          "--no-personal.", code="personal_unwritable", status=507)

    def _connect(self):
        db = sqlite3.connect(_uri(self.path, "rw"), uri=True, isolation_level=None, check_same_thread=False,
                             timeout=defaults.PERSONAL_BUSY_SECONDS)
        db.execute("pragma synchronous=full")  # an acknowledged event is on disk
        return db

    def _migrate(self):
        columns = {row[1] for row in self._db.execute("pragma table_info(events)")}
        for column, statement in MIGRATIONS.items():
            if column not in columns:
                self._db.execute(statement)

    @classmethod
    def for_bundle(cls, model) -> "PersonalLayer":
        """The layer of a loaded Model: the user's, or one carried over from a bundled model with the same
        latent space (a new default over the same encoder), or else a new empty one."""
        path = layer_path(model.path)
        if not path.exists():
            carry_over(model.path, path)
        return cls(path, latent_dim=model.encoder.latent_dim, model_name=model.name)

    def close(self):
        with self._lock, self._read_lock, self._stamps_lock:
            for db in (self._db, self._reader, self._stamps_reader):
                db.close()

    # -- writing: each change is one transaction that also moves the version stamp ----------------

    @contextmanager
    def _write(self, *, removal=False):
        db = self._db
        try:
            db.execute("begin immediate")  # takes the write lock now: writers queue here, across processes
            yield
            keys = ("version", "removals") if removal else ("version",)
            db.execute(f"update meta set value = cast(value as integer) + 1 where key in "
                       f"({', '.join('?' * len(keys))})", keys)
            db.execute("commit")
        except BaseException as error:
            if db.in_transaction:  # a commit that failed may leave it open
                db.execute("rollback")
            if isinstance(error, sqlite3.OperationalError):  # a full disk, a lock held past the timeout
                raise self.unwritable(error) from None
            raise

    def record(self, photo_hash: str, latent, tags: list[str], suggested: list[str] | None,
               shown: list[float] | None = None, *, known_as=(), source: str | None = None) -> Event | None:
        """Add one photo; None when this photo (by hash, or by any hash in `known_as`) is already in the layer."""
        latent = np.asarray(latent, dtype="<f8").reshape(-1)
        if self.latent_dim is not None and latent.shape != (self.latent_dim,):
            raise ValueError(f"a latent of {latent.shape} in a layer of {self.latent_dim} dimensions")
        if len(tags) > defaults.PERSONAL_MAX_EVENT_TAGS:
            raise LablrError(f"At most {defaults.PERSONAL_MAX_EVENT_TAGS} tags per photo; this one has {len(tags)}.",
                             code="bad_tags", status=422)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            with self._lock, self._write():
                held = self._db.execute("select count(*) from events").fetchone()[0]
                if held >= self.max_events:
                    raise self._full(held)
                if self._holds(self._db, known_as):
                    raise _AlreadyThere
                cursor = self._db.execute(
                    "insert or ignore into events (time, photo_hash, latent, tags, suggested, shown, source) "
                    "values (?, ?, ?, ?, ?, ?, ?)",
                    [stamp, photo_hash, latent.tobytes(), _text(tags),
                     None if suggested is None else _text(suggested),
                     None if shown is None else json.dumps([None if x is None else round(float(x), 6) for x in shown]),
                     source])
                if cursor.rowcount == 0:
                    raise _AlreadyThere
                event_id = cursor.lastrowid
        except _AlreadyThere:
            return None
        return Event(event_id, stamp, photo_hash, latent, tags, suggested, shown, source)

    def event_of(self, photo_hashes) -> Event | None:
        """The event of a photo (by any of its hashes), or None if it is not in the layer."""
        with self._read_lock:
            return self._event_of(self._reader, photo_hashes)

    def correct(self, readings) -> dict[str, "Change"]:
        """Bring photos in the layer up to date with their keywords as read again (`readings`: Reading each, one
        per photo): see `corrected_tags`. Each photo still counts once.
        One write for all: a change to learned photos is replayed, as an undo is, and so once, not once per
        photo. What changed, by the first hash of each reading."""
        readings, changes = list(readings), {}
        if not readings:
            return changes
        try:
            with self._lock, self._write(removal=True):
                for reading in readings:
                    event = self._event_of(self._db, reading.hashes)  # undone meanwhile: nothing to do
                    change = None if event is None else Change.of(event, corrected_tags(event, reading))
                    if not change or len(change.tags) > defaults.PERSONAL_MAX_EVENT_TAGS:
                        continue
                    self._db.execute("update events set tags = ? where id = ?", [_text(change.tags), event.id])
                    changes[reading.hashes[0]] = change
                if not changes:
                    raise _AlreadyThere
        except _AlreadyThere:
            return {}
        return changes

    def _event_of(self, db, photo_hashes) -> "Event | None":
        hashes = list(photo_hashes)
        row = db.execute(f"select {COLUMNS} from events where photo_hash in ({', '.join('?' * len(hashes))}) "
                         "order by id limit 1", hashes).fetchone()
        return None if row is None else self._event(row)

    def _full(self, held) -> LablrError:
        return LablrError(f"The personal layer {self.path} holds {held:,} photos, its limit "
                          f"(LABLR_PERSONAL_MAX_EVENTS={self.max_events}): forget some with `lablr personal undo` "
                          "or raise the limit.", code="personal_full", status=409)

    def undo(self, count: int) -> list[Event]:
        """Remove the last `count` events; they are returned, newest first."""
        with self._lock, self._write(removal=True):
            rows = self._db.execute(f"select {COLUMNS} from events order by id desc limit ?", [count]).fetchall()
            undone = [self._event(row) for row in rows]  # before the delete: a damaged one leaves the layer as it was
            self._db.execute("delete from events where id in (select id from events order by id desc limit ?)",
                             [count])
        return undone

    def reset(self) -> int:
        with self._lock, self._write(removal=True):
            return self._db.execute("delete from events").rowcount

    # -- reading ------------------------------------------------------------------------------

    def version(self) -> int:
        return self.stamps()[0]

    def stamps(self) -> tuple[int, int]:
        """(version, removals): the first moves with every write, the second with every undo or reset."""
        with self._stamps_lock:
            rows = dict(self._stamps_reader.execute(STAMPS))
        return self._stamps(rows)

    def _stamps(self, rows: dict) -> tuple[int, int]:
        try:
            return int(rows["version"]), int(rows["removals"])
        except (KeyError, ValueError) as error:
            raise self.damaged(f"its stamps: {error}") from None

    def count(self) -> int:
        with self._read_lock:
            return self._reader.execute("select count(*) from events").fetchone()[0]

    def events(self, after: int = 0) -> list[Event]:
        """The events with an id above `after`, oldest first."""
        with self._read_lock:
            rows = self._reader.execute(f"select {COLUMNS} from events where id > ? order by id", [after]).fetchall()
        return [self._event(row) for row in rows]

    def latents(self, ids) -> np.ndarray:
        ids = list(ids)
        with self._read_lock:
            rows = dict(self._reader.execute(f"select id, latent from events where id in ({', '.join('?' * len(ids))})",
                                             ids).fetchall())
        return np.stack([np.frombuffer(rows[i], dtype="<f8") for i in ids if i in rows])

    def has(self, photo_hash: str, *, known_as=()) -> bool:
        with self._read_lock:
            return self._holds(self._reader, [photo_hash, *known_as])

    @staticmethod
    def _holds(db, photo_hashes) -> bool:
        hashes = list(photo_hashes)
        return bool(hashes) and db.execute(f"select 1 from events where photo_hash in ({', '.join('?' * len(hashes))})",
                                           hashes).fetchone() is not None

    def batches(self, after: int = 0, size: int = EVENT_BATCH) -> tuple[int, int, Iterator[list[Event]]]:
        """(version, removals, the events after `after` that those stamps count, oldest first, in lists of at most
        `size`): a layer of many photos is never in memory whole, however long their tags. The stamps and the
        last event's id are read in one transaction; an event recorded after it has a higher id, and one undone
        or changed meanwhile moves `removals`, so whoever compares the stamps reads the layer again."""
        with self._read_lock:
            self._reader.execute("begin")
            try:
                rows = dict(self._reader.execute(STAMPS))
                last = self._reader.execute("select coalesce(max(id), 0) from events").fetchone()[0]
            finally:
                self._reader.execute("commit")
        return (*self._stamps(rows), self._batches(after, last, size))

    def _batches(self, after: int, last: int, size: int) -> Iterator[list[Event]]:
        while after < last:
            with self._read_lock:
                rows = self._reader.execute(f"select {COLUMNS} from events where id > ? and id <= ? order by id "
                                            "limit ?", [after, last, size]).fetchall()
            if not rows:
                return
            batch = [self._event(row) for row in rows]
            yield batch
            after = batch[-1].id

    def _event(self, row) -> Event:
        """An event as stored; a row that is not what `record` writes names the layer as damaged."""
        event_id, stamp, digest, latent, tags, suggested, shown, source = row
        try:
            latent = np.frombuffer(latent, dtype="<f8")
            if self.latent_dim is not None and latent.shape != (self.latent_dim,):
                raise ValueError(f"a latent of {latent.size * 8} bytes")
            event = Event(event_id, stamp, digest, latent, json.loads(tags),
                          None if suggested is None else json.loads(suggested),
                          None if shown is None else json.loads(shown), source)
            if not _strings(event.tags) or (event.suggested is not None and not _strings(event.suggested)):
                raise ValueError("tags that are not a list of text")
        except (TypeError, ValueError) as error:
            raise self.damaged(f"event {event_id}: {error}") from None
        return event


COLUMNS = "id, time, photo_hash, latent, tags, suggested, shown, source"


@dataclass
class Reading:
    """A photo's keywords as read again: `complete` if every source of them (the photo, each sidecar) was
    read whole, so that a keyword it lacks was removed, not merely unread."""

    hashes: list[str]
    tags: list[str]
    complete: bool

    def merged(self, other: "Reading") -> "Reading":
        """Two copies of one photo (the same pixels) read in one run: the keywords of either, so that one copy
        lacking a keyword the other has does not take it away."""
        return Reading(self.hashes, self.tags + [t for t in other.tags if t not in self.tags],
                       self.complete and other.complete)


@dataclass
class Change:
    tags: list[str]  # the event's tags now
    gained: list[str]
    removed: list[str]

    @classmethod
    def of(cls, event: Event, tags: list[str]) -> "Change | None":
        gained, removed = [t for t in tags if t not in event.tags], [t for t in event.tags if t not in tags]
        return cls(tags, gained, removed) if gained or removed else None


def corrected_tags(event: Event, reading: Reading) -> list[str]:
    """The tags of a photo's event once its keywords were read again: those written since are added; those
    removed since leave it only if its tags were its keywords (not what was published: the file may well
    lack those) and every source of its keywords was read (never acting on what could not be read). A photo
    read with no keyword at all removes none: more likely a copy stripped of them than a photo untagged by hand."""
    tags = event.tags + [t for t in reading.tags if t not in event.tags]
    if reading.complete and reading.tags and event.source == KEYWORDS:
        return [t for t in tags if t in reading.tags]
    return tags


def _text(tags: list[str]) -> str:
    """Tags as stored: JSON in UTF-8 (an emoji is 4 bytes, not the 12 of its escapes)."""
    return json.dumps(tags, ensure_ascii=False)
STAMPS = "select key, value from meta where key in ('version', 'removals')"


def _strings(items) -> bool:
    return isinstance(items, list) and all(isinstance(item, str) for item in items)


def same_latent_space(one, other) -> bool:
    """Whether two bundles encode photos to the same latents (lablr.core.bundle.latent_space)."""
    first, second = bundle.read_manifest(one), bundle.read_manifest(other)
    # Other encoders' latents are never the same: their plugins (maybe not installed) need not be asked.
    return (first.parts["encoder"].name == second.parts["encoder"].name
            and bundle.latent_space(first) == bundle.latent_space(second))


def carry_over(bundle_path, destination: Path) -> bool:
    """Copy to `destination` the user's newest layer of a shipped model with the same latent space:
    another one (the default changed), or this one before a newer Lablr rebuilt it (its checksum, and
    so its layer's name, changed). Such a layer's latents mean the same here."""
    source = layer_to_carry_over(bundle_path, destination)
    if source is None:
        return False

    def copy(new):
        with closing(sqlite3.connect(source)) as old:
            old.backup(new)  # consistent even while another process writes to it

    _put_in_place(destination, copy)
    return True


def layer_to_carry_over(bundle_path, destination: Path) -> Path | None:
    """The layer that carry_over would copy to `destination`, if any."""
    models = {name for name in bundle.bundled_names()
              if same_latent_space(bundle_path, bundle.bundled_root() / name)}
    layers = sorted(destination.parent.glob("*" + FILE_SUFFIX), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((p for p in layers if p != destination and _recorded_model(p) in models), None)


def _recorded_model(path: Path) -> str | None:
    """The name of the model a layer file was made for, or None if it cannot be read."""
    try:
        with closing(sqlite3.connect(_uri(path, "ro"), uri=True)) as db:
            row = db.execute("select value from meta where key = 'model'").fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _create(path: Path):
    _put_in_place(path, lambda db: db.executescript(SCHEMA))


def _put_in_place(path: Path, fill):
    """A new layer file, made whole beside its place (`fill` writes it) and linked in: a layer file that
    exists is never empty unless it was damaged, and never replaces one another process began or
    carried over meanwhile (workers starting together each make their own, one per process)."""
    partial = partial_path(path)
    try:
        with closing(sqlite3.connect(partial)) as db:
            fill(db)
        os.link(partial, path)
    except FileExistsError:
        pass
    except OSError as error:
        if error.errno not in NO_HARD_LINKS:
            raise
        _copy_in(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    fsync_dir(path.parent)


# What link() says on a filesystem without hard links (exFAT, FAT, some FUSE and network filesystems).
NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.ENOSYS}


def _copy_in(partial: Path, path: Path):
    """Where hard links cannot be made: the place taken only if it is free (O_EXCL, so never over a layer
    begun meanwhile), then filled with the partial's bytes. Until they are all there the file is short, so
    this holds the layer's turn, which a process opening it waits for."""
    with _turn(path):
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        try:
            with open(descriptor, "wb") as out, open(partial, "rb") as source:
                shutil.copyfileobj(source, out)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            path.unlink(missing_ok=True)  # no one opens it before this turn ends: cut short, it is no layer
            raise


@contextmanager
def _turn(path: Path):
    """The layer's lock file, held: processes that set a layer up take turns."""
    with open(path.with_name(path.name + ".lock"), "a") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX)
        yield


def _uri(path: Path, mode: str) -> str:
    """An SQLite URI that opens the file at `path` in `mode` ("rw": never creates it; "ro")."""
    return f"file:{quote(str(path))}?mode={mode}"


class _AlreadyThere(Exception):
    """Raised inside the write transaction so that a duplicate, or a change already made, changes nothing,
    not even the version."""


# -- `lablr personal ...`: the layer of a bundle on disk, without loading its encoder ----------------

def open_for_bundle(model):
    """(the layer of a bundle path or name, or None if the user has none yet; the bundle's manifest)."""
    path = bundle.resolve(model)
    manifest = bundle.read_manifest(path)
    where = layer_path(path)
    if not where.exists() and not carry_over(path, where):
        return None, manifest
    latent_dim = manifest.parts["encoder"].settings.get("latent_dim")
    return PersonalLayer(where, latent_dim=latent_dim, model_name=manifest.name), manifest


def check(model):
    """Open the layer of a bundle, if the user has one: a damaged file fails here, in one line."""
    layer, _ = open_for_bundle(model)
    if layer:
        with closing(layer):
            for _ in layer.batches()[2]:  # every event read: a damaged row fails here too, before anything is served
                pass


def vocabulary_tags(bundle_path) -> list[str]:
    """The photo vocabulary's tags of a bundle on disk, read without loading its encoder."""
    from lablr.core.vocabulary import FILE, ConceptVocabulary

    return ConceptVocabulary.load(bundle_path).all_tags if (Path(bundle_path) / FILE).exists() else []


EXPORT_START = b'{\n "model": '  # how every export begins (json.dumps of the document below, indent=1)
EXPORT_IN_WORDS = "an export of Lablr's personal layer"


def is_export(head: bytes) -> bool:
    return head.startswith(EXPORT_START)


def export(model, destination) -> int:
    """Write every event (with its latent) as JSON, atomically, at a free name or over an earlier export;
    the number written."""
    check_replaceable(destination, EXPORT_IN_WORDS, is_export)  # before reading the layer: said at once
    layer, manifest = open_for_bundle(model)
    events = []
    if layer:
        with closing(layer):
            events = layer.events()
    document = {"model": manifest.name, "bundle_checksum": layer.path.stem if layer else None,
                "events": [event.as_dict(latent=True) for event in events]}
    write_output(destination, json.dumps(document, indent=1) + "\n", EXPORT_IN_WORDS, is_export)
    return len(events)


def undo(model, count: int) -> list[Event]:
    layer, _ = open_for_bundle(model)
    if not layer:
        return []
    with closing(layer):
        return layer.undo(count)


def reset(model) -> tuple[int, str | None]:
    """(photos forgotten, None); or, for a model that had no layer of its own and so would have carried one over,
    (the photos of that layer, which keeps them, "the model it was made for (its path)"): the model gets an
    empty layer, so it starts from nothing instead."""
    path = bundle.resolve(model)
    where = layer_path(path)
    source = None if where.exists() else layer_to_carry_over(path, where)
    layer, _ = open_for_bundle(model)
    if not layer:
        return 0, None
    with closing(layer):
        return layer.reset(), source and f"{_recorded_model(source)} ({source})"
