"""The photo evaluation: its labels are well-formed, and its benchmark runs end to end on real photos."""

import io
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_photos  # noqa: E402

LABEL_FILES = {"photos": bench_photos.LABELS, "tuning": bench_photos.LABELS.parent / "tuning.toml"}
GCOMPRIS_FARM = Path("/usr/share/gcompris-qt/rcc/explore_farm_animals.rcc")


def bench(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_photos.py"), *args],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("name", LABEL_FILES)
def test_every_photo_has_a_set_a_source_and_tags_as_flickr_writes_them(name):
    raw = tomllib.loads(LABEL_FILES[name].read_text(encoding="utf-8"))
    photos = bench_photos.load_labels(LABEL_FILES[name])  # raises on anything malformed
    assert len(photos) == len(raw["photo"]) == len({p.source for p in photos})
    for entry in raw["photo"]:
        assert entry["set"] in bench_photos.SETS and bench_photos.parse_source(entry["source"])
        assert entry["tags"] and all(t == t.lower() and " " not in t for t in entry["tags"])
    assert not any("tuxpaint" in p.source for p in photos), "Tux Paint's stamps are kept for an independent check"


def test_the_evaluation_has_the_photos_the_issue_asks_for_and_none_of_the_tuning_photos():
    photos = bench_photos.load_labels(LABEL_FILES["photos"])
    per_set = {s: sum(p.set == s for p in photos) for s in bench_photos.SETS}
    assert per_set["everyday"] >= 40 and per_set["isolated"] >= 40 and per_set["unreadable"] >= 5
    tuning = bench_photos.load_labels(LABEL_FILES["tuning"])
    assert not {p.source for p in photos} & {p.source for p in tuning}


def test_groups_expand_and_a_malformed_file_is_one_clear_line(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[groups]\npet = ["pet", "@animal"]\nanimal = ["animal"]\n'
                    '[[photo]]\nsource = "pypi:scikit-image:skimage/data/chelsea.png"\nset = "everyday"\n'
                    'tags = ["cat", "@pet"]\n')
    assert bench_photos.load_labels(good)[0].tags == {"cat", "pet", "animal"}
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace('"cat"', '"Tabby Cat"'))
    result = bench("--labels", str(bad))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "'Tabby Cat'" in result.stderr


def test_the_benchmark_measures_a_real_model_on_the_photos_python_packages_ship():
    result = bench("--from", "pypi", "--model", "openclipart-effnet", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    print(json.dumps(report["models"], indent=1))  # the figures, for whoever runs pytest -s
    assert report["available"] == report["photos"] > 0 and report["skipped"] == {}
    sets = report["models"]["openclipart-effnet"]
    assert set(sets) == {*bench_photos.SETS, "undecodable_files"} and sets["undecodable_files"] == []
    for figures in (sets[s] for s in bench_photos.SETS):
        assert figures["photos"] > 0 and 0 <= figures["precision_at_3"] <= 1 and 0 <= figures["max_score"] <= 1
        assert figures["confident_right"] is None or 0 <= figures["confident_right"] <= 1


def test_verbose_marks_each_photos_top_five_and_missing_packages_are_counted(tmp_path):
    labels = tmp_path / "labels.toml"
    labels.write_text('[[photo]]\nsource = "pypi:scikit-image:skimage/data/chelsea.png"\nset = "everyday"\n'
                      'shows = "a cat"\ntags = ["cat"]\n'
                      '[[photo]]\nsource = "debian:no-such-package:/usr/share/no-such-package/x.jpg"\n'
                      'set = "isolated"\ntags = ["x"]\n')
    result = bench("--labels", str(labels), "--model", "openclipart-effnet", "--verbose")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if "chelsea.png (a cat)" in x)
    assert line.count(", ") == 4 and all(m[0] in "+-" for m in line.split(": ", 1)[1].split(", "))
    assert "1 of 2 photos found." in result.stdout
    assert "skipped 1 from no-such-package: apt-get install no-such-package" in result.stdout


@pytest.mark.skipif(not GCOMPRIS_FARM.exists(), reason="gcompris-qt-data is not installed "
                    "(bash scripts/photo_eval/install_packages.sh)")
def test_photos_inside_qt_resource_bundles_are_read_out_whole():
    files = bench_photos.qt_resources(GCOMPRIS_FARM)
    cat = files["/gcompris/src/activities/explore_farm_animals/resource/animals/cat.webp"]
    with Image.open(io.BytesIO(cat)) as image:
        image.load()
        assert image.format == "WEBP" and min(image.size) >= 200
