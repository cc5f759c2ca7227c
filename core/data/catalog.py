"""The catalog: a SQLite file of photos and their tags, through sqlite-utils.

Tables: photos, tags, photo_tags, splits and split_rules (the selection rules the recorded
split was made with); a plugin may add its own beside them (the flickr plugin records its
searches and downloads). Every write is a transaction, so a crash loses at
most the record in flight and a rerun continues where it stopped.
"""

import json
import re
import sqlite3
import time
import unicodedata
from contextlib import closing
from pathlib import Path
from typing import Iterable

import sqlite_utils

from lablr.core import defaults
from lablr.core.errors import LablrError
from lablr.core.parts import PhotoRecord

_SPACES = re.compile(r"\s+")
BYTE_ORDER_MARK = "\ufeff"
# Invisible characters that belong in printable text: the joiners inside emoji sequences such as
# 👨‍👩‍👧 and in scripts such as Devanagari or Persian. Every other control or format character is refused.
JOINERS = frozenset("\u200c\u200d")


def normalize_tag(tag: str) -> str:
    """The form a tag is stored and compared in: trimmed, lower case, single spaces, no byte-order mark
    (an editor's leftover at the start of pasted text, never part of a tag), accents composed (NFC: macOS
    writes "é" as "e" and a combining accent, and it is the same tag)."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", tag.replace(BYTE_ORDER_MARK, "")).strip().lower())


def keyword_key(tag: str) -> str:
    """What two tags or keywords are compared by: their normal form, case-folded. Never shown or stored:
    folding goes further than normalize_tag's lower case ("Straße" matches "STRASSE"), which would change
    the tag a user wrote ("straße" stays "straße")."""
    return normalize_tag(tag).casefold()


TAG_RULE = f"printable text of at most {defaults.TAG_MAX_CHARS} characters"  # what a user is told


def is_acceptable_tag(tag: str) -> bool:
    """Whether a tag sent to Lablr (to embed or to learn) is TAG_RULE."""
    return (len(tag) <= defaults.TAG_MAX_CHARS and all(char.isprintable() or char in JOINERS for char in tag)
            and not set(tag) <= JOINERS)  # joiners join what is there: alone, they are an invisible tag


def compact_tag(tag: str) -> str:
    """Lower case, letters and digits only ("New York" -> "newyork"): how photo sites such as
    Flickr store tags, so a stop-list entry stops both forms."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", tag).lower() if ch.isalnum())


SQLITE_HEADER = b"SQLite format 3\x00"
PHOTO_COLUMNS = {"key", "source", "path", "status"}  # what tells Lablr's photos table from another program's


