"""A bundle records its recipe, and `lablr train --like` builds a model with it from another catalog."""

import json

from click.testing import CliRunner
from conftest import TINY_RULE_OPTIONS

from lablr.core.cli import cli
from lablr.core.pipeline.recipe import Recipe


def lablr(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def manifest(bundle):
    return json.loads((bundle / "manifest.json").read_text())


def test_the_shipped_bundles_record_the_recipes_that_rebuild_them():
    effnet = Recipe.of_bundle("openclipart-effnet")
    assert effnet.names() == {"encoder": "effnet-lite0", "tag_model": "gaussian", "scorer": "loglik",
                              "visualizer": "pca"}
    assert effnet.settings("encoder")["latent_dim"] == 128
    assert effnet.settings("tag_model") == {"shrinkage": "oas", "shared": 100.0}
    vae = Recipe.of_bundle("openclipart-vae")
    assert vae.names()["encoder"] == "vae" and vae.names()["scorer"] == "mahalanobis"
    assert vae.settings("encoder") == {"image_size": 64, "latent_dim": 32, "filters": 32, "beta": 1.0,
                                            "learning_rate": 0.001}
    assert vae.epochs == 60
    for recipe in effnet, vae:
        assert recipe.source == "openclipart" and recipe.rules.per_owner_cap == 100


def test_train_like_a_bundle_builds_its_parts_and_settings_from_another_catalog(tiny_bundle, tmp_path):
    catalog = tiny_bundle.parent / "catalog.db"
    like = tmp_path / "like"
    code, output = lablr("train", "--catalog", catalog, "--like", tiny_bundle, "--out", like, "--epochs", "1",
                         *TINY_RULE_OPTIONS)
    assert code == 0 and f"Saved {like}" in output, output
    original, built = manifest(tiny_bundle), manifest(like)
    assert built["parts"] == original["parts"]
    assert built["training"] == {"epochs": 1, "seed": 0}
    assert built["calibration"].keys() == original["calibration"].keys()
    assert Recipe.of_bundle(like).parts == Recipe.of_bundle(tiny_bundle).parts


def test_train_like_refuses_part_options_in_one_line(tiny_bundle, tmp_path):
    code, output = lablr("train", "--catalog", tiny_bundle.parent / "catalog.db", "--like", tiny_bundle,
                         "--encoder", "vae", "--scorer", "loglik", "--out", tmp_path / "x")
    assert code == 1 and "leave out --encoder, --scorer" in output and len(output.strip().splitlines()) == 1
    code, output = lablr("train", "--catalog", tiny_bundle.parent / "catalog.db", "--like", tmp_path / "nothing",
                         "--out", tmp_path / "x")
    assert code == 1 and "No model bundle at" in output
    assert not (tmp_path / "x").exists()
