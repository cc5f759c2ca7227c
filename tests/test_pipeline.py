"""The command line, from tagged images on disk to suggestions, pictures and figures."""

import json
import subprocess
import sys

import numpy as np
from click.testing import CliRunner
from conftest import LABLR, TINY_RULE_OPTIONS, draw_shape, on_a_terminal
from PIL import Image

from lablr.core.cli import cli
from lablr.core.data.catalog import Catalog


def lablr(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def test_import_csv_counts_and_skips_unreadable_files(tmp_path, shapes_csv):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    csv_path = tmp_path / "more.csv"
    csv_path.write_text(shapes_csv.read_text().replace("images/", f"{shapes_csv.parent}/images/")
                        + f"{broken},red\n{tmp_path / 'missing.jpg'},blue\n")
    catalog = tmp_path / "c.db"
    result = lablr("import", "csv", csv_path, "--catalog", catalog)
    assert result.exit_code == 0
    assert "108 new photos" in result.output and "2 unreadable skipped" in result.output
    again = lablr("import", "csv", csv_path, "--catalog", catalog)
    assert "0 new photos" in again.output and "108 already there" in again.output
    photos = Catalog(catalog).photos()
    assert all(sorted(p["tags"]) in ([c, s] for c in ("blue", "green", "red") for s in
               ("circle", "square", "triangle")) or len(p["tags"]) == 2 for p in photos)


def test_import_folder_tags_by_subfolder(tmp_path):
    for tag in ("cat", "dog"):
        (tmp_path / "photos" / tag).mkdir(parents=True)
        for i in range(3):
            draw_shape("red", "circle", seed=i).save(tmp_path / "photos" / tag / f"{i}.jpg")
    result = lablr("import", "folder", tmp_path / "photos", "--catalog", tmp_path / "c.db")
    assert "6 new photos" in result.output
    assert sorted({t for p in Catalog(tmp_path / "c.db").photos() for t in p["tags"]}) == ["cat", "dog"]


def test_bad_source_location_is_a_clear_error(tmp_path):
    result = lablr("import", "folder", tmp_path / "nowhere", "--catalog", tmp_path / "c.db")
    assert result.exit_code == 1 and "Not a folder" in result.output and "Traceback" not in result.output
    result = lablr("import", "flickr-or-so", "--catalog", tmp_path / "c.db")
    assert result.exit_code == 1 and "Registered:" in result.output


def test_suggest_json_ranks_tags_of_the_tiny_model(tiny_bundle, tmp_path):
    photos = []
    for colour, shape in [("red", "circle"), ("blue", "square")]:
        photos.append(tmp_path / f"{colour}-{shape}.png")
        draw_shape(colour, shape, seed=99).save(photos[-1])
    result = lablr("suggest", *photos, "--model", tiny_bundle, "--k", 3, "--json", "--exclude", "green")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert [r["filename"] for r in report["results"]] == [str(p) for p in photos]
    for item in report["results"]:
        suggestions = item["suggestions"]
        assert len(suggestions) == 3 and "green" not in [s["tag"] for s in suggestions]
        # ranked by the calibrated probability (of the distance and the tag's photo count), best first
        assert [s["score"] for s in suggestions] == sorted((s["score"] for s in suggestions), reverse=True)


def test_suggest_exclude_reads_tags_as_a_person_types_them_like_the_api(tiny_bundle, tmp_path):
    photo = tmp_path / "p.png"
    draw_shape("red", "circle", seed=3).save(photo)

    def tags(*extra):
        result = lablr("suggest", photo, "--model", tiny_bundle, "--k", 6, "--json", *extra)
        return [s["tag"] for s in json.loads(result.stdout)["results"][0]["suggestions"]]

    everything = tags()
    assert tags("--exclude", f" {everything[0].upper()} ,{everything[1]},,nothing-like-it") == everything[2:]


def test_same_photo_always_gets_the_same_tags(tiny_bundle, tmp_path):
    photo = tmp_path / "p.png"
    draw_shape("green", "triangle", seed=5).save(photo)
    first = lablr("suggest", photo, "--model", tiny_bundle, "--json").output
    second = lablr("suggest", photo, "--model", tiny_bundle, "--json").output
    assert first == second


def test_plot_writes_png_and_svg(tiny_bundle, tmp_path):
    photo = tmp_path / "p.png"
    draw_shape("blue", "circle").save(photo)
    assert lablr("plot", photo, "-o", tmp_path / "out.png", "--model", tiny_bundle).exit_code == 0
    with Image.open(tmp_path / "out.png") as picture:
        assert picture.format == "PNG" and picture.width > 300
    assert lablr("plot", photo, "-o", tmp_path / "out.svg", "--model", tiny_bundle).exit_code == 0
    svg = (tmp_path / "out.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert not list(tmp_path.glob("*.partial"))


def test_evaluate_json_reports_both_scorers_and_the_baseline(tiny_bundle, shapes_csv, tmp_path):
    catalog = tmp_path / "c.db"
    lablr("import", "csv", shapes_csv, "--catalog", catalog)
    result = lablr("evaluate", "--model", tiny_bundle, "--catalog", catalog, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for name in ("mahalanobis", "loglik", "popularity"):
        assert set(report[name]) >= {"precision_at_5", "recall_at_5", "map"}
        assert 0 <= report[name]["map"] <= 1
    assert report["mahalanobis"]["photos"] == report["popularity"]["photos"] > 0


def test_fit_refits_and_add_counts_no_photo_twice(tiny_bundle, tmp_path, shapes_csv):
    catalog = tmp_path / "c.db"
    lablr("import", "csv", shapes_csv, "--catalog", catalog)
    refit = lablr("fit", "--model", tiny_bundle, "--catalog", catalog, "--out", tmp_path / "refit", *TINY_RULE_OPTIONS)
    assert refit.exit_code == 0, refit.output
    added = lablr("fit", "--model", tmp_path / "refit", "--catalog", catalog, "--out", tmp_path / "added", "--add",
                  *TINY_RULE_OPTIONS)
    assert added.exit_code == 0, added.output
    assert "Added 0 photos to the tag statistics; skipped" in added.output  # tests/test_fit_add.py: the rest
    before = json.loads((tmp_path / "refit" / "manifest.json").read_text())["tags"]
    after = json.loads((tmp_path / "added" / "manifest.json").read_text())["tags"]
    assert before == after


def test_import_fit_and_train_draw_bars_on_a_terminal_and_none_in_a_log(tiny_bundle, tmp_path, shapes_csv):
    """A bar redraws itself with carriage returns: in a log file or a CI log each redraw would stay (Keras's,
    on stdout, writes a new line every 50 ms there instead: training says a line an epoch)."""
    _, shown = on_a_terminal([*LABLR, "import", "csv", str(shapes_csv), "--catalog", str(tmp_path / "shown.db")])
    assert b"Importing csv" in shown and b"108img" in shown, shown
    catalog = str(tmp_path / "c.db")
    commands = [["import", "csv", str(shapes_csv), "--catalog", catalog],
                ["fit", "--model", str(tiny_bundle), "--catalog", catalog, "--out", str(tmp_path / "refit"),
                 *TINY_RULE_OPTIONS],
                ["train", "--catalog", catalog, "--out", str(tmp_path / "trained"), "--encoder", "vae", "--image-size",
                 "16", "--latent-dim", "4", "--epochs", "2", *TINY_RULE_OPTIONS]]
    for command in commands:
        logged = subprocess.run([*LABLR, *command], capture_output=True, text=True, timeout=300)
        assert logged.returncode == 0, logged.stderr
        both = logged.stdout + logged.stderr
        assert "\r" not in both and "%|" not in both and "img/s" not in both and "\x1b[" not in both, both
    assert len([line for line in logged.stdout.splitlines() if "/step" in line]) == 2, logged.stdout  # an epoch each


def test_console_script_prints_errors_without_traceback(tmp_path):
    missing = tmp_path / "nothing-here"
    result = subprocess.run([sys.executable, "-m", "lablr.core.cli", "evaluate", "--model", str(missing)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "No model bundle" in result.stderr and "Traceback" not in result.stderr


def test_pictures_leave_no_pyplot_state_and_are_repeatable(tiny_bundle):
    import matplotlib.pyplot as plt

    from lablr.core.model import Model

    model = Model.load(tiny_bundle)
    photo = np.asarray(draw_shape("red", "square").resize((16, 16)))
    first, second = model.plot(photo, 3), model.plot(photo, 3)
    assert first == second and first.startswith(b"\x89PNG")
    assert plt.get_fignums() == []


def test_training_records_the_split_in_the_catalog(tiny_bundle):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    catalog = Catalog(tiny_bundle.parent / "catalog.db")
    splits = catalog.splits()
    assert sorted(k for k, side in splits.items() if side == "test") == manifest["data"]["test_keys"]
    assert len(splits) == manifest["data"]["train_photos"] + manifest["data"]["test_photos"]
