"""`folder` and `csv`: tagged images on the user's own disk.

folder: DIR/TAG/IMAGE — one subfolder per tag, as many tools lay out labelled images.
csv:    the original Lablr's CSV of path,label rows (a path may repeat with other labels);
        relative paths are relative to the CSV file.
"""

import csv
import io
from collections import defaultdict
from pathlib import Path

from lablr.core import hookimpl
from lablr.core.errors import LablrError
from lablr.core.files import write_output
from lablr.core.parts import PhotoRecord

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


@hookimpl
def register_sources(register):
    register("folder", FolderSource)
    register("csv", CsvSource)


class FolderSource:
    description = "a folder with one subfolder of images per tag"

    def records(self, location=None):
        if not location:
            raise LablrError("Which folder? `lablr import folder DIR`, DIR with one subfolder of images per tag.")
        if not Path(location).is_dir():
            raise LablrError(f"Not a folder: {location}. Give a folder with one subfolder of images per tag.")
        root = Path(location).resolve()
        for tag_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for image in sorted(tag_dir.rglob("*")):
                if image.suffix.lower() in IMAGE_SUFFIXES and image.is_file():
                    yield PhotoRecord(key=f"file:{image}", path=str(image), tags=[tag_dir.name])


class CsvSource:
    description = "the original Lablr's CSV of path,label rows"

    def records(self, location=None):
        if not location:
            raise LablrError("Which file? `lablr import csv FILE`, FILE a CSV of path,label rows.")
        if not Path(location).is_file():
            raise LablrError(f"Not a file: {location}. Give a CSV of path,label rows.")
        csv_path = Path(location).resolve()
        labels = defaultdict(list)
        with open(csv_path, newline="", encoding="utf-8") as file:
            for line, row in enumerate(csv.reader(file), start=1):
                if len(row) < 2 or (line == 1 and row[0].strip().lower() == "path"):
                    continue
                path = Path(row[0].strip())
                path = path if path.is_absolute() else (csv_path.parent / path).resolve()
                labels[path].append(row[1].strip())
        for path, tags in labels.items():
            yield PhotoRecord(key=f"file:{path}", path=str(path), tags=tags)


HEADER = ["path", "label"]


def write_csv(photos, destination):
    """Write photos ({path, tags}) as the original's path,label CSV, one row per tag: whole or not at all, and
    only over such a CSV (never over the catalog it is read from, a photo, or another file of the user's)."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(HEADER)
    for photo in photos:
        for tag in photo["tags"]:
            writer.writerow([photo["path"], tag])
    write_output(destination, text.getvalue().encode("utf-8"), "a path,label CSV", is_path_label_csv)


def is_path_label_csv(head: bytes) -> bool:
    first = head.split(b"\n", 1)[0].strip().lower()
    return first == ",".join(HEADER).encode()
