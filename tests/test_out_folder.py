"""A model bundle replaces its --out folder whole, so --out must be new, empty, or a bundle: a folder of the
user's given by mistake (`--out ~/Pictures`) is refused before any work, and keeps every file."""

import json
import os
import shutil
import subprocess

import pytest
from click.testing import CliRunner
from conftest import LABLR, TINY_RULE_OPTIONS
from fake_flickr import FakeFlickr, make_photos

from lablr.core.cli import cli
from lablr.core.model import Model


def lablr(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def catalog(shapes_csv, tmp_path_factory):
    path = tmp_path_factory.mktemp("out") / "c.db"
    assert lablr("import", "csv", shapes_csv, "--catalog", path).exit_code == 0
    return path


def users_folder(tmp_path, name="Pictures"):
    """A folder of the user's: a photo, a sub-folder, and a manifest.json that is not a bundle's (an
    extension's, say)."""
    folder = tmp_path / name
    (folder / "2024").mkdir(parents=True)
    (folder / "2024" / "IMG_0001.jpg").write_bytes(b"\xff\xd8 a photo")
    (folder / "manifest.json").write_text(json.dumps({"manifest_version": 3, "name": "an extension"}))
    return folder


def files_in(folder) -> dict:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def commands(tiny_bundle, catalog, out, part):
    return {
        "train": ["train", "--catalog", catalog, "--out", out, "--image-size", 16, "--latent-dim", 4, "--epochs", 1,
                  *TINY_RULE_OPTIONS],
        "fit": ["fit", "--model", tiny_bundle, "--catalog", catalog, "--out", out, *TINY_RULE_OPTIONS],
        "fit --add": ["fit", "--model", tiny_bundle, "--catalog", catalog, "--out", out, "--add", *TINY_RULE_OPTIONS],
        "merge": ["merge", part, "--out", out],
    }


@pytest.mark.parametrize("command", ["train", "fit", "fit --add", "merge"])
def test_a_folder_that_is_not_a_bundle_is_refused_before_any_work_and_keeps_its_files(
        command, tiny_bundle, catalog, tmp_path):
    part = tmp_path / "part-0"
    if command == "merge":
        assert lablr("fit", "--model", tiny_bundle, "--catalog", catalog, "--out", part, "--shard", "0/1",
                     *TINY_RULE_OPTIONS).exit_code == 0
    folder = users_folder(tmp_path)
    before = files_in(folder)
    result = lablr(*commands(tiny_bundle, catalog, folder, part)[command])
    assert result.exit_code == 1, result.output
    assert result.output == (f"Error: {folder} is there already and is not a model bundle: Lablr leaves it as it "
                             "is (it would replace the whole folder). Give a new folder.\n")
    assert files_in(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["Pictures", *(["part-0"] if part.exists() else [])])


def test_a_folder_that_is_not_a_part_is_refused_by_fit_shard(tiny_bundle, catalog, tmp_path):
    folder = users_folder(tmp_path)
    before = files_in(folder)
    result = lablr("fit", "--model", tiny_bundle, "--catalog", catalog, "--out", folder, "--shard", "0/2",
                   *TINY_RULE_OPTIONS)
    assert result.exit_code == 1 and "is there already and is not a part of `lablr fit --shard`" in result.output
    assert files_in(folder) == before


def test_a_new_folder_an_empty_one_and_a_bundle_are_written(tiny_bundle, catalog, tmp_path):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "new", tmp_path / "empty", tmp_path / "new"):  # the last: a bundle, replaced
        result = lablr("fit", "--model", tiny_bundle, "--catalog", catalog, "--out", out, *TINY_RULE_OPTIONS)
        assert result.exit_code == 0, result.output
        assert Model.load(out).tag_model.tags
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "new"]  # no partial or old copy left beside


def test_build_flickr_refuses_the_folder_before_it_downloads(tmp_path):
    fake = FakeFlickr(photos=make_photos(per_kind=2)).start()
    folder = users_folder(tmp_path)
    before = files_in(folder)
    try:
        result = subprocess.run([*LABLR, "build", "flickr", "--tags", "red", "--out", str(folder)], text=True,
                                capture_output=True, check=False, env={**os.environ, **fake.env(),
                                                          "XDG_CONFIG_HOME": str(tmp_path / "config")}, timeout=120)
    finally:
        fake.stop()
    assert result.returncode == 1 and "is there already and is not a model bundle" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not fake.image_requests and files_in(folder) == before
    assert not (tmp_path / "Pictures.db").exists()


