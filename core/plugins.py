"""The plugin manager: default plugins, third-party plugins, and parts looked up by name."""

import importlib
import os
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

import pluggy

from lablr.core import hookspecs
from lablr.core.errors import IncompatibleParts, UnknownPart

DEFAULT_PLUGINS = (
    "lablr.plugins.vae",
    "lablr.plugins.effnet",
    "lablr.plugins.gaussian",
    "lablr.plugins.mahalanobis",
    "lablr.plugins.loglik",
    "lablr.plugins.pca",
    "lablr.plugins.openclipart",
    "lablr.plugins.files",
    "lablr.plugins.flickr",
)

# Unset: every installed plugin loads. Set: only the comma-separated entry-point names listed
# ("" loads none), so that a test run or a server does not pick up whatever happens to be installed.
ALLOW_ENV = "LABLR_LOAD_PLUGINS"

# kind -> the hook that registers parts of that kind
KINDS = {
    "encoder": "register_encoders",
    "tag_model": "register_tag_models",
    "scorer": "register_scorers",
    "visualizer": "register_visualizers",
    "source": "register_sources",
}

pm = pluggy.PluginManager("lablr")
pm.add_hookspecs(hookspecs)


@dataclass(frozen=True)
class Part:
    kind: str
    name: str  # what bundles, the CLI and the API call it
    factory: type
    provider: str  # the plugin that registered it: a module's path, or a third-party entry point's name

    def __call__(self, *args, **kwargs):
        return self.factory(*args, **kwargs)

    def as_dict(self) -> dict:
        """The part as `lablr plugins --json` and /api/v1/plugins list it."""
        return {"kind": self.kind, "name": self.name, "plugin": self.provider}

    @property
    def description(self) -> str:
        return getattr(self.factory, "description", "")


@cache
def load_plugins():
    """Register the built-in plugins, then the allowed third-party ones (once per process)."""
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    allowed = os.environ.get(ALLOW_ENV)
    if allowed is None:
        pm.load_setuptools_entrypoints("lablr")
        return
    wanted = {name.strip() for name in allowed.split(",") if name.strip()}
    for entry_point in entry_points(group="lablr"):
        if entry_point.name in wanted and not pm.get_plugin(entry_point.name):
            pm.register(entry_point.load(), name=entry_point.name)


@cache
def _registry():
    load_plugins()
    registry = {kind: {} for kind in KINDS}
    for kind, hook_name in KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():

            def register(name, factory, _kind=kind, _plugin=impl.plugin_name):
                registry[_kind][name] = Part(_kind, name, factory, _plugin)

            impl.function(register=register)
    return registry


def parts(kind):
    """Every registered part of one kind, by name."""
    return dict(_registry()[kind])


def get_part(kind, name):
    """The part of this kind registered under this name, or a clear error naming the others."""
    found = _registry()[kind].get(name)
    if found is None:
        known = ", ".join(sorted(_registry()[kind])) or "none"
        raise UnknownPart(f"No {kind.replace('_', ' ')} named {name!r}. Registered: {known}.")
    return found


def all_parts():
    """Every registered part, grouped by kind, for `lablr plugins` and the API."""
    return [part for kind in KINDS for part in sorted(parts(kind).values(), key=lambda p: p.name)]


def pairing_problem(scorer: str, tag_model: str) -> str | None:
    """Why the scorer cannot work with the tag model (it needs something the tag model lacks), or None."""
    scorer_part, tag_model_part = get_part("scorer", scorer), get_part("tag_model", tag_model)
    missing = [name for name in getattr(scorer_part.factory, "requires", ())
               if not callable(getattr(tag_model_part.factory, name, None))]
    if not missing:
        return None
    needs = ", ".join(f"{name}()" for name in missing)
    return (f"The scorer {scorer!r} needs a tag model with {needs}, which the tag model {tag_model!r} does not "
            "have. Choose another scorer or tag model.")


def check_pairing(scorer: str, tag_model: str):
    """Refuse, in one line, a scorer that needs something the tag model does not have."""
    problem = pairing_problem(scorer, tag_model)
    if problem:
        raise IncompatibleParts(problem)
