"""The personal layer: the photos a user publishes teach the model they use.

Each feedback event (time, photo hash, the photo's latent, its final tags, what had been
suggested; never the image) is one row in a SQLite file under the user's data directory. The
layer belongs to one bundle: the file is named by the checksum of the bundle's manifest (which
holds the checksums of all its files), so a latent from one encoder never enters another
model's statistics, and the bundle itself is never written.

The served tag model is the bundle's exact sums plus the latents of every event, so undoing an
event removes exactly what it added. A tag the bundle does not know joins the vocabulary once
`min_photos` events carry it. A version stamp in the same file changes with every write: each
server process compares it before a request and rebuilds its tag model when it moved.
"""

import fcntl
import hashlib
import json
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lablr.core import bundle, defaults
from lablr.core.data.catalog import is_printable_tag, normalize_tag
from lablr.core.errors import LablrError

FILE_SUFFIX = ".sqlite"
SCHEMA = """
create table if not exists events (
    id integer primary key autoincrement,
    time text not null,
    photo_hash text not null unique,
    latent blob not null,
    tags text not null,
    suggested text
);
create table if not exists meta (key text primary key, value text not null);
insert or ignore into meta (key, value) values ('version', '0');
"""


def layer_path(bundle_path) -> Path:
    """Where the layer of a bundle lives: named by the bundle's checksum, so each model has its own."""
    return defaults.data_dir() / "personal" / (bundle.checksum(bundle_path) + FILE_SUFFIX)


def photo_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_tags(text: str | None, what: str = "tags") -> list[str]:
    """Comma-separated tags -> their stored form, in order, each once. Raises LablrError (422)."""
    tags = []
    for raw in (text or "").split(","):
        tag = normalize_tag(raw)
        if not tag or tag in tags:
            continue
        if len(tag) > defaults.TAG_MAX_CHARS or not is_printable_tag(tag):
            raise LablrError(f"A tag in {what} is printable text of at most {defaults.TAG_MAX_CHARS} characters: "
                             f"{tag[:40]!r}.", code="bad_tags", status=422)
        tags.append(tag)
    if len(tags) > defaults.MAX_FEEDBACK_TAGS:
        raise LablrError(f"At most {defaults.MAX_FEEDBACK_TAGS} {what} per photo (Flickr's limit); "
                         f"this request has {len(tags)}.", code="bad_tags", status=422)
    return tags


@dataclass
class Event:
    id: int
    time: str
    photo_hash: str
    latent: np.ndarray
    tags: list[str]
    suggested: list[str] | None

    def as_dict(self, latent=False) -> dict:
        out = {"id": self.id, "time": self.time, "photo_hash": self.photo_hash, "tags": self.tags,
               "suggested": self.suggested}
        if latent:
            out["latent"] = self.latent.tolist()
        return out


@dataclass
class Learned:
    """What the layer adds to a bundle's tag model."""

    photos: int = 0
    tag_photos: dict = field(default_factory=dict)  # tag -> the user's photos carrying it
    added: list = field(default_factory=list)  # new tags in the vocabulary, most used first
    pending: dict = field(default_factory=dict)  # new tag -> photos so far, below the threshold

    def as_dict(self) -> dict:
        return {"photos": self.photos, "added_tags": self.added, "pending_tags": self.pending,
                "tag_photos": self.tag_photos}


