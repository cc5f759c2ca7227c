"""Sharded fitting: parts fitted apart and merged give the model one fit gives."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import COLOURS, SHAPES, TINY_RULE_OPTIONS, TINY_RULES, draw_shape, tag_statistics

from lablr.core.cli import cli
from lablr.core.pipeline.shard import shard_of


def lablr(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def ok(*args):
    code, output = lablr(*args)
    assert code == 0, output
    return output


def drawings(size=16):
    return np.stack([np.asarray(draw_shape(c, s, seed=i).resize((size, size)))
                     for i, (c, s) in enumerate((c, s) for c in COLOURS for s in SHAPES)])


def assert_same_model(one, other):
    from lablr.core.model import Model

    expected, found = tag_statistics(one), tag_statistics(other)
    assert list(found["tags"]) == list(expected["tags"])
    np.testing.assert_array_equal(found["counts"], expected["counts"])
    for name in "sums", "outer_upper":
        np.testing.assert_allclose(found[name], expected[name], rtol=1e-9, atol=1e-9)
    images = drawings()
    single, merged = Model.load(one), Model.load(other)
    np.testing.assert_array_equal(merged.fitted_photos.ids, single.fitted_photos.ids)  # the record of its photos
    for a, b in zip(single.suggest(images, 6), merged.suggest(images, 6)):
        assert [s.tag for s in a] == [s.tag for s in b]
        np.testing.assert_allclose([s.score for s in a], [s.score for s in b], rtol=1e-6)


@pytest.fixture(scope="module")
def single_fit(tiny_bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "one"
    ok("fit", "--model", tiny_bundle, "--catalog", tiny_bundle.parent / "catalog.db", "--out", out, *TINY_RULE_OPTIONS)
    return out


def fit_parts(bundle, directory, count, *extra, catalog=None):
    catalog = catalog or bundle.parent / "catalog.db"
    parts = []
    for index in range(count):
        part = directory / f"part-{index}"
        output = ok("fit", "--model", bundle, "--catalog", catalog, "--shard", f"{index}/{count}", "--out", part,
                    *TINY_RULE_OPTIONS, *extra)
        assert f"Saved part {index}/{count} at {part}" in output
        parts.append(part)
    return parts


def test_three_shards_merged_equal_one_fit(tiny_bundle, single_fit, tmp_path):
    parts = fit_parts(tiny_bundle, tmp_path, 3)
    photos = [json.loads((p / "part.json").read_text())["photos"] for p in parts]
    train_photos = json.loads((single_fit / "manifest.json").read_text())["data"]["train_photos"]
    assert all(photos) and sum(photos) == train_photos  # each encoded only its own shard
    assert not (tmp_path / "part-0" / "encoder.keras").exists()  # statistics only; the encoder is not refitted

    output = ok("merge", *reversed(parts), "--out", tmp_path / "merged")
    assert "Saved" in output and "from 3 parts" in output
    assert_same_model(single_fit, tmp_path / "merged")
    manifest = json.loads((tmp_path / "merged" / "manifest.json").read_text())
    assert manifest["data"] == json.loads((single_fit / "manifest.json").read_text())["data"]


def test_shards_split_by_key_hash():
    keys = [f"photo-{i}" for i in range(3000)]
    counts = np.bincount([shard_of(k, 3) for k in keys], minlength=3)
    assert counts.min() > 900  # about a third each
    assert [shard_of(k, 3) for k in keys] == [shard_of(k, 3) for k in keys]


def test_merge_refuses_parts_that_do_not_belong_together(tiny_bundle, tmp_path, tmp_path_factory):
    from lablr.core.data.selection import Rules
    from lablr.core.pipeline.train import train

    parts = fit_parts(tiny_bundle, tmp_path / "a", 2)
    other_rules = fit_parts(tiny_bundle, tmp_path / "b", 2, "--min-train-photos", "4")
    other_split = fit_parts(tiny_bundle, tmp_path / "c", 3)
    other_encoder = tmp_path_factory.mktemp("other") / "vae3"
    train(tiny_bundle.parent / "catalog.db", other_encoder, rules=Rules(**TINY_RULES), epochs=1, progress=False,
          encoder_settings={"image_size": 16, "latent_dim": 3, "filters": 8})
    foreign = fit_parts(other_encoder, tmp_path / "d", 2, catalog=tiny_bundle.parent / "catalog.db")
    not_a_part = tmp_path / "empty"
    not_a_part.mkdir()
    damaged = tmp_path / "damaged"
    shutil.copytree(parts[1], damaged)
    with open(damaged / "tag_stats.npz", "ab") as file:
        file.write(b"\0")

    for given, message in [
        ([parts[0], foreign[1]], "were fitted with a different encoder"),
        ([parts[0], other_rules[1]], "different data source or selection rules"),
        ([parts[0], other_split[1], other_split[2]], "of 2 shards"),
        ([parts[0]], "shard 1/2 missing"),
        ([parts[0], parts[0], parts[1]], "shard 0/2 is given more than once"),
        ([parts[0], not_a_part], "is not a part written by `lablr fit --shard`"),
        ([parts[0], damaged], "does not match its checksum"),
    ]:
        code, output = lablr("merge", *given, "--out", tmp_path / "merged")
        assert code == 1 and message in output, output
        assert len(output.strip().splitlines()) == 1 and "Traceback" not in output
    assert not (tmp_path / "merged").exists()

    code, output = lablr("merge", *parts, "--out", tmp_path / "merged", "--model", other_encoder)
    assert code == 1 and "its encoder is not the one the parts were fitted with" in output


def test_bad_shard_options_fail_in_one_line(tiny_bundle, tmp_path):
    catalog = tiny_bundle.parent / "catalog.db"
    for args, message in [(["--shard", "3/3"], "I counts from 0 to N-1"), (["--shard", "x"], "--shard takes I/N"),
                          (["--shard", "0/2", "--add"], "--add does not combine"),
                          (["--shards", "2"], "--shards N runs on a cluster")]:
        code, output = lablr("fit", "--model", tiny_bundle, "--catalog", catalog, "--out", tmp_path / "p", *args)
        assert code != 0 and message in output, output
    assert not (tmp_path / "p").exists()


def test_a_part_manifest_cut_short_or_malformed_is_refused_in_one_line(tiny_bundle, tmp_path):
    from lablr.core.errors import LablrError
    from lablr.core.pipeline.shard import read_part

    [part] = fit_parts(tiny_bundle, tmp_path, 1)
    whole = (part / "part.json").read_text().rstrip()
    for length in range(len(whole)):
        (part / "part.json").write_text(whole[:length])
        with pytest.raises(LablrError):
            read_part(part)
    manifest = json.loads(whole)
    for change in [{"shard": [1, 1]}, {"shard": "0/1"}, {"files": {"../tag_stats.npz": "x"}}, {"files": []},
                   {"tag_model": {"name": "gaussian", "settings": []}}, {"photos": "12"}, {"latent_space": None}]:
        (part / "part.json").write_text(json.dumps({**manifest, **change}))
        with pytest.raises(LablrError, match="is damaged"):
            read_part(part)
    (part / "part.json").write_text(json.dumps({**manifest, "tag_model": {"name": "gaussian",
                                                                          "settings": {"shrinkage": "x"}}}))
    code, output = lablr("merge", part, "--out", tmp_path / "merged")
    assert code == 1 and "The tag model settings in" in output and len(output.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def shared_bundle(tiny_bundle, tmp_path_factory):
    """A bundle whose tag model has settings other than the defaults: a covariance shared by all tags
    worth 5 photos, scored by loglik (the shipped default model's kind of recipe)."""
    from lablr.core.data.selection import Rules
    from lablr.core.pipeline.train import train

    out = tmp_path_factory.mktemp("shared") / "shared"
    train(tiny_bundle.parent / "catalog.db", out, encoder_settings={"image_size": 16, "latent_dim": 4, "filters": 8},
          tag_model_settings={"shared": 5.0}, scorer="loglik", rules=Rules(**TINY_RULES), epochs=1, progress=False)
    return out


def test_shards_merged_equal_one_fit_for_a_tag_model_with_other_settings(tiny_bundle, shared_bundle, tmp_path):
    catalog = tiny_bundle.parent / "catalog.db"
    ok("fit", "--model", shared_bundle, "--catalog", catalog, "--out", tmp_path / "one", *TINY_RULE_OPTIONS)
    parts = fit_parts(shared_bundle, tmp_path, 2, catalog=catalog)
    ok("merge", *parts, "--out", tmp_path / "merged")

    one, merged = (json.loads((tmp_path / name / "manifest.json").read_text()) for name in ("one", "merged"))
    assert merged["parts"] == one["parts"]
    assert merged["parts"]["tag_model"]["settings"] == {"shrinkage": "oas", "shared": 5.0}
    assert merged["data"] == one["data"] and merged["training"] == one["training"]
    assert merged["calibration"].keys() == one["calibration"].keys() == {"loglik", "mahalanobis"}
    for scorer, coefficients in one["calibration"].items():
        for name, value in coefficients.items():
            assert merged["calibration"][scorer][name] == pytest.approx(value, rel=1e-6, abs=1e-9), (scorer, name)
    assert_same_model(tmp_path / "one", tmp_path / "merged")
