"""`flickr`: photos found on Flickr by tag, with all their tags, for training a model.

The plugin adds `lablr fetch` (commands.py), which searches Flickr (api.py) and downloads the
photos into the catalog, resumably (fetcher.py, downloads.py, tables.py), at the smallest size
that covers the model's input (sizes.py); and `lablr build flickr` (building.py), which goes on
to a model in one command. Photos it records
are the catalog's source "flickr"; `lablr prepare`, `train` and `fit` choose them with
Flickr's selection rules: one owner's photos on one side of the split, non-visual tags dropped.
"""

from lablr.core import hookimpl

from . import defaults
from .commands import build_flickr_command, build_group, fetch_command


@hookimpl
def register_commands(cli):
    cli.add_command(fetch_command)
    build = cli.commands.get("build")  # another plugin's `lablr build` group takes `flickr` too
    if build is None:
        build = build_group
        cli.add_command(build)
    build.add_command(build_flickr_command)


@hookimpl
def selection_rules(source):
    if source == defaults.SOURCE:
        return dict(defaults.SELECTION_RULES)
