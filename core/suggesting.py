"""Suggesting tags for many image files, each bad file reported on its own, the rest still answered."""

from pathlib import Path

import numpy as np

from lablr.core.data import decoding as imaging
from lablr.core.errors import ImageError

BATCH = 64  # decoded images held at once


def suggest_files(model, paths, k, *, scorer=None, exclude=()) -> list[dict]:
    """For each path, in order: {"filename", "suggestions": [...]} or {"filename", "error": {"code", "message"}}."""
    results = []
    for start in range(0, len(paths), BATCH):
        batch = paths[start:start + BATCH]
        decoded = [_decode(path, model.image_size) for path in batch]
        good = [array for array in decoded if not isinstance(array, ImageError)]
        found = iter(model.suggest(np.stack(good), k, scorer=scorer, exclude=exclude) if good else [])
        for path, array in zip(batch, decoded):
            if isinstance(array, ImageError):
                results.append({"filename": str(path), "error": {"code": array.code, "message": array.message}})
            else:
                results.append({"filename": str(path), "suggestions": [s.as_dict() for s in next(found)]})
    return results


def _decode(path, size):
    if Path(path).is_dir():
        return ImageError(f"is a folder: name its photos ({Path(path) / '*.jpg'}), or see all their tags with "
                          f"`lablr tag {path} --dry-run`.", code="unreadable")
    try:
        return imaging.decode(imaging.read_file(path), size)
    except OSError as error:
        return ImageError(f"cannot be read ({error.strerror or error}).", code="unreadable")
    except ImageError as error:
        return error
