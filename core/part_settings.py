"""A bundle's part settings, checked (names, types, ranges) before any plugin is built from them.

A bundle can come from anyone, and its settings go straight to plugin constructors: a `dpi` of
a million would make the first picture allocate without bound. Each part declares what it takes
as a class attribute, `SETTINGS = {"dpi": Setting(int, 20, 200), ...}`. For a third-party part
that declares nothing, the names its constructor takes are allowed, with plain JSON values.
"""

import inspect
import math
from dataclasses import dataclass

from lablr.core.errors import BundleError

PART_KINDS = ("encoder", "tag_model", "scorer", "visualizer")
SCALARS = (bool, int, float, str, type(None))
MAX_TEXT = 200


@dataclass(frozen=True)
class Setting:
    """One setting: its type (int, float, str or bool), and an inclusive range or a set of choices."""

    type: type
    low: float | None = None
    high: float | None = None
    choices: tuple = ()

    def problem(self, value) -> str | None:
        """Why `value` is not acceptable, or None."""
        if not _is_a(value, self.type):
            return f"not a{'n' if self.type is int else ''} {self.type.__name__}"
        if self.choices and value not in self.choices:
            return "not one of " + ", ".join(map(repr, self.choices))
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            low, high = ("" if bound is None else f"{bound:g}" for bound in (self.low, self.high))
            return f"outside {low}..{high}"
        return None


def _is_a(value, kind) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str) and len(value) <= MAX_TEXT
    return isinstance(value, kind)


def check_part_kinds(names: dict):
    """One part of each kind, each named by a string ({kind: name}, as the manifest gives them)."""
    if sorted(names) != sorted(PART_KINDS):
        raise BundleError(f"The model's manifest must name one part for each of {', '.join(PART_KINDS)}; it names "
                          f"{', '.join(map(_shown, names)) or 'none'}.")
    for kind, name in names.items():
        if not isinstance(name, str):
            raise BundleError(f"The model's manifest names its {kind} {_shown(name)}, which is not a name.")


def check_settings(kind: str, name: str, factory, settings: dict) -> dict:
    """The settings, unchanged, once each is one the part takes, of the right type and in range."""
    declared = getattr(factory, "SETTINGS", None)
    allowed = declared if declared is not None else _constructor_settings(factory)  # None: any name
    for key, value in settings.items():
        if allowed is not None and key not in allowed:
            takes = ", ".join(sorted(allowed)) or "none"
            raise BundleError(f"The model's {kind} {name!r} has no setting {_shown(key)} (it takes: {takes}).")
        setting = (allowed or {}).get(key)
        problem = setting.problem(value) if setting else _plain_value_problem(value)
        if problem:
            raise BundleError(f"The model's {kind} {name!r} setting {key} = {_shown(value)} is {problem}; "
                              "the bundle is damaged or was made to do harm.")
    return settings


def _plain_value_problem(value) -> str | None:
    return None if isinstance(value, SCALARS) and _is_a(value, type(value)) else "not a plain value"


def _constructor_settings(factory) -> dict | None:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return {}
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return {p.name: None for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
