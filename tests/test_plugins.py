"""The plugin system: default parts, lookups by name, and a real third-party plugin."""

import ast
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import LABLR

from lablr.core.errors import UnknownPart
from lablr.core.plugins import all_parts, get_part

EXAMPLE = Path(__file__).parent / "plugin_example"
CORE = Path(__file__).parent.parent / "core"


def test_default_parts_are_registered_by_name():
    names = {(p.kind, p.name): p.provider for p in all_parts()}
    for kind, name in [("encoder", "vae"), ("tag_model", "gaussian"), ("scorer", "mahalanobis"),
                       ("scorer", "loglik"), ("visualizer", "pca"), ("source", "openclipart"),
                       ("source", "folder"), ("source", "csv")]:
        assert names[(kind, name)].startswith("lablr.plugins.")


def test_the_core_imports_nothing_of_flickr_and_defines_no_flickr_command():
    for path in CORE.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [name for name in imported if "flickr" in name], path

    from lablr.core.cli import cli

    assert cli.commands["fetch"].callback.__module__ == "lablr.plugins.flickr.commands"
    core_commands = {name for name, command in cli.commands.items() if command.callback.__module__.startswith("lablr.core")}
    assert core_commands >= {"import", "prepare", "train", "fit", "evaluate", "suggest", "serve"}
    assert "fetch" not in core_commands


def test_the_core_catalog_creates_no_flickr_tables(tmp_path):
    from lablr.core.data.catalog import Catalog
    from lablr.plugins.flickr.tables import create_tables

    catalog = Catalog(tmp_path / "c.db")
    assert not {"downloads", "searches"} & set(catalog.db.table_names())
    create_tables(catalog.db)  # what `lablr fetch` does first
    assert {"downloads", "searches"} <= set(catalog.db.table_names())


def test_flickr_is_not_a_source_that_import_cannot_read():
    assert "flickr" not in {p.name for p in all_parts() if p.kind == "source"}


def test_lablr_plugins_shows_each_source_with_its_description():
    from click.testing import CliRunner

    from lablr.core.cli import cli
    from lablr.plugins.openclipart import OpenClipartSource

    lines = CliRunner().invoke(cli, ["plugins"]).output.splitlines()
    (openclipart,) = [line for line in lines if line.split()[:2] == ["source", "openclipart"]]
    assert "lablr.plugins.openclipart" in openclipart and openclipart.endswith(OpenClipartSource.description)


