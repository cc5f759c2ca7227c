"""A bundle's part settings are checked (names, types, ranges) before any plugin is built from them."""

import json
import math
import shutil
import subprocess
import sys

import pytest

from lablr.core import bundle
from lablr.core.errors import BundleError
from lablr.core.model import Model


@pytest.fixture
def crafted(tiny_bundle, tmp_path):
    """A copy of the tiny bundle whose manifest a test rewrites."""
    path = tmp_path / "crafted"
    shutil.copytree(tiny_bundle, path)

    def rewrite(change):
        manifest = json.loads((path / "manifest.json").read_text())
        change(manifest)
        (path / "manifest.json").write_text(json.dumps(manifest))  # NaN and Infinity as Python's json writes them
        return path

    return rewrite


def setting(kind, name, value):
    def change(manifest):
        manifest["parts"][kind].setdefault("settings", {})[name] = value
    return change


CRAFTED = {
    "a huge dpi": (setting("visualizer", "dpi", 10**9), "outside"),
    "a huge width": (setting("visualizer", "width", 1e308), "outside"),
    "an infinite height": (setting("visualizer", "height", math.inf), "not a float"),
    "a NaN width": (setting("visualizer", "width", math.nan), "not a float"),
    "a dpi as text": (setting("visualizer", "dpi", "100"), "not an int"),
    "a dpi of true": (setting("visualizer", "dpi", True), "not an int"),
    "a fractional image size": (setting("encoder", "image_size", 16.5), "not an int"),
    "a negative latent size": (setting("encoder", "latent_dim", -4), "outside"),
    "a huge encoder": (setting("encoder", "filters", 10**6), "outside"),
    "an unknown shrinkage": (setting("tag_model", "shrinkage", "rm -rf"), "not one of"),
    "an unknown setting": (setting("visualizer", "__class__", "x"), "has no setting"),
    "a nested value": (setting("encoder", "beta", {"a": [1]}), "not a float"),
    "settings to a scorer that takes none": (setting("scorer", "power", 2), "has no setting"),
    "settings as pairs": (lambda m: m["parts"]["visualizer"].update(settings=[["dpi", 10**9]]), "outside"),
    "settings as a list": (lambda m: m["parts"]["visualizer"].update(settings=[1, 2]), "damaged"),
    "a part name that is a number": (lambda m: m["parts"]["encoder"].update(name=5), "not a name"),
    "parts as a list": (lambda m: m.update(parts=[]), "damaged"),
    "a missing part": (lambda m: m["parts"].pop("visualizer"), "must name one part"),
    "an extra part": (lambda m: m["parts"].update(extra={"name": "pca"}), "must name one part"),
}


@pytest.mark.parametrize("kind", CRAFTED)
def test_crafted_settings_are_refused_before_any_part_is_built(crafted, kind):
    change, says = CRAFTED[kind]
    path = crafted(change)
    with pytest.raises(BundleError) as error:
        bundle.check_parts(path)
    assert says in error.value.message
    with pytest.raises(BundleError):
        Model.load(path)


def test_the_shipped_and_trained_bundles_pass(tiny_bundle):
    for name in bundle.bundled_names():
        bundle.check_parts(bundle.resolve(name))
    assert Model.load(tiny_bundle).summary()["tags"] > 0


@pytest.mark.parametrize("kind", ["a huge dpi", "a NaN width", "settings as a list"])
def test_serve_with_a_crafted_bundle_fails_in_one_line(crafted, kind):
    path = crafted(CRAFTED[kind][0])
    done = subprocess.run([sys.executable, "-m", "lablr.core.cli", "serve", "--model", str(path), "--port", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and CRAFTED[kind][1] in errors[0]