@pytest.mark.parametrize("change", ["format 0", "format 3", "damaged"])
def test_a_bundle_lablr_cannot_read_is_rebuilt_at_its_place(tiny_bundle, catalog, tmp_path, change):
    """Lablr says of a bundle of another format, or a damaged one, to rebuild it: at the same --out too."""
    out = tmp_path / "my-model"
    shutil.copytree(tiny_bundle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    if change == "damaged":
        del manifest["parts"]
    else:
        manifest["format"] = int(change.split()[1])
    (out / "manifest.json").write_text(json.dumps(manifest))
    result = lablr("fit", "--model", tiny_bundle, "--catalog", catalog, "--out", out, *TINY_RULE_OPTIONS)
    assert result.exit_code == 0, result.output
    assert Model.load(out).tag_model.tags


@pytest.mark.parametrize("out", [".", ".."])
def test_out_naming_the_folder_one_is_in_is_refused_in_one_line_before_any_work(
        tiny_bundle, catalog, tmp_path, monkeypatch, out):
    here = tmp_path / "empty"
    here.mkdir()
    monkeypatch.chdir(here)
    result = CliRunner().invoke(cli, ["fit", "--model", str(tiny_bundle), "--catalog", str(catalog), "--out", out,
                                      *TINY_RULE_OPTIONS])
    assert result.exit_code == 1 and result.exception is not None and isinstance(result.exception, SystemExit)
    assert result.output == f"Error: {out} names no folder of its own: give the new folder a name, such as my-model.\n"
    assert not any(here.iterdir()) and sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_a_symbolic_link_to_a_bundle_stays_and_its_bundle_is_written(tiny_bundle, catalog, tmp_path):
    """models/current -> v3: `--out models/current` writes v3 anew, and current still names it."""
    real, link = tmp_path / "v3", tmp_path / "current"
    shutil.copytree(tiny_bundle, real)
    (real / "from-before").write_text("a file the old bundle held, gone once it is written anew")
    link.symlink_to(real.name)
    result = lablr("fit", "--model", tiny_bundle, "--catalog", catalog, "--out", link, *TINY_RULE_OPTIONS)
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == "v3"
    assert not (real / "from-before").exists() and Model.load(real).tag_model.tags
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "v3"]


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_what_a_killed_write_left_beside_the_bundle_is_removed_and_a_live_ones_kept(tiny_bundle, catalog, tmp_path):
    out, dead, live = tmp_path / "model", dead_pid(), os.getppid()  # the parent: another writer, alive
    assert lablr("fit", "--model", tiny_bundle, "--catalog", catalog, "--out", out, *TINY_RULE_OPTIONS).exit_code == 0
    for leftover in (f".model.partial-{dead}", f".model.old-{dead}", f".model.partial-{live}"):
        (tmp_path / leftover).mkdir()
        (tmp_path / leftover / "tag_stats.npz").write_bytes(b"\0" * 1000)
    result = lablr("fit", "--model", tiny_bundle, "--catalog", catalog, "--out", out, *TINY_RULE_OPTIONS)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".model.partial-{live}", "model"]  # another writer's


def test_a_bundle_moved_aside_by_a_write_killed_between_its_renames_is_put_back(tiny_bundle, catalog, tmp_path):
    out = tmp_path / "model"
    assert lablr("fit", "--model", tiny_bundle, "--catalog", catalog, "--out", out, *TINY_RULE_OPTIONS).exit_code == 0
    tags = Model.load(out).tag_model.tags
    out.rename(tmp_path / f".model.old-{dead_pid()}")  # where the killed write had moved it, the new one not yet there
    result = lablr("fit", "--model", tiny_bundle, "--catalog", catalog, "--out", out, "--min-tag-photos", 1000)
    assert result.exit_code == 1 and "No photo" in result.output  # this write fails too, after its check
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"] and Model.load(out).tag_model.tags == tags
