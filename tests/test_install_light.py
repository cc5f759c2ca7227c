"""A plain `pip install .` serves, suggests and tags without TensorFlow; training says what to install.

TensorFlow and Keras come with the `train` extra. The quick tests here hide them from this
process (an import of either fails, as it does in a plain install); the slow one makes a fresh
virtual environment, installs the checkout without extras, and uses Lablr in it as a
photographer would.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import TINY_RULE_OPTIONS
from lablr_server import running_server

from lablr.core import bundle, defaults
from lablr.core.cli import cli
from lablr.core.errors import TRAIN_EXTRA_MODULES, install_command

ROOT = Path(__file__).parent.parent
SHIPPED_EFFNET = bundle.bundled_root() / "photos"  # the one shipped EfficientNet-Lite0 network


def assert_says_install_the_train_extra(output: str):
    """One line, naming the pip command with the `train` extra; no traceback."""
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ") and "needs TensorFlow and Keras" in lines[0]
    assert "pip install " in lines[0] and lines[0].endswith("[train]'")
    assert "Traceback" not in output


@pytest.fixture
def without_the_train_extra(monkeypatch, tmp_path):
    """This process as a plain install sees it: TensorFlow and Keras cannot be imported, and no
    network converted by an earlier run waits in the cache."""
    from lablr.plugins import effnet

    for name in TRAIN_EXTRA_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # `import tensorflow` now raises ImportError
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    effnet.lite_network.cache_clear()
    yield
    effnet.lite_network.cache_clear()


@pytest.fixture
def shapes_catalog(shapes_csv, tmp_path):
    from lablr.core.data.importing import import_source

    catalog = tmp_path / "shapes.db"
    import_source("csv", str(shapes_csv), catalog, progress=False)
    return catalog


def test_training_the_vae_says_in_one_line_what_to_install_before_reading_the_catalog(
        without_the_train_extra, tmp_path):
    catalog = tmp_path / "photos.db"
    result = CliRunner().invoke(cli, ["train", "--encoder", "vae", "--catalog", str(catalog),
                                      "--out", str(tmp_path / "model")])
    assert result.exit_code == 1
    assert_says_install_the_train_extra(result.output)
    assert "Training the vae encoder" in result.output
    assert not catalog.exists() and not (tmp_path / "model").exists() and not (tmp_path / "model.work").exists()


def test_a_flickr_build_on_the_vae_says_what_to_install_before_fetching(without_the_train_extra, tmp_path):
    out = tmp_path / "flickr-vae"
    result = CliRunner().invoke(cli, ["build", "flickr", "--model", "openclipart-vae", "--tags", "cat",
                                      "--out", str(out), "--quiet"])
    assert result.exit_code == 1
    assert_says_install_the_train_extra(result.output)
    assert not out.exists() and not (tmp_path / "flickr-vae.db").exists()  # nothing fetched, no catalog made


def test_effnet_fits_on_the_shipped_network_without_tensorflow(without_the_train_extra, shapes_csv, shapes_catalog,
                                                               tmp_path):
    out = tmp_path / "effnet-model"
    result = CliRunner().invoke(cli, ["train", "--encoder", "effnet-lite0", "--latent-dim", "4", "--scorer", "loglik",
                                      "--catalog", str(shapes_catalog), "--out", str(out), *TINY_RULE_OPTIONS])
    assert result.exit_code == 0, result.output
    # The network is the shipped bundle's own conversion, byte for byte: nothing was converted.
    assert (out / "effnet.tflite").read_bytes() == (SHIPPED_EFFNET / "effnet.tflite").read_bytes()
    assert not (tmp_path / "empty-cache").exists()
    suggested = CliRunner().invoke(cli, ["suggest", "--model", str(out), "--json",
                                         str(shapes_csv.parent / "images" / "red-circle-00.png")])
    assert suggested.exit_code == 0, suggested.output


def test_effnet_at_a_size_no_shipped_model_has_needs_the_extra(without_the_train_extra, tmp_path):
    catalog = tmp_path / "photos.db"
    result = CliRunner().invoke(cli, ["train", "--encoder", "effnet-lite0", "--image-size", "96",
                                      "--catalog", str(catalog), "--out", str(tmp_path / "model")])
    assert result.exit_code == 1
    assert_says_install_the_train_extra(result.output)
    assert not catalog.exists()


def test_a_model_from_before_litert_needs_the_extra(without_the_train_extra, tmp_path):
    photo = tmp_path / "photo.png"
    from conftest import draw_shape

    draw_shape("red", "circle").save(photo)
    result = CliRunner().invoke(cli, ["suggest", "--model", str(ROOT / "tests/fixtures/bundle-format-1"),
                                      str(photo)])
    assert result.exit_code == 1
    assert_says_install_the_train_extra(result.output)


def test_the_install_command_names_the_checkout_lablr_was_installed_from():
    command = install_command("train")
    assert command in ("pip install 'lablr[train]'", f"pip install '{ROOT}[train]'", f"pip install -e '{ROOT}[train]'")


# -- a fresh environment with a plain install ----------------------------------------------------------


def checkout_files(destination: Path) -> Path:
    """The checkout's files as a fresh clone has them, with uncommitted changes: no .venv, no builds."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: what .gitignore would leave out
        shutil.copytree(ROOT, destination, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "*.db"))
        return destination
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


