"""`lablr fit --add` adds only the photos a model's statistics do not hold yet: every bundle written from
a catalog records its photos (fitted_photos.npz), so the same catalog given again, or a grown one, counts
no photo twice. A bundle without the record says so in one line and adds every photo."""

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_RULE_OPTIONS, photo

from lablr.core.bundle import Manifest, leave_out
from lablr.core.cli import cli
from lablr.core.fitted_photos import FILE, MAX_PHOTOS, FittedPhotos
from lablr.core.model import Model
from lablr.core.plugins import get_part
from lablr.plugins import openclipart

OPENCLIPART = Path(openclipart.installed_root())


def lablr(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def ok(*args):
    result = lablr(*args)
    assert result.exit_code == 0, result.output
    return result.output


def counts(bundle) -> dict:
    model = Model.load(bundle)
    return dict(zip(model.tag_model.tags, model.tag_model.counts.tolist()))


def train_photos(bundle) -> int:
    return Model.load(bundle).manifest.data.train_photos


@pytest.fixture(scope="module")
def fitted(tiny_bundle, shapes_csv, tmp_path_factory):
    """(the catalog of the shapes, a bundle fitted on it with tiny_bundle's encoder)."""
    root = tmp_path_factory.mktemp("fitted")
    catalog = root / "c.db"
    ok("import", "csv", shapes_csv, "--catalog", catalog)
    ok("fit", "--model", tiny_bundle, "--catalog", catalog, "--out", root / "model", *TINY_RULE_OPTIONS)
    return catalog, root / "model"


def test_a_fitted_bundle_records_the_photos_its_statistics_hold(fitted):
    _, bundle = fitted
    model = Model.load(bundle)
    assert len(model.fitted_photos) == model.manifest.data.train_photos > 0
    assert sum(model.fitted_photos.holds(key for key in model.manifest.data.test_keys)) == 0


def test_the_same_catalog_added_again_changes_no_count_and_says_what_it_skipped(fitted, tmp_path):
    catalog, bundle = fitted
    output = ok("fit", "--model", bundle, "--catalog", catalog, "--out", tmp_path / "added", "--add",
                *TINY_RULE_OPTIONS)
    assert f"Added 0 photos to the tag statistics; skipped {train_photos(bundle)} the model already holds." in output
    assert counts(tmp_path / "added") == counts(bundle)
    output = ok("fit", "--model", tmp_path / "added", "--catalog", catalog, "--out", tmp_path / "again", "--add",
                *TINY_RULE_OPTIONS)
    assert f"skipped {train_photos(bundle)}" in output and counts(tmp_path / "again") == counts(bundle)
    assert np.array_equal(Model.load(tmp_path / "again").fitted_photos.ids, Model.load(bundle).fitted_photos.ids)


def fitted_then_grown(tiny_bundle, shapes_csv, tmp_path, first, *prepare_options) -> tuple[Path, str]:
    """A catalog of the shape images that `first(image, tag)` keeps, prepared, and a bundle fitted on it
    (tmp_path / "first"); then the catalog grown to every image, prepared again, and that bundle given it with
    --add (tmp_path / "grown"). (The catalog, what --add said.)"""
    lines = shapes_csv.read_text().splitlines()[1:]
    kept = {line.split(",")[0] for line in lines if first(*line.split(","))}
    first_csv = tmp_path / "first.csv"
    first_csv.write_text("".join(f"{shapes_csv.parent}/{line}\n" for line in lines if line.split(",")[0] in kept))
    catalog = tmp_path / "c.db"

    def import_and_prepare(csv):
        ok("import", "csv", csv, "--catalog", catalog)
        ok("prepare", "--catalog", catalog, "--size", 16, "--quiet", *prepare_options, *TINY_RULE_OPTIONS)

    import_and_prepare(first_csv)
    ok("fit", "--model", tiny_bundle, "--catalog", catalog, "--out", tmp_path / "first")
    import_and_prepare(shapes_csv)  # the catalog grows: every photo of the first is kept
    return catalog, ok("fit", "--model", tmp_path / "first", "--catalog", catalog, "--out", tmp_path / "grown",
                       "--add")


def test_a_grown_catalog_adds_only_its_new_photos_as_a_fresh_fit_on_all_of_them(tiny_bundle, shapes_csv, tmp_path):
    images = sorted({line.split(",")[0] for line in shapes_csv.read_text().splitlines()[1:]})
    first_half = set(images[: len(images) // 2])
    catalog, output = fitted_then_grown(tiny_bundle, shapes_csv, tmp_path, lambda image, tag: image in first_half)
    ok("fit", "--model", tmp_path / "first", "--catalog", catalog, "--out", tmp_path / "fresh")

    held, everything = train_photos(tmp_path / "first"), train_photos(tmp_path / "fresh")
    assert 0 < held < everything
    assert f"Added {everything - held} photos to the tag statistics; skipped {held} the model already holds." in output
    grown, fresh = Model.load(tmp_path / "grown"), Model.load(tmp_path / "fresh")
    assert counts(tmp_path / "grown") == counts(tmp_path / "fresh")
    order = [grown.tag_model.tags.index(tag) for tag in fresh.tag_model.tags]
    np.testing.assert_allclose(grown.tag_model.centroids()[order], fresh.tag_model.centroids(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(grown.tag_model.covariances()[order], fresh.tag_model.covariances(), rtol=1e-9,
                               atol=1e-9)
    assert np.array_equal(grown.fitted_photos.ids, fresh.fitted_photos.ids)


def test_a_bundle_without_the_record_adds_every_photo_and_says_it_cannot_tell(fitted, tmp_path):
    catalog, bundle = fitted
    older = tmp_path / "older"
    shutil.copytree(bundle, older)
    leave_out(older, FILE)  # as Lablr wrote bundles before the record, and the shipped ones are
    output = ok("fit", "--model", older, "--catalog", catalog, "--out", tmp_path / "added", "--add",
                *TINY_RULE_OPTIONS)
    told = [line for line in output.splitlines() if "does not record which photos" in line]
    assert told == [(f"{older} does not record which photos its statistics hold (it was written before Lablr "
                     f"recorded them): all {train_photos(bundle)} training photos of {catalog} were added, and any "
                     "it was fitted on now count twice. Fit it anew without --add to start the record.")]
    assert counts(tmp_path / "added") == {tag: 2 * n for tag, n in counts(bundle).items()}
    assert not (tmp_path / "added" / FILE).exists()  # it still cannot tell


def test_statistics_of_no_photo_hold_none_even_without_a_record(fitted, tiny_bundle, tmp_path):
    """Like the shipped `photos`: no tag of its own, so nothing it holds can be counted twice."""
    catalog, _ = fitted
    tiny = Model.load(tiny_bundle)
    empty = get_part("tag_model", "gaussian")().fit(np.zeros((0, tiny.encoder.latent_dim)), [], [])
    picture = get_part("visualizer", "pca")().fit(empty)
    Model({"encoder": tiny.encoder, "tag_model": empty, "visualizer": picture},
          Manifest(parts=tiny.manifest.parts, name="empty")).save(tmp_path / "empty")
    assert not (tmp_path / "empty" / FILE).exists()
    output = ok("fit", "--model", tmp_path / "empty", "--catalog", catalog, "--out", tmp_path / "added", "--add",
                *TINY_RULE_OPTIONS)
    added = len(Model.load(tmp_path / "added").fitted_photos)
    assert f"Added {added} photos to the tag statistics; skipped 0" in output and added > 0
    assert "does not record" not in output


def reseal(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                         for p in sorted(bundle.iterdir()) if p.name != "manifest.json"}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def declared_only(path, shape, dtype="<u8"):
    """An .npz whose one array's header declares `shape` and whose data is not there."""
    with zipfile.ZipFile(path, "w") as archive, archive.open("ids.npy", "w") as file:
        np.lib.format.write_array_header_1_0(file, {"descr": dtype, "fortran_order": False, "shape": shape})


RECORD_DAMAGE = {
    "truncated": (lambda path: path.write_bytes(path.read_bytes()[:100]), False, "does not match its checksum"),
    "not a zip": (lambda path: path.write_bytes(b"not an npz at all"), True, "cannot be read"),
    "truncated, resealed": (lambda path: path.write_bytes(path.read_bytes()[:-20]), True, "cannot be read"),
    "floats": (lambda path: np.savez(path, ids=np.arange(4.0)), True, "not <u8"),
    "a table": (lambda path: np.savez(path, ids=np.zeros((2, 2), np.uint64)), True, "has shape"),
    "unsorted": (lambda path: np.savez(path, ids=np.array([5, 3], np.uint64)), True, "not sorted"),
    "no ids": (lambda path: np.savez(path, keys=np.arange(3)), True, "lack ids"),
    "more photos than Lablr reads": (lambda path: declared_only(path, (MAX_PHOTOS + 1,)), True, "more than Lablr"),
}


@pytest.mark.parametrize("damage", sorted(RECORD_DAMAGE))
def test_a_damaged_record_is_a_one_line_error(fitted, tmp_path, damage):
    catalog, bundle = fitted
    image = tmp_path / "photo.png"
    image.write_bytes(photo())
    damaged = tmp_path / "damaged"
    shutil.copytree(bundle, damaged)
    change, resealed, said = RECORD_DAMAGE[damage]
    change(damaged / FILE)
    if resealed:
        reseal(damaged)
    for command in (["fit", "--model", damaged, "--catalog", catalog, "--out", tmp_path / "out", "--add",
                     *TINY_RULE_OPTIONS], ["suggest", "--model", damaged, image]):
        result = CliRunner().invoke(cli, [str(a) for a in command])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
        assert said in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_the_record_is_small_and_recognises_a_photo_by_its_catalog_key(tmp_path):
    keys = [f"flickr:{53000000000 + i}" for i in range(100_000)]
    record = FittedPhotos.of_keys(keys)
    record.save(tmp_path)
    assert (tmp_path / FILE).stat().st_size < 100_000 * 8 + 1_000
    again = FittedPhotos.read(tmp_path)
    assert again.holds(["flickr:53000000007", "flickr:7", "openclipart:53000000007"]).tolist() == [True, False, False]
    assert len(again.union(["flickr:53000000007", "flickr:8"])) == 100_001


def ece(bundle, catalog) -> float:
    return json.loads(ok("evaluate", "--model", bundle, "--catalog", catalog, "--json"))[
        Model.load(bundle).default_scorer]["ece"]


def openclipart_install(tmp_path, *categories) -> Path:
    """An OpenClipart install of these categories alone (their SVGs copied: the source skips links, as
    duplicates). Its photos' keys, and so their split, are the same on every machine."""
    root = tmp_path / "+".join(categories)
    (root / "png").mkdir(parents=True)
    for category in categories:
        (root / "png" / category).symlink_to(OPENCLIPART / "png" / category)
        shutil.copytree(OPENCLIPART / "svg" / category, root / "svg" / category)
    return root


@pytest.mark.skipif(not (OPENCLIPART / "svg").is_dir(), reason="needs Debian's openclipart-png and openclipart-svg")
def test_photos_that_bring_new_tags_calibrate_the_probabilities_again(tmp_path):
    """A calibration fitted on the first tags alone no longer tells probabilities once other tags join (a
    building scored "animal 0.94" after animals were added): it is fitted again, on the photos added.
    OpenClipart's buildings, then its animals too, under the benchmark's encoder."""
    catalog = tmp_path / "c.db"
    ok("import", "openclipart", openclipart_install(tmp_path, "buildings"), "--catalog", catalog)
    ok("fit", "--model", "openclipart-effnet", "--catalog", catalog, "--out", tmp_path / "first")
    ok("import", "openclipart", openclipart_install(tmp_path, "buildings", "animals"), "--catalog", catalog)
    output = ok("fit", "--model", tmp_path / "first", "--catalog", catalog, "--out", tmp_path / "grown", "--add")
    new_tags = len(Model.load(tmp_path / "grown").tag_model.tags) - len(Model.load(tmp_path / "first").tag_model.tags)
    assert new_tags > 0 and f"The probabilities are calibrated again on the photos added ({new_tags} new tags)." \
        in output
    stale = tmp_path / "stale"  # the grown statistics under the first calibration, as --add kept it before
    shutil.copytree(tmp_path / "grown", stale)
    manifest = json.loads((stale / "manifest.json").read_text())
    manifest["calibration"] = json.loads((tmp_path / "first" / "manifest.json").read_text())["calibration"]
    (stale / "manifest.json").write_text(json.dumps(manifest))
    ok("fit", "--model", tmp_path / "first", "--catalog", catalog, "--out", tmp_path / "fresh")
    grown, before, fresh = (ece(tmp_path / name, catalog) for name in ("grown", "stale", "fresh"))
    assert grown < before - 0.3 and grown < fresh + 0.05  # measured: 0.04, 0.64 and 0.03


def test_a_few_photos_of_known_tags_keep_the_calibration_fitted_on_more(tiny_bundle, shapes_csv, tmp_path):
    last = sorted({line.split(",")[0] for line in shapes_csv.read_text().splitlines()[1:]})[-3:]
    _, output = fitted_then_grown(tiny_bundle, shapes_csv, tmp_path, lambda image, tag: image not in last,
                                  "--test-fraction", 0)
    assert "Added 3 photos to the tag statistics" in output and "calibrated again" not in output
    assert Model.load(tmp_path / "grown").calibrations == Model.load(tmp_path / "first").calibrations
