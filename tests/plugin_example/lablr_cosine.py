"""An example third-party Lablr plugin: the `cosine` scorer and the `lablr cosine-neighbours` command.

Tags whose centroid points the same way as the photo's latent come first. Install it with
`pip install tests/plugin_example`, then `lablr suggest --scorer cosine photo.jpg --model
openclipart-effnet`, or `lablr cosine-neighbours fruit --model openclipart-effnet` for the tags
that point most nearly the way `fruit` does.
"""

import click
import numpy as np

from lablr.core import defaults, hookimpl
from lablr.core.parts import Scores


@hookimpl
def register_scorers(register):
    register("cosine", CosineScorer)


@hookimpl
def register_commands(cli):
    @cli.command(name="cosine-neighbours")
    @click.argument("tag")
    @click.option("--model", "-m", default=defaults.DEFAULT_MODEL, show_default=True, help="A bundle path or name.")
    @click.option("-k", default=5, show_default=True, type=click.IntRange(1), help="How many tags.")
    def cosine_neighbours(tag, model, k):
        """The tags whose centroids point most nearly the way TAG's does."""
        from lablr.core.model import Model

        tag_model = Model.load(model).tag_model
        if tag not in tag_model.tags:
            raise click.BadParameter(f"the model has no tag {tag!r}.", param_hint="TAG")
        unit = unit_rows(tag_model.centroids())
        similarity = unit @ unit[tag_model.tags.index(tag)]
        for i in [i for i in np.argsort(-similarity, kind="stable") if tag_model.tags[i] != tag][:k]:
            click.echo(f"{tag_model.tags[i]}\t{similarity[i]:.3f}")


def unit_rows(matrix):
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True).clip(1e-12)


class CosineScorer:
    def score(self, latents, tag_model):
        return Scores(score=unit_rows(np.atleast_2d(latents)) @ unit_rows(tag_model.centroids()).T)
