"""Lablr's recommender core: plugin hooks, catalog, model bundles and the CLI.

Nothing here imports TensorFlow or Starlette at import time.
"""

from importlib.metadata import PackageNotFoundError, version

from lablr.core.hookspecs import hookimpl

try:
    __version__ = version("lablr")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["hookimpl", "__version__"]
