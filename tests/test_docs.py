"""The documentation cannot drift from the code, as in datasette's own docs tests.

Every hook in core/hookspecs.py has a section in docs/plugins.md with its exact arguments, and
the example plugin shown there is, byte for byte, the package tests/test_plugins.py installs.
Every `lablr ...` command the README and docs/*.md show is a command, with options it has; so is
every scripts/NAME.py they show, and every LABLR_ or FLICKR_ environment variable they name is read.
"""

import inspect
import re
import shlex
from pathlib import Path

import click
import pytest

from lablr.core import hookspecs
from lablr.core.cli import cli

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


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLE_COMMANDS = {"cosine-neighbours"}  # added by tests/plugin_example, which docs/plugins.md shows
COMMAND_LINE = re.compile(r"(?:^ {4}|^\$ |`|&& )lablr ([^`\n#]*)", re.MULTILINE)


def documented_command_lines():
    """(file, the words after `lablr`) of every command shown in a code block, after `$ `, or in backquotes."""
    for path in DOCS:
        for match in COMMAND_LINE.finditer(path.read_text()):
            text = match.group(1).replace("...", " ").replace("|", " ")
            try:
                words = shlex.split(text)
            except ValueError:  # an unbalanced quote in prose
                words = text.split()
            if words and words[0] not in EXAMPLE_COMMANDS:
                yield path.relative_to(ROOT), words


def command_of(words) -> tuple[click.Command, list[str]]:
    """The (sub)command the words name, and the words left for its options."""
    command = cli
    while isinstance(command, click.Group) and words and words[0] in command.commands:
        command, words = command.commands[words[0]], words[1:]
    return command, words


def test_commands_are_found_in_the_docs():
    assert sum(1 for _ in documented_command_lines()) > 50


def test_every_documented_command_and_option_exists():
    wrong = []
    for path, words in documented_command_lines():
        command, rest = command_of(words)
        if command is cli and words[0] not in ("--help", "--version"):
            wrong.append(f"{path}: lablr {' '.join(words)}: no command {words[0]!r}")
            continue
        options = {"--help"} | {name for p in command.params for name in (*p.opts, *p.secondary_opts)}
        wrong += [f"{path}: lablr {' '.join(words)}: no option {word}" for word in rest
                  if word.startswith("-") and not re.fullmatch(r"-\d.*", word) and word.split("=")[0] not in options]
    assert not wrong, "\n".join(wrong)


SCRIPT_LINE = re.compile(r"scripts/([\w/]+\.py)([^`\n#]*)")


def documented_script_lines():
    """(file, script, the words after it) of every scripts/NAME.py the docs name, up to a comment or backquote."""
    for path in DOCS:
        for match in SCRIPT_LINE.finditer(path.read_text()):
            yield path.relative_to(ROOT), match.group(1), match.group(2)


def test_every_documented_script_and_option_exists():
    shown = list(documented_script_lines())
    assert len(shown) > 20
    wrong = []
    for path, name, rest in shown:
        script = ROOT / "scripts" / name
        if not script.is_file():
            wrong.append(f"{path}: no scripts/{name}")
            continue
        source = script.read_text()
        wrong += [f"{path}: scripts/{name} has no option {option}"
                  for option in re.findall(r"(?<![\w-])--[\w-]+", rest) if f'"{option}"' not in source]
    assert not wrong, "\n".join(wrong)


def test_every_documented_environment_variable_is_read_somewhere():
    code = "".join(path.read_text() for folder in ("core", "plugins", "server", "scripts", "tests")
                   for path in (ROOT / folder).rglob("*.py"))
    named = {name for path in DOCS for name in re.findall(r"\b(?:LABLR|FLICKR)_[A-Z0-9_]+\b", path.read_text())}
    assert named, "no environment variable found in the docs"
    assert not sorted(name for name in named if name not in code)
