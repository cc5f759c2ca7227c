"""The reference data set, Debian's OpenClipart, and the default bundle trained on it."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from lablr.core import defaults
from lablr.core.bundle import bundled_root
from lablr.core.data.catalog import Catalog
from lablr.core.data.importing import import_source
from lablr.core.data.selection import Rules, select
from lablr.plugins import openclipart

pytestmark = pytest.mark.skipif(not Path(openclipart.installed_root(), "svg").is_dir(),
                                reason="needs Debian's openclipart-png and openclipart-svg (scripts/test.sh installs them)")


@pytest.fixture(scope="module")
def openclipart_catalog(tmp_path_factory):
    catalog = tmp_path_factory.mktemp("openclipart") / "catalog.db"
    report = import_source("openclipart", None, catalog, progress=False)
    assert report["added"] > 7000
    return catalog


def test_import_keeps_authors_tags_and_creators(openclipart_catalog):
    photos = Catalog(openclipart_catalog).photos()
    tags = Counter(t for p in photos for t in p["tags"])
    assert tags["flag"] > 300 and tags["food"] > 100 and "unsorted" not in tags
    assert sum(len(p["tags"]) > 1 for p in photos) > len(photos) / 2  # multi-label, like Flickr
    assert Counter(p["owner"] for p in photos).most_common(1)[0] == ("codifiedivining", 1375)
    assert len({p["key"] for p in photos}) == len(photos)
    assert all(p["path"].endswith(".png") and Path(p["path"]).exists() for p in photos[:50])


def test_selection_caps_creators_and_is_deterministic(openclipart_catalog):
    photos = Catalog(openclipart_catalog).photos()
    first, second = select(photos, Rules()), select(list(reversed(photos)), Rules())
    assert {p["key"] for p in first.test} == {p["key"] for p in second.test} and first.tags == second.tags
    per_creator = Counter(p["owner"] for p in first.train + first.test)
    assert max(per_creator.values()) <= 100
    assert min(first.counts.values()) >= 20
    assert 0.17 < len(first.test) / (len(first.train) + len(first.test)) < 0.23


def run_lablr(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lablr.core.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


BARS = {"openclipart-vae": {"mahalanobis": 0.45, "loglik": 0.50}, "openclipart-effnet": {"loglik": 0.70}}


@pytest.mark.parametrize("bundle", sorted(BARS))
def test_bundled_evaluation_is_reproducible_and_meets_the_bar(bundle, tmp_path):
    result = run_lablr("evaluate", "--model", bundle, "--json", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout)
    recorded = json.loads((bundled_root() / bundle / "manifest.json").read_text())["evaluation"]
    for name in ("mahalanobis", "loglik", "popularity"):
        # Another CPU may round the encoder's float32 sums differently and swap a near-tie or two.
        assert measured[name]["map"] == pytest.approx(recorded[name]["map"], abs=2e-3)
        assert measured[name]["photos"] == recorded[name]["photos"]
    for name, bar in BARS[bundle].items():
        assert measured[name]["map"] >= bar
    assert measured["popularity"]["map"] < 0.30
    default_scorer = json.loads((bundled_root() / bundle / "manifest.json").read_text())["parts"]["scorer"]["name"]
    assert measured[default_scorer]["map"] >= measured[default_scorer]["uncalibrated_map"]  # ranking loses nothing
    assert measured["ece"] == pytest.approx(recorded[default_scorer]["ece"], abs=2e-3)
    if bundle == defaults.BENCHMARK_MODEL:  # the original's VAE is measured, not held to it (docs/quality.md)
        assert measured["ece"] <= 0.05  # the probabilities shown mean what they say


def test_default_bundle_suggests_for_a_fresh_photo(tmp_path):
    flag = next(Path(openclipart.installed_root(), "png").rglob("*flag*.png"))
    result = run_lablr("suggest", flag, "--json", "--k", "5")
    assert result.returncode == 0, result.stderr[-2000:]
    suggestions = json.loads(result.stdout)["results"][0]["suggestions"]
    assert len(suggestions) == 5 and all(s["tag"] for s in suggestions)


def test_evaluate_without_openclipart_says_how_to_install_it_or_where_to_point(tmp_path):
    result = run_lablr("evaluate", "--model", defaults.BENCHMARK_MODEL,
                       env={"XDG_CACHE_HOME": str(tmp_path), "LABLR_OPENCLIPART_ROOT": str(tmp_path)})
    assert result.returncode == 1
    assert "apt-get install openclipart-png openclipart-svg" in result.stderr and "Traceback" not in result.stderr
    assert f"not installed under {tmp_path}" in result.stderr and "set LABLR_OPENCLIPART_ROOT" in result.stderr


def test_evaluating_the_default_says_where_its_photo_figures_come_from():
    result = run_lablr("evaluate")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "scripts/bench_photos.py" in result.stderr and f"--model {defaults.BENCHMARK_MODEL}" in result.stderr
