"""The plugin documentation cannot drift from the code, as in datasette's own docs tests.

Every hook in core/hookspecs.py has a section in docs/plugins.md with its exact arguments, and
the example plugin shown there is, byte for byte, the package tests/test_plugins.py installs.
"""

import inspect
import re
from pathlib import Path

import pytest

from lablr.core import hookspecs

ROOT = Path(__file__).parent.parent
PLUGINS_DOC = (ROOT / "docs" / "plugins.md").read_text()
EXAMPLE = Path(__file__).parent / "plugin_example"


def hooks():
    return {name: function for name, function in vars(hookspecs).items()
            if inspect.isfunction(function) and hasattr(function, "lablr_spec")}


def documented_hooks():
    return dict(re.findall(r"^### (\w+)\((.*)\)$", PLUGINS_DOC, re.MULTILINE))


def test_the_hook_list_is_found():
    assert {"register_encoders", "register_scorers", "register_sources", "register_commands"} <= set(hooks())


@pytest.mark.parametrize("name", sorted(hooks()))
def test_every_hook_is_documented_with_its_arguments(name):
    documented = documented_hooks()
    assert name in documented, f"docs/plugins.md has no '### {name}(...)' section"
    arguments = ", ".join(inspect.signature(hooks()[name]).parameters)
    assert documented[name] == arguments


def test_no_hook_is_documented_that_does_not_exist():
    assert set(documented_hooks()) <= set(hooks())


def code_blocks(language):
    return re.findall(rf"^```{language}\n(.*?)^```$", PLUGINS_DOC, re.MULTILINE | re.DOTALL)


def test_the_example_plugin_in_the_docs_is_the_tested_package():
    assert (EXAMPLE / "lablr_cosine.py").read_text() in code_blocks("python")
    assert (EXAMPLE / "pyproject.toml").read_text() in code_blocks("toml")
