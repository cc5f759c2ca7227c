"""The hooks a Lablr plugin can implement (each is documented in docs/plugins.md).

Each ``register_*`` hook for a kind of part receives a ``register`` callable. A plugin calls
it once per part it provides::

    from lablr.core import hookimpl

    @hookimpl
    def register_scorers(register):
        register("cosine", CosineScorer)

The name is what model bundles, the CLI and the HTTP API use to pick the part.
"""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("lablr")
hookimpl = HookimplMarker("lablr")


@hookspec
def register_encoders(register):
    """Register encoder classes: images -> latent vectors (see lablr.core.parts.Encoder)."""


@hookspec
def register_tag_models(register):
    """Register tag model classes: a statistical model of each tag in latent space."""


@hookspec
def register_scorers(register):
    """Register scorer classes: (latents, tag model) -> a score for every tag."""


@hookspec
def register_visualizers(register):
    """Register visualizer classes: draw where a photo falls among the tags."""


@hookspec
def register_sources(register):
    """Register data sources: import tagged images into a catalog."""


@hookspec(firstresult=True)
def selection_rules(source):
    """The selection rules for photos a catalog records under `source`: a dict of the
    lablr.core.data.selection.Rules fields to change from Lablr's defaults, or None to keep them."""


@hookspec
def register_commands(cli):
    """Add commands to the `lablr` command line: `cli` is its click group (``@cli.command()``)."""
