"""Which rules choose the training and held-out photos: one answer, with defaults from the source.

OpenClipart keeps Lablr's defaults (at most 100 images per creator, a hash split), so its
figures do not move; Flickr photos are split by owner with non-visual tags dropped. When
`lablr prepare` has recorded a split, `lablr train` and `lablr fit` use its rules, and so its split.
"""

from dataclasses import replace

import pytest
from click.testing import CliRunner
from conftest import TINY_RULES

from lablr.core.bundle import bundled_names, bundled_root, read_manifest
from lablr.core.cli import cli
from lablr.core.data.catalog import Catalog
from lablr.core.data.selection import Rules, choose_rules, source_rules
from lablr.core.defaults import NON_VISUAL_TAGS
from lablr.core.errors import LablrError
from lablr.core.parts import PhotoRecord


def lablr(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_openclipart_keeps_the_rules_its_bundled_models_were_measured_with():
    rules = source_rules("openclipart")
    assert rules == Rules() and rules.per_owner_cap == 100 and not rules.split_by_owner and rules.stop_tags == ()
    for name in bundled_names():
        data = read_manifest(bundled_root() / name).data  # None for a model trained on no catalog (photos)
        assert data is None or data.rules == rules.as_dict()


def test_flickr_photos_are_split_by_owner_without_non_visual_tags():
    rules = source_rules("flickr")
    assert rules.split_by_owner and rules.stop_tags == NON_VISUAL_TAGS
    assert replace(rules, split_by_owner=False, stop_tags=()) == Rules()


def test_a_source_whose_plugin_says_nothing_gets_lablrs_defaults():
    for source in ("csv", "folder", "no-such-source", None):
        assert source_rules(source) == Rules()


def test_unknown_rules_are_a_clear_error():
    with pytest.raises(LablrError, match="Unknown selection rules: per_creator_cap"):
        Rules.from_dict({"per_creator_cap": 3})


def records(source, count=3):
    return [PhotoRecord(key=f"{source}:{i}", path=f"/nowhere/{i}.png", tags=["sky"], owner="someone")
            for i in range(count)]


def test_without_a_source_the_catalogs_only_source_decides(tmp_path):
    catalog = Catalog(tmp_path / "c.db")
    catalog.add(records("flickr"), "flickr")
    assert choose_rules(catalog) == (source_rules("flickr"), None)
    catalog.add(records("csv"), "csv")
    assert choose_rules(catalog) == (Rules(), None)  # two sources: Lablr's defaults
    assert choose_rules(catalog, "flickr") == (source_rules("flickr"), "flickr")


def test_the_recorded_rules_come_first_and_given_options_on_top(tmp_path):
    catalog = Catalog(tmp_path / "c.db")
    catalog.add(records("csv"), "csv")
    recorded = replace(Rules(), test_fraction=0.3, per_owner_cap=7)
    catalog.save_splits({"csv:0": "test"}, rules=recorded.as_dict(), source="csv")
    assert choose_rules(catalog) == (recorded, "csv")
    assert choose_rules(catalog, "csv", {"per_owner_cap": 9}) == (replace(recorded, per_owner_cap=9), "csv")
    assert choose_rules(catalog, recorded=False) == (Rules(), None)  # what `lablr prepare` starts from
    assert choose_rules(catalog, "flickr")[0] == source_rules("flickr")  # recorded for another source
    catalog.save_splits({"csv:0": "train"})  # a split recorded without its rules is not trusted
    assert choose_rules(catalog) == (Rules(), None)


def test_train_and_fit_use_the_split_prepare_recorded(tmp_path, shapes_csv):
    catalog, model = tmp_path / "c.db", tmp_path / "m"
    lablr("import", "csv", shapes_csv, "--catalog", catalog)
    prepared = lablr("prepare", "--catalog", catalog, "--size", "16", "--quiet", "--test-fraction", "0.3",
                     "--per-owner-cap", "1000", "--min-tag-photos", TINY_RULES["min_tag_photos"],
                     "--min-train-photos", TINY_RULES["min_train_photos"])
    assert "Next" not in prepared and "30% held out, split by photo" in prepared
    recorded = Catalog(catalog).recorded_rules()
    assert recorded["rules"]["test_fraction"] == 0.3 and recorded["rules"]["per_owner_cap"] == 1000
    held_out = sorted(key for key, side in Catalog(catalog).splits().items() if side == "test")

    lablr("train", "--catalog", catalog, "--out", model, "--image-size", 16, "--latent-dim", 4, "--epochs", 1)
    data = read_manifest(model).data
    assert data.rules == recorded["rules"] and data.test_keys == held_out

    lablr("fit", "--model", model, "--catalog", catalog, "--out", tmp_path / "refit")
    data = read_manifest(tmp_path / "refit").data
    assert data.rules == recorded["rules"] and data.test_keys == held_out

    lablr("fit", "--model", model, "--catalog", catalog, "--out", tmp_path / "other", "--test-fraction", "0.5")
    data = read_manifest(tmp_path / "other").data
    assert data.rules == {**recorded["rules"], "test_fraction": 0.5} and len(data.test_keys) > len(held_out)
