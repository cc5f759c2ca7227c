"""`lablr serve`'s options and docs/server.md say the same thing."""

import re
from pathlib import Path

from lablr.core import defaults
from lablr.core.cli import cli

DOCS = Path(__file__).resolve().parent.parent / "docs" / "server.md"


def test_every_serve_option_is_documented_with_its_default():
    text = DOCS.read_text()
    table = {row.split("|")[1].strip(): row.split("|")[2].strip()
             for row in text.splitlines() if row.startswith("| `--")}
    usage = next(paragraph for paragraph in text.split("\n\n") if paragraph.startswith("`lablr serve ["))
    options = [p for p in cli.commands["serve"].params if p.opts[0].startswith("--")]
    for option in options:
        documented = [key for key in table if re.search(rf"`{re.escape(option.opts[0])}[` ]", key)]
        assert documented, f"{option.opts[0]} is not in the options table of docs/server.md"
        assert f"[{option.opts[0]}" in usage, f"the usage line lacks {option.opts[0]}"
    shown = {"--body-timeout": f"{defaults.BODY_TIMEOUT:g} s", "--keep-alive": f"{defaults.KEEP_ALIVE_TIMEOUT:g} s",
             "--limit-concurrency": str(defaults.LIMIT_CONCURRENCY), "--port": f"`{defaults.PORT}`"}
    for name, default in shown.items():
        assert table[f"`{name}`"] == default, (name, table[f"`{name}`"])
    assert table["`--model`, `-m`"] == f"`{defaults.DEFAULT_MODEL}`"
    assert f"with model {defaults.DEFAULT_MODEL} (" in text  # the ready line shown
    assert len(table) == len(options)