def test_unknown_part_names_the_registered_ones():
    with pytest.raises(UnknownPart) as error:
        get_part("scorer", "nope")
    assert "mahalanobis" in error.value.message and "loglik" in error.value.message


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """The example plugin pip-installed (wheel built from its pyproject) into its own folder."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True)
    assert list(target.glob("lablr_cosine-*.dist-info"))
    return target


def run_lablr(args, site, allow):
    env = {**os.environ, "PYTHONPATH": str(site), "LABLR_LOAD_PLUGINS": allow}
    return subprocess.run(LABLR + args, env=env, capture_output=True, text=True, timeout=300)


def test_installed_plugin_is_listed_when_allowed_and_not_otherwise(installed_example):
    listed = run_lablr(["plugins", "--json"], installed_example, "cosine")
    assert {"kind": "scorer", "name": "cosine", "plugin": "cosine"} in json.loads(listed.stdout)
    hidden = run_lablr(["plugins", "--json"], installed_example, "")
    assert "cosine" not in {p["name"] for p in json.loads(hidden.stdout)}


def test_fetch_is_a_command_the_flickr_plugin_adds_through_the_hook():
    listed = subprocess.run(LABLR + ["--help"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "\n  fetch " in listed.stdout
    without_flickr = ("from lablr.core import plugins; plugins.load_plugins(); "
                      "plugins.pm.unregister(name='lablr.plugins.flickr'); "
                      "from lablr.core.cli import main; main()")
    unlisted = subprocess.run([sys.executable, "-c", without_flickr, "--help"], capture_output=True, text=True,
                              timeout=120)
    assert unlisted.returncode == 0 and "\n  fetch " not in unlisted.stdout and "\n  train " in unlisted.stdout
    missing = subprocess.run([sys.executable, "-c", without_flickr, "fetch"], capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode == 2 and "No such command 'fetch'" in missing.stderr


def test_an_installed_plugin_adds_a_command(installed_example, tiny_bundle):
    assert "cosine-neighbours" in run_lablr(["--help"], installed_example, "cosine").stdout
    assert "cosine-neighbours" not in run_lablr(["--help"], installed_example, "").stdout

    done = run_lablr(["cosine-neighbours", "red", "--model", str(tiny_bundle), "-k", "3"], installed_example, "cosine")
    assert done.returncode == 0, done.stderr
    listed = [line.split("\t") for line in done.stdout.splitlines()]

    from lablr.core.model import Model

    model = Model.load(tiny_bundle)
    centroids = model.tag_model.centroids()
    unit = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    similarity = unit @ unit[model.tag_model.tags.index("red")]
    expected = [model.tag_model.tags[i] for i in np.argsort(-similarity) if model.tag_model.tags[i] != "red"][:3]
    assert [tag for tag, _ in listed] == expected
    assert [float(s) for _, s in listed] == sorted((float(s) for _, s in listed), reverse=True)

    unknown = run_lablr(["cosine-neighbours", "no-such-tag", "--model", str(tiny_bundle)], installed_example, "cosine")
    assert unknown.returncode == 2 and "no tag 'no-such-tag'" in unknown.stderr


def test_installed_scorer_is_chosen_by_name_and_ranks(installed_example, tiny_bundle, tmp_path):
    from conftest import draw_shape

    photo = tmp_path / "red-square.png"
    draw_shape("red", "square", seed=7).save(photo)
    result = run_lablr(["suggest", str(photo), "--model", str(tiny_bundle), "--scorer", "cosine", "--k", "6",
                        "--json"], installed_example, "cosine")
    assert result.returncode == 0, result.stderr
    suggestions = json.loads(result.stdout)["results"][0]["suggestions"]
    scores = [s["score"] for s in suggestions]
    assert len(suggestions) == 6 and scores == sorted(scores, reverse=True)
    assert all(-1 <= s <= 1 for s in scores) and "distance" not in suggestions[0]

    # the same ranking, computed here from the plugin's definition and the bundle's centroids
    from lablr.core.data import decoding as images
    from lablr.core.model import Model

    model = Model.load(tiny_bundle)
    z = model.encode(images.load(photo, model.image_size)[None])[0]
    centroids = model.tag_model.centroids()
    cosine = centroids @ z / (np.linalg.norm(centroids, axis=1) * np.linalg.norm(z))
    assert [s["tag"] for s in suggestions] == [model.tag_model.tags[i] for i in np.argsort(-cosine)]


def test_the_server_uses_the_installed_scorer_by_name(installed_example, tiny_bundle):
    import httpx
    from conftest import draw_shape
    from lablr_server import running_server

    photo = io.BytesIO()
    draw_shape("blue", "triangle", seed=3).save(photo, "PNG")
    env = {"PYTHONPATH": str(installed_example), "LABLR_LOAD_PLUGINS": "cosine"}
    with running_server(tiny_bundle, env=env) as (base, _):
        plugins = httpx.get(base + "/api/v1/plugins").json()["plugins"]
        assert {"kind": "scorer", "name": "cosine", "plugin": "cosine"} in plugins
        files = {"image": ("p.png", photo.getvalue(), "image/png")}
        cosine = httpx.post(base + "/api/v1/suggest?scorer=cosine&k=6", files=files).json()
        default = httpx.post(base + "/api/v1/suggest?k=6", files=files).json()
    scores = [s["score"] for s in cosine["results"][0]["suggestions"]]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    assert "distance" in default["results"][0]["suggestions"][0]
    assert "distance" not in cosine["results"][0]["suggestions"][0]