class PersonalLayer:
    """One model's personal layer: a SQLite file of feedback events."""

    def __init__(self, path, *, latent_dim: int | None, min_photos: int = defaults.PERSONAL_MIN_PHOTOS,
                 model_name=None):
        self.path = Path(path)
        self.latent_dim = latent_dim
        self.min_photos = min_photos
        self.model_name = model_name
        self._lock = threading.Lock()  # one connection, shared by the threads of one process
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the user's own: tags, photo hashes
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                       timeout=defaults.PERSONAL_BUSY_SECONDS)
            # Switching to WAL does not wait on SQLite's busy timeout: workers starting together
            # take turns through a lock file instead of failing with "database is locked".
            with self._lock, open(self.path.with_name(self.path.name + ".lock"), "a") as turn:
                fcntl.flock(turn, fcntl.LOCK_EX)
                self._db.execute("pragma journal_mode=wal")
                self._db.execute("pragma synchronous=full")  # an acknowledged event is on disk
                self._db.executescript(SCHEMA)  # idempotent, so workers starting together agree
                if model_name:
                    self._db.execute("insert or ignore into meta (key, value) values ('model', ?)", [model_name])
        except sqlite3.DatabaseError as error:
            raise LablrError(f"The personal layer {self.path} cannot be read ({error}). Move it away to start "
                             "afresh, or serve the model alone with --no-personal.", code="bad_personal_layer",
                             status=500) from None

    @classmethod
    def for_bundle(cls, model) -> "PersonalLayer":
        """The layer of a loaded Model: the user's, or one carried over from a bundled model with the same
        latent space (a new default over the same encoder), or else a new empty one."""
        path = layer_path(model.path)
        if not path.exists():
            carry_over(model.path, path)
        return cls(path, latent_dim=model.encoder.latent_dim, model_name=model.name)

    def close(self):
        with self._lock:
            self._db.close()

    # -- writing: each change is one transaction that also moves the version stamp ----------------

    class _Transaction:
        def __init__(self, db):
            self.db = db

        def __enter__(self):
            self.db.execute("begin immediate")  # takes the write lock now: writers queue here, across processes

        def __exit__(self, kind, error, trace):
            if kind is None:
                self.db.execute("update meta set value = cast(value as integer) + 1 where key = 'version'")
                self.db.execute("commit")
            else:
                self.db.execute("rollback")

    def _write(self):
        return self._Transaction(self._db)

    def record(self, photo_hash: str, latent, tags: list[str], suggested: list[str] | None) -> Event | None:
        """Add one photo; None when this photo (by hash) is already in the layer."""
        latent = np.asarray(latent, dtype="<f8").reshape(-1)
        if self.latent_dim is not None and latent.shape != (self.latent_dim,):
            raise ValueError(f"a latent of {latent.shape} in a layer of {self.latent_dim} dimensions")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            with self._lock, self._write():
                cursor = self._db.execute(
                    "insert or ignore into events (time, photo_hash, latent, tags, suggested) values (?, ?, ?, ?, ?)",
                    [stamp, photo_hash, latent.tobytes(), json.dumps(tags),
                     None if suggested is None else json.dumps(suggested)])
                if cursor.rowcount == 0:
                    raise _AlreadyThere
                event_id = cursor.lastrowid
        except _AlreadyThere:
            return None
        return Event(event_id, stamp, photo_hash, latent, tags, suggested)

    def undo(self, count: int) -> list[Event]:
        """Remove the last `count` events; they are returned, newest first."""
        with self._lock, self._write():
            rows = self._db.execute("select * from events order by id desc limit ?", [count]).fetchall()
            self._db.execute("delete from events where id in (select id from events order by id desc limit ?)",
                             [count])
        return [self._event(row) for row in rows]

    def reset(self) -> int:
        with self._lock, self._write():
            return self._db.execute("delete from events").rowcount

    # -- reading ------------------------------------------------------------------------------

    def version(self) -> int:
        with self._lock:
            return int(self._db.execute("select value from meta where key = 'version'").fetchone()[0])

    def events(self) -> list[Event]:
        with self._lock:
            rows = self._db.execute("select * from events order by id").fetchall()
        return [self._event(row) for row in rows]

    def _event(self, row) -> Event:
        event_id, stamp, digest, latent, tags, suggested = row
        return Event(event_id, stamp, digest, np.frombuffer(latent, dtype="<f8"), json.loads(tags),
                     None if suggested is None else json.loads(suggested))

    def snapshot(self) -> tuple[int, list[Event]]:
        """(version, events) read in one transaction, so they agree."""
        with self._lock:
            self._db.execute("begin")
            try:
                version = int(self._db.execute("select value from meta where key = 'version'").fetchone()[0])
                rows = self._db.execute("select * from events order by id").fetchall()
            finally:
                self._db.execute("commit")
        return version, [self._event(row) for row in rows]

    # -- the model it serves --------------------------------------------------------------------

    def learned(self, known_tags, events: list[Event]) -> Learned:
        """What the events add to a model that knows `known_tags`."""
        known = set(known_tags)
        tag_photos = Counter(tag for event in events for tag in event.tags)
        by_use = sorted(tag_photos, key=lambda tag: (-tag_photos[tag], tag))
        return Learned(photos=len(events), tag_photos=dict(sorted(tag_photos.items())),
                       added=[t for t in by_use if t not in known and tag_photos[t] >= self.min_photos],
                       pending={t: tag_photos[t] for t in by_use if t not in known and tag_photos[t] < self.min_photos})

    def apply(self, base_tag_model, events: list[Event], also_known=()):
        """(tag model, Learned): a copy of the bundle's tag model with every event's latent added
        to the sums of its tags; a new tag only once it has `min_photos` photos. Tags in
        `also_known` (the photo vocabulary's) are known already: they learn from the first photo."""
        learned = self.learned([*base_tag_model.tags, *also_known], events)
        admitted = set(base_tag_model.tags) | set(also_known) | set(learned.added)
        tag_model = base_tag_model.copy()
        if events:
            tag_model.update(np.stack([event.latent for event in events]),
                             [[tag for tag in event.tags if tag in admitted] for event in events])
        return tag_model, learned



