"""The photo vocabulary: the default model's tags for real photographs, and what a user teaches on top.

The photos ship with scikit-image and scikit-learn (test dependencies). The default bundle knows
its tags from EfficientNet-Lite0's ImageNet classifier, mapped through WordNet and
scripts/vocabulary/rules.toml; a user's own tags (POST /api/v1/feedback) join the same ranking.
"""

import errno
import io
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import tag_statistics
from lablr_server import running_server
from PIL import Image

from lablr.core import defaults
from lablr.core.bundle import bundled_root
from lablr.core.data import decoding
from lablr.core.model import Model
from lablr.core.vocabulary import pixel_probabilities

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image is in the test extra")
sklearn_datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn is in the test extra")
REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "scripts" / "vocabulary" / "rules.toml"
WORDNET = Path("/usr/share/wordnet/data.noun")


def jpeg(array) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.asarray(array)).convert("RGB").save(out, "JPEG", quality=92)
    return out.getvalue()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    """Real photographs as files, the way a user has them."""
    root = tmp_path_factory.mktemp("photos")
    arrays = {"cat": skimage_data.chelsea(), "coffee": skimage_data.coffee(),
              "temple": sklearn_datasets.load_sample_image("china.jpg"),
              "brick": skimage_data.brick(), "gravel": skimage_data.gravel(),
              "deep field": skimage_data.hubble_deep_field()}
    out = {}
    for name, array in arrays.items():
        out[name] = root / f"{name.replace(' ', '_')}.jpg"
        out[name].write_bytes(jpeg(array))
    return out


def lablr_suggest(*paths, model=None):
    command = [sys.executable, "-m", "lablr.core.cli", "suggest", *map(str, paths), "--json", "-k", "10",
               *(["--model", str(model)] if model else [])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return {Path(r["filename"]).stem: r["suggestions"] for r in json.loads(result.stdout)["results"]}


def test_lablr_suggest_names_what_everyday_photos_show(photos):
    found = lablr_suggest(photos["cat"], photos["coffee"], photos["temple"])
    expected = {"cat": {"cat", "pet"}, "coffee": {"coffee", "espresso", "drink", "cup"},
                "china": {"building", "architecture", "temple", "church"}}
    for name, tags in {"cat": expected["cat"], "coffee": expected["coffee"], "temple": expected["china"]}.items():
        top = found[name][:3]
        assert tags & {s["tag"] for s in top if s["score"] >= 0.5}, (name, top)
        assert not {"europe", "hash", "signs_and_symbols", "symbol"} & {s["tag"] for s in found[name]}


def test_photos_the_classifier_cannot_read_get_low_scores(photos):
    """Textures and the night sky: the page's 0.2 threshold hides what the model guesses."""
    found = lablr_suggest(photos["gravel"], photos["deep field"])
    for name, suggestions in found.items():
        concept = [s for s in suggestions if s["tag"] != "bw"]  # these photos have no colour: bw is right
        assert max(s["score"] for s in concept) < 0.5, (name, suggestions[:3])


def test_pixel_tags_read_the_photo_never_its_padding():
    """A wide red photo is padded with white to a square; a grey one is black-and-white."""
    wide_red = np.zeros((60, 240, 3), np.uint8)
    wide_red[..., 0] = 220
    wide_red[..., 1] = np.linspace(0, 40, 240).astype(np.uint8)
    grey = np.repeat(skimage_data.camera()[..., None], 3, axis=2)
    rgba = np.zeros((200, 200, 4), np.uint8)  # a blue disc on a transparent background
    yy, xx = np.mgrid[:200, :200]
    rgba[(yy - 100) ** 2 + (xx - 100) ** 2 < 50**2] = (30, 60, 220, 255)
    images = [decoding.decode(data, 224) for data in (jpeg(wide_red), jpeg(grey), png(rgba))]
    assert (images[0] == 255).all(axis=2).mean() > 0.5  # most of the square is Lablr's padding
    red, grey_photo, blue_disc = pixel_probabilities(np.stack(images), ["red", "white", "bw", "blue"])
    assert red[0] >= 0.3 and red[1] == 0 and red[2] == 0  # a colour is shown, never confident
    assert grey_photo[2] >= 0.8 and grey_photo[0] == 0
    assert blue_disc[3] >= 0.3 and blue_disc[1] == 0 and blue_disc[2] == 0


def png(rgba) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, "PNG")
    return out.getvalue()