def check_is_catalog(path: Path):
    """Raise unless `path` is free, empty, an empty SQLite database or a Lablr catalog: opening a catalog
    writes to it (its tables, its journal mode), and a file of the user's own must stay as it was."""
    try:
        with open(path, "rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise LablrError(f"The catalog {path} is a folder: name a catalog file with --catalog.") from None
    if header and header != SQLITE_HEADER:
        raise LablrError(f"{path} is not a Lablr catalog (not an SQLite file): Lablr leaves it as it is. Name "
                         "another file with --catalog.")
    tables = _tables(path) if header else {}
    if tables and not PHOTO_COLUMNS <= tables.get("photos", set()):
        raise LablrError(f"{path} is another program's database (tables: {', '.join(sorted(tables)[:5])}), not a "
                         "Lablr catalog: Lablr leaves it as it is. Name another file with --catalog.")


def _tables(path: Path) -> dict[str, set[str]]:
    """{table: its columns} of an SQLite file, read without writing to it."""
    try:
        with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as db:
            names = [row[0] for row in db.execute("select name from sqlite_master where type = 'table'")]
            return {name: {row[1] for row in db.execute("select * from pragma_table_info(?)", [name])}
                    for name in names}
    except sqlite3.DatabaseError as error:
        raise LablrError(f"The catalog {path} cannot be read ({error}).") from None


class Catalog:
    def __init__(self, path):
        self.path = Path(path)
        check_is_catalog(self.path)
        try:
            self.db = sqlite_utils.Database(self.path)
        except sqlite3.OperationalError as error:
            raise LablrError(f"The catalog {self.path} cannot be opened ({error}): its folder must be there, and "
                             "writable.") from None
        self.db.execute("PRAGMA journal_mode=WAL")
        self._create_tables()

    def _create_tables(self):
        db = self.db
        if "photos" not in db.table_names():
            db["photos"].create({
                "id": int, "key": str, "source": str, "path": str, "url": str, "owner": str,
                "license": str, "title": str, "status": str,
            }, pk="id", not_null={"key"})
            db["photos"].create_index(["key"], unique=True)
        if "tags" not in db.table_names():
            db["tags"].create({"id": int, "name": str}, pk="id", not_null={"name"})
            db["tags"].create_index(["name"], unique=True)
        if "photo_tags" not in db.table_names():
            db["photo_tags"].create({"photo_id": int, "tag_id": int}, pk=("photo_id", "tag_id"),
                                    foreign_keys=[("photo_id", "photos"), ("tag_id", "tags")])
            db["photo_tags"].create_index(["tag_id"])
        if "splits" not in db.table_names():
            db["splits"].create({"photo_id": int, "split": str}, pk="photo_id",
                                foreign_keys=[("photo_id", "photos")])
        if "split_rules" not in db.table_names():  # one row: how the recorded split was chosen
            db["split_rules"].create({"id": int, "source": str, "rules": str, "recorded_at": str}, pk="id")

    def add(self, records: Iterable[PhotoRecord], source: str, status: str = "ok") -> int:
        """Add records not already in the catalog (by key); returns how many were new.

        A fetcher adds photos as "pending" and marks each "ok" once its image is on disk.
        """
        added = 0
        with self.db.atomic():
            for record in records:
                if self._add_one(record, source, status):
                    added += 1
        return added

    def _add_one(self, record: PhotoRecord, source: str, status: str = "ok") -> bool:
        photos = self.db["photos"]
        if self.db.execute("select 1 from photos where key = ?", [record.key]).fetchone():
            return False
        photo_id = photos.insert({
            "key": record.key, "source": source, "path": record.path, "url": record.url,
            "owner": record.owner, "license": record.license, "title": record.title, "status": status,
        }).last_pk
        names = sorted({normalize_tag(tag) for tag in record.tags if tag.strip()})
        if names:
            self.db["tags"].insert_all(({"name": name} for name in names), ignore=True)
            rows = self.db.execute(
                f"select id from tags where name in ({','.join('?' * len(names))})", names).fetchall()
            self.db["photo_tags"].insert_all(({"photo_id": photo_id, "tag_id": tag_id} for (tag_id,) in rows),
                                             ignore=True)
        return True

    def mark_broken(self, keys: Iterable[str]):
        with self.db.atomic():
            for key in keys:
                self.db.execute("update photos set status = 'broken' where key = ?", [key])

    def photos(self, source: str | None = None):
        """Every usable photo as dicts with key, path, owner and its list of tags."""
        where = "where p.status = 'ok'" + (" and p.source = ?" if source else "")
        rows = self.db.execute(f"""
            select p.key, p.path, p.owner, group_concat(t.name, char(31))
            from photos p left join photo_tags pt on pt.photo_id = p.id left join tags t on t.id = pt.tag_id
            {where} group by p.id order by p.id""", [source] if source else []).fetchall()
        return [{"key": key, "path": path, "owner": owner, "tags": tags.split("\x1f") if tags else []}
                for key, path, owner, tags in rows]

    def count(self) -> int:
        return self.db["photos"].count

    def save_splits(self, split_of_key: dict[str, str], *, rules: dict | None = None, source: str | None = None):
        """Record the training/test side of each photo, and the rules (a Rules dict) that chose them."""
        with self.db.atomic():
            self.db.execute("delete from splits")
            self.db.execute("delete from split_rules")
            if rules is not None:
                self.db.execute("insert into split_rules values (1, ?, ?, ?)",
                                [source, json.dumps(rules), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())])
            self.db.execute("create temp table if not exists chosen (key text primary key, split text)")
            self.db.execute("delete from chosen")
            self.db.conn.executemany("insert into chosen values (?, ?)", split_of_key.items())
            self.db.execute("insert into splits select p.id, c.split from photos p join chosen c on c.key = p.key")

    def recorded_rules(self) -> dict | None:
        """{"source", "rules"} of the recorded split, or None when no split was recorded with its rules."""
        row = self.db.execute("select source, rules from split_rules where id = 1").fetchone()
        return {"source": row[0], "rules": json.loads(row[1])} if row else None

    def only_source(self) -> str | None:
        """The source of every usable photo, when they all come from one."""
        rows = self.db.execute("select distinct source from photos where status = 'ok'").fetchall()
        return rows[0][0] if len(rows) == 1 else None

    def splits(self) -> dict[str, str]:
        rows = self.db.execute("select p.key, s.split from splits s join photos p on p.id = s.photo_id")
        return dict(rows.fetchall())
