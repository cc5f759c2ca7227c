"""A recipe: what a bundle is built from, and what a bundle records so it can be built again.

The parts with their settings (encoder, tag model, scorer, visualizer), which photos (the
source and the selection rules) and how the encoder was trained (epochs, seed). A bundle's
manifest holds every one of these facts already (`parts`, `data`, `training`), so a recipe is
read from a bundle (`lablr train --like NAME_OR_PATH`, scripts/build_bundle.py) or made from
a command's options; the pipeline (lablr.core.pipeline.stages) builds a bundle from it.
"""

from dataclasses import dataclass, field, replace

from lablr.core import defaults
from lablr.core.bundle import Manifest, PartSpec, read_manifest, resolve
from lablr.core.data.selection import Rules
from lablr.core.part_settings import PART_KINDS
from lablr.core.plugins import check_pairing


@dataclass(frozen=True)
class Recipe:
    parts: dict[str, PartSpec] = field(default_factory=lambda: {kind: PartSpec(name) for kind, name in
                                                                  defaults.DEFAULT_PARTS.items()})
    source: str | None = None  # None: every source in the catalog
    rules: Rules | None = None  # None: those the catalog records, else the source's defaults
    epochs: int = defaults.EPOCHS  # for an encoder that learns from the photos (the pixel VAE)
    seed: int = 0

    @classmethod
    def from_options(cls, *, encoder=None, encoder_settings=None, tag_model=None, tag_model_settings=None,
                     scorer=None, visualizer=None) -> "Recipe":
        """The default parts with what a command or a caller chose instead."""
        names = {**defaults.DEFAULT_PARTS, **{kind: name for kind, name in [
            ("encoder", encoder), ("tag_model", tag_model), ("scorer", scorer), ("visualizer", visualizer)] if name}}
        settings = {"encoder": encoder_settings or {}, "tag_model": tag_model_settings or {}}
        return cls(parts={kind: PartSpec(names[kind], dict(settings.get(kind, {}))) for kind in PART_KINDS})

    @classmethod
    def of_manifest(cls, manifest: Manifest, *, with_data: bool = True) -> "Recipe":
        """The recipe a bundle was built with; without data, its parts and training alone (for another catalog)."""
        training = manifest.training or {}
        data = manifest.data if with_data else None
        return cls(parts={kind: PartSpec(spec.name, dict(spec.settings)) for kind, spec in manifest.parts.items()},
                   source=data.source if data else None,
                   rules=Rules.from_dict(data.rules) if data and data.rules else None,
                   epochs=int(training.get("epochs", defaults.EPOCHS)), seed=int(training.get("seed", 0)))

    @classmethod
    def of_bundle(cls, model, *, with_data: bool = True) -> "Recipe":
        """The recipe of a bundle given by path or by the name of one that ships with Lablr."""
        return cls.of_manifest(read_manifest(resolve(model)), with_data=with_data)

    def names(self) -> dict[str, str]:
        return {kind: spec.name for kind, spec in self.parts.items()}

    def settings(self, kind) -> dict:
        return dict(self.parts[kind].settings)

    def check(self):
        """A scorer that does not suit the tag model fails now, not after hours of training."""
        check_pairing(self.parts["scorer"].name, self.parts["tag_model"].name)

    def but(self, **changes) -> "Recipe":
        """This recipe with the changes that are not None."""
        return replace(self, **{name: value for name, value in changes.items() if value is not None})

    def with_data(self, source, rules: Rules) -> "Recipe":
        return replace(self, source=source, rules=rules)

    def training_record(self) -> dict:
        """The manifest's `training` entry: how the encoder was trained."""
        return {"epochs": self.epochs, "seed": self.seed}