def test_the_vocabulary_covers_flickrs_popular_tags_or_says_why_not():
    from lablr.plugins.flickr.defaults import TAGS

    rules = tomllib.loads(RULES.read_text())
    unseen = set(rules["unseen"]["tags"])
    known = set(Model.load(defaults.DEFAULT_MODEL).tags)
    assert set(TAGS) <= known | unseen and not known & unseen
    assert not known & {"entity", "whole", "device", "structure", "placental", "artifact"}


@pytest.mark.skipif(not WORDNET.exists(), reason="apt-get install wordnet-base")
def test_the_shipped_vocabulary_is_what_the_rules_and_wordnet_build():
    from lablr.core.pipeline.build_vocabulary import photo_vocabulary
    from lablr.core.vocabulary import ConceptVocabulary

    shipped = ConceptVocabulary.load(bundled_root() / defaults.DEFAULT_MODEL)
    built = photo_vocabulary(shipped.temperature)
    assert built.all_tags == shipped.all_tags
    def pairs(vocabulary):  # which classes each tag sums
        return set(zip(vocabulary.classes.tolist(), vocabulary.tag_of.tolist(), strict=True))

    assert pairs(built) == pairs(shipped)
    classes = (REPO / "scripts" / "vocabulary" / "imagenet_synsets.txt").read_text().split()
    cat_tags = {built.tags[t] for c, t in zip(built.classes, built.tag_of) if classes[c] == "n02123045"}
    assert {"tabby", "cat", "pet", "animal", "mammal"} <= cat_tags  # the specific tag and the general ones


# -- what a user teaches, on top of the default ------------------------------------------------------


