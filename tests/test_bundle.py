"""Model bundles: whole or absent, checked before use, never able to run code."""

import json
import shutil

import numpy as np
import pytest

from lablr.core import bundle
from lablr.core.checksums import sha256_file
from lablr.core.errors import BundleError
from lablr.core.model import Model


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
