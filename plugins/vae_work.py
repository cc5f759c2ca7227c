"""The work folder of a VAE training run (`OUT.work`): checkpoints to resume from, and the record of the
run's settings that tells them apart from a run with other settings, and from a folder of the user's own."""

import json
import shutil
from pathlib import Path

from lablr.core.errors import LablrError


def recorded_run(marker: Path) -> dict | None:
    """The settings a training run recorded in its work folder (None: none yet). A file of that name that
    Lablr did not write is the user's, and so is the folder: training stops rather than write over it."""
    try:
        recorded = json.loads(marker.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        recorded = None
    if not (isinstance(recorded, dict) and {"seed", "images"} <= recorded.keys()):
        raise LablrError(f"{marker} is not the record of a Lablr training run, so {marker.parent} is not Lablr's "
                         "work folder: Lablr leaves it as it is. Move it away, or give --out another name.")
    return recorded


def start_afresh(checkpoints: Path, recorded: dict | None, run: dict):
    """Remove the checkpoints of a run with other settings; never a folder no Lablr run recorded."""
    if not checkpoints.exists() or recorded == run:
        return
    if recorded is None:
        raise LablrError(f"{checkpoints} holds no checkpoints of a Lablr training run (its folder has no run "
                         "record): Lablr leaves it as it is. Move it away, or give --out another name.")
    shutil.rmtree(checkpoints)