def variants(array, count, seed):
    """Distinct photos of one subject: crops at other places, some mirrored."""
    rng = np.random.default_rng(seed)
    height, width = array.shape[:2]
    out = []
    for i in range(count):
        top, left = rng.integers(0, height // 6), rng.integers(0, width // 6)
        crop = array[top:top + 5 * height // 6, left:left + 5 * width // 6]
        out.append(jpeg(crop[:, ::-1] if i % 2 else crop))
    return out


@pytest.fixture(scope="module")
def default_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("photos-home")
    with running_server(defaults.DEFAULT_MODEL, env={"XDG_DATA_HOME": str(home)}) as (base, _):
        with httpx.Client(base_url=base, timeout=120) as client:
            yield client


def suggest(client, data, k=10):
    answer = client.post("/api/v1/suggest", files={"image": ("p.jpg", data, "image/jpeg")}, data={"k": str(k)})
    assert answer.status_code == 200, answer.text
    return {s["tag"]: s["score"] for s in answer.json()["results"][0]["suggestions"]}


def teach(client, data, tags):
    answer = client.post("/api/v1/feedback", files={"image": ("p.jpg", data, "image/jpeg")}, data={"tags": tags})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_server_suggests_photo_tags_and_says_they_are_probabilities(default_server):
    health = default_server.get("/api/v1/health").json()
    assert health["model"]["name"] == defaults.DEFAULT_MODEL and health["model"]["calibrated"]
    assert suggest(default_server, jpeg(skimage_data.chelsea())).get("cat", 0) >= 0.5
    listed = default_server.get("/api/v1/tags").json()
    assert "cat" in listed["vocabulary"]


def test_a_users_own_tag_joins_the_photo_tags_and_stays_on_its_photos(default_server):
    cats = variants(skimage_data.chelsea(), 7, seed=1)
    first = teach(default_server, cats[0], "chelsea, cat")
    assert "cat" in first["learning"] and first["pending"] == {"chelsea": 1}  # cat: known from the first photo
    for data in cats[1:5]:
        teach(default_server, data, "chelsea, cat")
    sixth = suggest(default_server, cats[6])
    assert sixth.get("chelsea", 0) >= 0.5 and sixth.get("cat", 0) >= 0.5, sixth
    coffee = suggest(default_server, jpeg(skimage_data.coffee()), k=100)
    assert coffee.get("chelsea", 0) < defaults.DEFAULT_MIN_PROBABILITY, coffee
    assert max(coffee.get(t, 0) for t in ("coffee", "espresso", "drink")) >= 0.5


def test_a_personal_layer_carries_over_to_a_new_default_with_the_same_latent_space(tmp_path, monkeypatch):
    from lablr.core.personal.layer import PersonalLayer, layer_path

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data #1?"))  # a folder name that an SQLite URI must quote
    benchmark = Model.load(defaults.BENCHMARK_MODEL)
    old = PersonalLayer.for_bundle(benchmark)
    latent = benchmark.encode(decoding.decode(jpeg(skimage_data.chelsea()), benchmark.image_size)[None])[0]
    old.record("a" * 64, latent, ["chelsea"], None)
    old.close()
    photos = Model.load(defaults.DEFAULT_MODEL)
    assert not layer_path(photos.path).exists()
    carried = PersonalLayer.for_bundle(photos)
    assert [event.tags for event in carried.events()] == [["chelsea"]]
    carried.close()
    vae = Model.load(defaults.ORIGINAL_MODEL)  # another latent space: nothing to carry
    assert PersonalLayer.for_bundle(vae).events() == []


def no_hard_links(*args, **kwargs):
    raise OSError(errno.EPERM, "Operation not permitted")  # what link() says on exFAT


@pytest.mark.parametrize("hard_links", [True, False])
def test_carrying_a_layer_over_never_replaces_one_begun_meanwhile(tmp_path, monkeypatch, hard_links):
    """Another process (a worker, `lablr personal`) may begin the layer while this one copies the old
    one: the copy is dropped, and the layer that was begun keeps its events. So too on a filesystem
    without hard links (exFAT, some FUSE and network ones), where link() fails as it is made to here."""
    from lablr.core.personal.layer import PersonalLayer, carry_over, layer_path

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    if not hard_links:
        monkeypatch.setattr(os, "link", no_hard_links)
    benchmark = Model.load(defaults.BENCHMARK_MODEL)
    old = PersonalLayer.for_bundle(benchmark)
    old.record("a" * 64, np.zeros(benchmark.encoder.latent_dim), ["chelsea"], None)
    old.close()
    photos = bundled_root() / defaults.DEFAULT_MODEL
    begun = PersonalLayer(layer_path(photos), latent_dim=benchmark.encoder.latent_dim, model_name="photos")
    begun.record("b" * 64, np.zeros(benchmark.encoder.latent_dim), ["mine"], None)
    begun.close()
    assert carry_over(photos, layer_path(photos))
    reopened = PersonalLayer(layer_path(photos), latent_dim=benchmark.encoder.latent_dim)
    assert [event.tags for event in reopened.events()] == [["mine"]]
    reopened.close()
    assert not [p.name for p in layer_path(photos).parent.iterdir() if "partial" in p.name]


def test_a_layer_of_a_shipped_model_before_it_was_rebuilt_carries_over(tmp_path, monkeypatch):
    """A newer Lablr rebuilds a shipped bundle (its manifest, so its checksum, changes): the user's layer,
    named by the old checksum, is found by the model name it records."""
    from lablr.core.personal.layer import PersonalLayer, layer_path

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    benchmark = Model.load(defaults.BENCHMARK_MODEL)
    earlier = layer_path(benchmark.path).with_name("0" * 64 + ".sqlite")  # as an earlier manifest named it
    earlier.parent.mkdir(parents=True)
    old = PersonalLayer(earlier, latent_dim=benchmark.encoder.latent_dim, model_name=defaults.BENCHMARK_MODEL)
    old.record("a" * 64, np.zeros(benchmark.encoder.latent_dim), ["chelsea"], None)
    old.close()
    carried = PersonalLayer.for_bundle(benchmark)
    assert carried.path != earlier and [event.tags for event in carried.events()] == [["chelsea"]]
    carried.close()


def test_reset_of_a_model_that_learned_nothing_itself_says_the_layer_it_would_have_carried_over_keeps_its_photos(
        tmp_path, monkeypatch):
    """The default model has no layer yet; the benchmark's, over the same latent space, holds a photo. Reset
    leaves that layer as it is and gives the default an empty one: it said "1 photo forgotten"."""
    from lablr.core.personal.layer import PersonalLayer

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    benchmark = Model.load(defaults.BENCHMARK_MODEL)
    old = PersonalLayer.for_bundle(benchmark)
    old.record("a" * 64, np.zeros(benchmark.encoder.latent_dim), ["chelsea"], None)
    old.close()
    said = lablr_cli("personal", "reset", "--model", defaults.DEFAULT_MODEL, "--yes")
    assert said == (f"{defaults.DEFAULT_MODEL} had learned nothing itself: it now starts empty, instead of from the "
                    f"layer of {defaults.BENCHMARK_MODEL} ({old.path}), which keeps its 1 photo.\n")
    assert "learned from 1 of your photos" in lablr_cli("personal", "show", "--model", defaults.BENCHMARK_MODEL)
    assert "learned from 0 of your photos" in lablr_cli("personal", "show", "--model", defaults.DEFAULT_MODEL)
    assert lablr_cli("personal", "reset", "--model", defaults.DEFAULT_MODEL, "--yes") == "0 photos forgotten.\n"


def lablr_cli(*args):
    from click.testing import CliRunner

    from lablr.core.cli import cli

    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def fitted_on_default(tmp_path_factory, shapes_csv):
    """(catalog, bundle): `lablr fit` of the drawn shapes with no --model, so on the default."""
    from conftest import TINY_RULES

    root = tmp_path_factory.mktemp("fit-on-default")
    rules = ["--per-owner-cap", "1000", "--min-tag-photos", str(TINY_RULES["min_tag_photos"]),
             "--min-train-photos", str(TINY_RULES["min_train_photos"])]
    lablr_cli("import", "csv", shapes_csv, "--catalog", root / "c.db")
    lablr_cli("fit", "--catalog", root / "c.db", "--out", root / "mine", *rules)
    return root / "c.db", root / "mine", rules


def test_lablr_fit_takes_the_default_as_its_base(fitted_on_default):
    _, out, _ = fitted_on_default
    mine = Model.load(out)
    assert mine.vocabulary is not None and {"circle", "red"} <= set(mine.tag_model.tags)
    found = lablr_suggest(REPO / "docs" / "web-page.png", model=out)
    assert found  # both kinds rank together without error
    cat = mine.suggest(decoding.decode(jpeg(skimage_data.chelsea()), mine.image_size)[None], 5)[0]
    assert "cat" in {s.tag for s in cat}


def test_shards_fitted_on_the_default_merge_into_the_same_model(fitted_on_default, tmp_path):
    catalog, single, rules = fitted_on_default
    parts = [tmp_path / f"part-{i}" for i in range(2)]
    for index, part in enumerate(parts):
        lablr_cli("fit", "--catalog", catalog, "--shard", f"{index}/2", "--out", part, *rules)
    lablr_cli("merge", *parts, "--out", tmp_path / "merged")
    one, merged = Model.load(single), Model.load(tmp_path / "merged")
    assert merged.tags == one.tags and merged.vocabulary.all_tags == one.vocabulary.all_tags
    for name in ("counts", "sums", "outer_upper"):  # the statistics are sums: exactly the fit's
        np.testing.assert_allclose(tag_statistics(tmp_path / "merged")[name], tag_statistics(single)[name],
                                   rtol=1e-9)
    photo = decoding.decode(jpeg(skimage_data.coffee()), one.image_size)[None]
    a, b = one.suggest(photo, 8)[0], merged.suggest(photo, 8)[0]  # calibrated alike: the same ranking
    assert [s.tag for s in a] == [s.tag for s in b] and {"coffee", "espresso"} & {s.tag for s in a[:3]}
    np.testing.assert_allclose([s.score for s in a], [s.score for s in b], rtol=1e-6)
