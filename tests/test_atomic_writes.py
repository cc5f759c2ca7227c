"""Every write-beside-then-rename goes through core/files.py's helpers (atomic_file, write_atomically,
atomic_directory), which flush, fsync, rename and fsync the directory."""

import re
from pathlib import Path

import pytest

from lablr.core.files import atomic_directory, write_atomically

ROOT = Path(__file__).parent.parent
RENAME = re.compile(r"os\.replace\(|\.rename\(|\w*(partial|tmp|temp)\w*\.replace\(")
# Being rewritten in their own issues (#20, #22): they move onto the helpers there.
NOT_YET = {ROOT / "core" / "photometa" / "tagging.py", ROOT / "core" / "personal" / "layer.py"}


def test_no_module_renames_files_into_place_itself():
    for folder in ("core", "plugins", "server", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            if path != ROOT / "core" / "files.py" and path not in NOT_YET:
                found = RENAME.search(path.read_text())
                assert not found, f"{path.relative_to(ROOT)} renames a file into place itself: {found.group(0)}"


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path):
    target = tmp_path / "settings.json"
    write_atomically(target, "old")
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "bundle", "a test folder", lambda directory: True) as partial:
        (partial / "a").write_text("half")
        raise RuntimeError("killed")
    write_atomically(target, "new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]
