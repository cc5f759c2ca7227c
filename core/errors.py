"""Errors a user can act on. The CLI prints their message; the server maps them to JSON."""

import importlib.util
import json
import shlex
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

TRAIN_EXTRA_MODULES = ("tensorflow", "keras")  # what `pip install 'lablr[train]'` adds to a plain install


class LablrError(Exception):
    """Something the user can fix; the message says how."""

    status = 400
    code = "bad_request"

    def __init__(self, message, *, code=None, status=None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status


class ImageError(LablrError):
    """An image that cannot be used: not decodable, truncated, too large."""

    code = "bad_image"


class BundleError(LablrError):
    """A model bundle that is missing, damaged or of another format version."""

    code = "bad_model"
    status = 500


class UnknownPart(LablrError):
    """A plugin part asked for by a name nobody registered."""

    code = "unknown_plugin"
    status = 422


class IncompatibleParts(LablrError):
    """Two parts that cannot work together, such as a scorer that needs what the tag model lacks."""

    code = "incompatible_parts"
    status = 422


class MissingExtra(LablrError):
    """Something that needs packages a plain install leaves out (an extra, or a plugin's own)."""

    code = "missing_extra"
    status = 500


def require_train_extra(what: str):
    """Raise MissingExtra, in one line that says how to install it, unless TensorFlow and Keras are there.

    Training an encoder, converting a network to LiteRT and loading a bundle from before LiteRT need
    them; suggesting, serving, tagging and fitting tags with a shipped encoder never do. Call it
    before reading any photo, so the user learns it at once.
    """
    missing = [name for name in TRAIN_EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtra(f"{what} needs TensorFlow and Keras, which a plain install of Lablr leaves out: "
                           f"{install_command('train')}")


def install_command(extra: str) -> str:
    """`pip install 'lablr[EXTRA]'`, or the same with the checkout's path when Lablr was installed from one."""
    # A build left in the checkout (lablr.egg-info) may be found first: the installed one says where it came from.
    recorded = [found.read_text("direct_url.json") for found in metadata.distributions(name="lablr")]
    try:
        origin = json.loads(next(filter(None, recorded), "{}"))
    except ValueError:
        origin = {}
    origin = origin if isinstance(origin, dict) else {}
    url = origin.get("url", "")
    checkout = Path(unquote(urlparse(url).path)) if url.startswith("file://") else None
    if checkout is None or not (checkout / "pyproject.toml").is_file():
        return f"pip install {shlex.quote(f'lablr[{extra}]')}"
    editable = "-e " if (origin.get("dir_info") or {}).get("editable") else ""
    return f"pip install {editable}{shlex.quote(f'{checkout}[{extra}]')}"
