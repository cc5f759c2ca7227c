"""Lablr installed as a wheel, not editable, imports every one of its modules.

An editable install finds modules in the source tree whether pyproject.toml lists their
package or not; a wheel holds only what is listed. The wheel is built and installed into a
fresh virtual environment whose only view of the test environment is a .pth line (a plain
path: the editable install's own .pth and finder there are not run), so its dependencies
import and Lablr comes from the wheel alone. Nothing is downloaded.
"""

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).parent.parent
SOURCES = ("pyproject.toml", "README.md", "core", "plugins", "server")

IMPORT_EVERY_MODULE = """
import importlib, json, pkgutil, sys
names = []
for package in ("lablr.core", "lablr.plugins", "lablr.server"):
    root = importlib.import_module(package)
    names += [package] + [m.name for m in pkgutil.walk_packages(root.__path__, package + ".")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "files": sorted({sys.modules[n].__file__ for n in names}),
                  "tensorflow": "tensorflow" in sys.modules or "keras" in sys.modules}))
"""


def source_modules() -> set[str]:
    packages = {"core": "lablr.core", "plugins": "lablr.plugins", "server": "lablr.server"}
    found = set()
    for folder, package in packages.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            found.add(".".join([package, *(parts[:-1] if parts[-1] == "__init__" else parts)]))
    return found


def test_a_wheel_install_imports_every_module_without_tensorflow(tmp_path):
    source = tmp_path / "source"  # a copy: building in the tree would leave build/ there
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--no-index", str(source)], check=False, capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]

    run = subprocess.run([python, "-c", IMPORT_EVERY_MODULE], check=False, capture_output=True, text=True, timeout=600,
                         cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(found["modules"]) == source_modules()  # every module of the source tree is in the wheel
    assert all(file.startswith(str(site)) for file in found["files"]), found["files"][:3]
    assert not found["tensorflow"]  # training modules import TensorFlow inside their functions