def same_latent_space(one, other) -> bool:
    """Whether two bundles encode photos to the same latents: the same encoder, settings that shape its
    latents, and the same files that decide them (its LATENT_FILES, e.g. effnet-lite0's PCA)."""
    from lablr.core.plugins import get_part

    first, second = bundle.read_manifest(one), bundle.read_manifest(other)
    a, b = first.parts["encoder"], second.parts["encoder"]
    if a.name != b.name or {k: a.settings.get(k) for k in ("latent_dim", "image_size")} != \
            {k: b.settings.get(k) for k in ("latent_dim", "image_size")}:
        return False
    files = getattr(get_part("encoder", a.name).factory, "LATENT_FILES", ())
    return bool(files) and all(first.files.get(name) and first.files.get(name) == second.files.get(name)
                               for name in files)


def carry_over(bundle_path, destination: Path) -> bool:
    """Copy the user's layer of another bundled model with the same latent space to `destination`."""
    for name in bundle.bundled_names():
        other = bundle.bundled_root() / name
        source = layer_path(other)
        if Path(other).resolve() == Path(bundle_path).resolve() or not source.exists():
            continue
        if same_latent_space(bundle_path, other):
            destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            partial = destination.with_name(f".{destination.name}.partial")
            with sqlite3.connect(source) as old, sqlite3.connect(partial) as new:
                old.backup(new)  # consistent even while another process writes to it
            old.close()
            new.close()
            partial.replace(destination)
            return True
    return False


class _AlreadyThere(Exception):
    """Raised inside the write transaction so that a duplicate changes nothing, not even the version."""


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
        layer.close()


def vocabulary_tags(bundle_path) -> list[str]:
    """The photo vocabulary's tags of a bundle on disk, read without loading its encoder."""
    from lablr.core.vocabulary import FILE, ConceptVocabulary

    return ConceptVocabulary.load(bundle_path).all_tags if (Path(bundle_path) / FILE).exists() else []


def describe(model) -> dict:
    layer, manifest = open_for_bundle(model)
    known = [tag for tag, _ in manifest.tags] + vocabulary_tags(bundle.resolve(model))
    events = layer.events() if layer else []
    learned = layer.learned(known, events) if layer else Learned()
    return {"model": manifest.name, "layer": str(layer.path) if layer else None,
            "min_photos": defaults.PERSONAL_MIN_PHOTOS, **learned.as_dict(),
            "last": [event.as_dict() for event in events[-5:]][::-1]}


def export(model, destination) -> int:
    """Write every event (with its latent) as JSON, beside then renamed; the number written."""
    layer, manifest = open_for_bundle(model)
    events = layer.events() if layer else []
    document = {"model": manifest.name, "bundle_checksum": layer.path.stem if layer else None,
                "events": [event.as_dict(latent=True) for event in events]}
    destination = Path(destination)
    partial = destination.with_name(f".{destination.name}.partial")
    partial.write_text(json.dumps(document, indent=1) + "\n")
    partial.replace(destination)
    return len(events)


def undo(model, count: int) -> list[Event]:
    layer, _ = open_for_bundle(model)
    return layer.undo(count) if layer else []


def reset(model) -> int:
    layer, _ = open_for_bundle(model)
    return layer.reset() if layer else 0

