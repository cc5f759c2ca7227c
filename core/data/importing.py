"""Bringing tagged images from a source into the catalog."""

import warnings

from PIL import Image, UnidentifiedImageError

from lablr.core.data.catalog import Catalog, normalize_tag
from lablr.core.plugins import get_part
from lablr.core.progress import progress_bar


def readable(path) -> bool:
    """Whether the file exists and has an image header Pillow knows (cheap: nothing is decoded).

    A very large image passes here; decoding refuses it later, with the pixel limit.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path):
                return True
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return False


def import_source(source_name, location, catalog_path, *, progress=True) -> dict:
    source = get_part("source", source_name)()
    stop = {normalize_tag(t) for t in getattr(source, "stop_tags", ())}
    catalog = Catalog(catalog_path)
    report = {"added": 0, "skipped": 0, "known": 0}
    batch = []

    def flush():
        added = catalog.add(batch, source_name)
        report["added"] += added
        report["known"] += len(batch) - added
        batch.clear()

    for record in progress_bar(source.records(location), desc=f"Importing {source_name}", unit="img", shown=progress):
        if not record.path or not readable(record.path):
            report["skipped"] += 1
            continue
        record.tags = [t for t in record.tags if normalize_tag(t) not in stop]
        batch.append(record)
        if len(batch) == 500:
            flush()
    flush()
    report["total"] = catalog.count()
    return report