@pytest.fixture(scope="module")
def plain_install(tmp_path_factory):
    """A new virtual environment with `pip install CHECKOUT`, no extras (PyPI through pip's cache)."""
    root = tmp_path_factory.mktemp("plain-install")
    source = checkout_files(root / "lablr")
    # No pip of its own to start with (seconds saved): this one installs into it, as `env/bin/pip install` would.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "env")], check=True)
    python = root / "env" / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                                "--disable-pip-version-check", str(source)],
                               check=False, capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


def lablr_in(python: Path, *args, cwd, env):
    return subprocess.run([str(python.parent / "lablr"), *args], cwd=cwd, env={**os.environ, **env},
                          check=False, capture_output=True, text=True, timeout=300)


@pytest.fixture
def user_env(tmp_path):
    """A user's environment: their own cache and data directories, nothing of this test run's."""
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_DATA_HOME": str(tmp_path / "data")}


@pytest.fixture
def real_photos(tmp_path):
    """scikit-image's photo of a cup of coffee (PNG) and scikit-learn's of a temple (JPEG)."""
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image is in the test extra")
    sklearn_datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn is in the test extra")
    coffee = shutil.copy(Path(skimage_data.__file__).parent / "coffee.png", tmp_path / "coffee.png")
    temple = shutil.copy(Path(sklearn_datasets.__file__).parent / "images" / "china.jpg", tmp_path / "temple.jpg")
    return Path(coffee), Path(temple)


@pytest.mark.slow
def test_a_plain_install_serves_suggests_and_tags_without_tensorflow(plain_install, user_env, real_photos, tmp_path):
    python = plain_install
    coffee, temple = real_photos
    for name in TRAIN_EXTRA_MODULES:
        missing = subprocess.run([str(python), "-c", f"import {name}"], check=False, capture_output=True, text=True)
        assert missing.returncode == 1 and "ModuleNotFoundError" in missing.stderr

    with running_server(defaults.DEFAULT_MODEL, python=python, env=user_env) as (base, _lines):
        page = httpx.get(base + "/", timeout=30)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        with open(coffee, "rb") as photo:
            answer = httpx.post(base + "/api/v1/suggest?k=5", files={"image": ("coffee.png", photo, "image/png")},
                                timeout=60)
        assert answer.status_code == 200, answer.text
        served = answer.json()["results"][0]["suggestions"]
        assert len(served) == 5 and all(0 <= s["score"] <= 1 for s in served)

    suggested = lablr_in(python, "suggest", str(coffee), "--k", "5", "--json", cwd=tmp_path, env=user_env)
    assert suggested.returncode == 0, suggested.stderr
    assert [s["tag"] for s in json.loads(suggested.stdout)["results"][0]["suggestions"]] == [s["tag"] for s in served]

    before = temple.read_bytes()
    tagged = lablr_in(python, "tag", str(temple), "--k", "3", "--json", "--quiet", cwd=tmp_path, env=user_env)
    assert tagged.returncode == 0, tagged.stderr
    photo = json.loads(tagged.stdout)["photos"][0]
    assert photo["status"] == "tagged" and len(photo["added"]) == 3
    assert temple.read_bytes() != before

    catalog = tmp_path / "photos.db"
    training = lablr_in(python, "train", "--encoder", "vae", "--catalog", str(catalog), "--out", str(tmp_path / "m"),
                        cwd=tmp_path, env=user_env)
    assert training.returncode == 1 and training.stdout == ""
    assert_says_install_the_train_extra(training.stderr)
    assert not catalog.exists()
