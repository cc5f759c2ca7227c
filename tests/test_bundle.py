"""Model bundles: whole or absent, checked before use, never able to run code."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lablr.core import bundle
from lablr.core.errors import BundleError
from lablr.core.files import sha256_file
from lablr.core.model import Model

# A bundle written by Lablr 0.1.0 in format 1 (parts named under "plugin"), before format 2.
FORMAT_1 = Path(__file__).parent / "fixtures" / "bundle-format-1"


@pytest.fixture
def copy(tiny_bundle, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(tiny_bundle, target)
    return target


def test_bundle_holds_no_pickle_and_lists_checksums(tiny_bundle):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert manifest["format"] == bundle.FORMAT_VERSION
    assert set(manifest["files"]) == {p.name for p in tiny_bundle.iterdir()} - {"manifest.json"}
    for npz in tiny_bundle.glob("*.npz"):
        with np.load(npz, allow_pickle=False) as data:
            assert all(data[name].dtype != object for name in data.files)
    assert {"encoder", "tag_model", "scorer", "visualizer"} <= set(manifest["parts"])
    assert manifest["tags"][0].keys() == {"tag", "count"}


def test_other_format_version_says_what_to_do(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    for version, advice in [(bundle.FORMAT_VERSION + 1, "upgrade Lablr"), (0, "rebuild it")]:
        (copy / "manifest.json").write_text(json.dumps({**manifest, "format": version}))
        with pytest.raises(BundleError) as error:
            Model.load(copy)
        assert advice in error.value.message


def test_tampered_file_is_refused(copy):
    stats = copy / "tag_stats.npz"
    stats.write_bytes(stats.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(BundleError) as error:
        Model.load(copy)
    assert "checksum" in error.value.message


def test_object_arrays_are_not_unpickled(copy):
    # Even with a matching checksum, an .npz that needs pickle is refused, not executed.
    stats = copy / "tag_stats.npz"
    np.savez(stats, tags=np.array([{"evil": 1}], dtype=object), counts=np.ones(1), sums=np.ones((1, 4)),
             outer_sums=np.ones((1, 4, 4)))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["tag_stats.npz"] = sha256_file(stats)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError):
        Model.load(copy)


def test_save_is_atomic_when_a_part_fails(copy, tmp_path):
    model = Model.load(copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}

    def broken_save(directory):
        (directory / "pca.npz").write_bytes(b"half")
        raise OSError("disk full")

    model.visualizer.save = broken_save
    with pytest.raises(OSError):
        model.save(copy)
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before
    assert [p.name for p in copy.parent.iterdir() if p.name.startswith(".")] == []


def test_saved_model_loads_back_with_the_same_suggestions(copy, tmp_path):
    model = Model.load(copy)
    images = np.random.default_rng(0).integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    model.save(tmp_path / "again")
    again = Model.load(tmp_path / "again")
    assert [[s.as_dict() for s in r] for r in model.suggest(images)] == \
           [[s.as_dict() for s in r] for r in again.suggest(images)]


def drawings():
    from conftest import draw_shape

    return np.stack([np.asarray(draw_shape(c, s, size=16, seed=1)) for c, s in [("red", "circle"), ("blue", "square")]])


def test_a_bundle_written_in_format_1_loads_after_the_bump_to_format_2(tmp_path):
    assert json.loads((FORMAT_1 / "manifest.json").read_text())["format"] == 1 < bundle.FORMAT_VERSION
    model = Model.load(FORMAT_1)
    assert model.part_names == {"encoder": "vae", "tag_model": "gaussian", "scorer": "mahalanobis",
                                "visualizer": "pca"}
    assert model.manifest.data.train_photos == 89 and model.manifest.evaluation["mahalanobis"]["map"] > 0
    found = model.suggest(drawings(), 6)
    assert all(sorted(s.tag for s in row) == ["blue", "circle", "green", "red", "square", "triangle"] for row in found)

    # Saved again, it is written in the current format, and suggests exactly the same
    model.save(tmp_path / "again")
    rewritten = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert rewritten["format"] == bundle.FORMAT_VERSION and rewritten["parts"]["encoder"]["name"] == "vae"
    assert [[s.as_dict() for s in row] for row in Model.load(tmp_path / "again").suggest(drawings(), 6)] == \
           [[s.as_dict() for s in row] for row in found]


def test_every_manifest_field_round_trips(copy, tmp_path):
    model = Model.load(copy)
    model.save(tmp_path / "again")
    first, second = bundle.read_manifest(copy), bundle.read_manifest(tmp_path / "again")
    assert second.created >= first.created
    for field in ("parts", "name", "data", "evaluation", "tags", "image_size", "lablr_version"):
        assert getattr(second, field) == getattr(first, field), field
    assert set(second.files) == set(first.files)


def test_a_damaged_manifest_is_a_clear_error(copy):
    for damage in ({"format": bundle.FORMAT_VERSION}, {"format": bundle.FORMAT_VERSION, "parts": {"encoder": 3}},
                   [1, 2, 3]):
        (copy / "manifest.json").write_text(json.dumps(damage))
        with pytest.raises(BundleError) as error:
            Model.load(copy)
        assert "manifest" in error.value.message or "format" in error.value.message


def test_the_format_doc_describes_every_field_written(tiny_bundle):
    doc = (Path(__file__).parent.parent / "docs" / "bundle-format.md").read_text()
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    fields = set(manifest) | {f"data.{k}" for k in manifest["data"]} | {f"parts.KIND.{k}" for k in
                                                                       manifest["parts"]["encoder"]}
    fields |= {f"training.{k}" for k in manifest["training"]}
    assert f"Format {bundle.FORMAT_VERSION}" in doc
    for field in fields:
        assert f"`{field}`" in doc, field


def test_only_core_bundle_reads_or_writes_manifest_json():
    import re

    root = Path(__file__).parent.parent
    raw_access = re.compile(r"manifest\[|manifest\.get\(|manifest\.json|\bMANIFEST\b|json\.(loads?|dumps?)\(.*manifest")
    for folder in ("core", "server", "plugins", "scripts"):
        for path in (root / folder).rglob("*.py"):
            if path != root / "core" / "bundle.py":
                assert not raw_access.search(path.read_text()), f"{path} reads or writes manifest fields itself"
