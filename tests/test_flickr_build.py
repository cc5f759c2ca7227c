"""`lablr build flickr`: fetch, prepare, train (pixel VAE), fit, evaluate in one resumable command,
against the fake Flickr on 127.0.0.1."""

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import LABLR, TINY_RULE_OPTIONS
from fake_flickr import COLOURS, SHAPES, FakeFlickr, jpeg_bytes, make_photos
from test_flickr import user_photos, wait_for

from lablr.core.data.catalog import Catalog
from lablr.core.model import Model

TAGS = ",".join(COLOURS + SHAPES)
TINY = [*TINY_RULE_OPTIONS, "--calls-per-hour", "1e7", "--backoff", "0.01"]


def start_build(fake, tmp_path, out, *options):
    env = {**os.environ, **fake.env(), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    command = [*LABLR, "build", "flickr", "--tags", TAGS, "--per-tag", "100", "--out", str(out), *TINY, *options]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process):
    output, errors = process.communicate(timeout=600)
    assert process.returncode == 0, output + errors
    return output, errors


@pytest.mark.slow
def test_build_killed_while_downloading_and_while_training_continues_to_a_served_model(tmp_path, tiny_bundle):
    fake = FakeFlickr(photos=make_photos(per_kind=8), image_delay=0.3).start()
    out = tmp_path / "my-flickr"
    catalog, images = Path(f"{out}.db"), Path(f"{out}.db.flickr")
    try:
        # Killed while downloading
        process = start_build(fake, tmp_path, out, "--model", str(tiny_bundle), "--epochs", "40")
        assert wait_for(lambda: len(list(images.rglob("*.jpg"))) >= 5, 120), "no download started"
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        on_disk = {p.stem for p in images.rglob("*.jpg")}
        requests_at_kill = dict(fake.image_requests)
        assert not out.exists()

        # Killed while training the VAE (its checkpoints are in OUT.work)
        fake.image_delay = 0
        process = start_build(fake, tmp_path, out, "--model", str(tiny_bundle), "--epochs", "40")
        assert wait_for(lambda: any(Path(f"{out}.work").rglob("*")), 300), "training did not start"
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        assert not out.exists()

        output, errors = finish(start_build(fake, tmp_path, out, "--model", str(tiny_bundle), "--epochs", "40"))
        wanted = {p.id for p in fake.photos}
        assert {p["key"] for p in Catalog(catalog).photos()} == {f"flickr:{i}" for i in wanted}
        asked_again = {i for i, n in fake.image_requests.items() if n > requests_at_kill.get(i, 0)}
        assert not asked_again & on_disk  # what was whole on disk was not downloaded again
        assert set(fake.size_requests) == {"url_q"}  # the tiny VAE's 16 px: Flickr's 150 px squares

        # The figures against the popularity baseline, and the command that serves the model
        assert "popularity" in output and "mahalanobis" in output and "loglik" in output
        assert f"lablr serve --model {out}" in output
        # the one overall display: off a terminal, a plain line as each phase ends, and no bar redrawn in the log
        assert "\nTraining the encoder: done in " in errors and "\nImages downloaded: done in " in errors, errors
        assert "\r" not in errors and "%|" not in errors
        model = Model.load(out)
        figures = model.manifest.evaluation
        assert figures["mahalanobis"]["photos"] == model.manifest.data.test_photos > 0
        assert set(COLOURS) | set(SHAPES) <= set(model.tag_model.tags)
        assert not {"nikon", "canon", "iphone", "2015"} & set(model.tag_model.tags)  # stopped: not visual
        assert model.part_names["encoder"] == "vae" and model.image_size == Model.load(tiny_bundle).image_size

        # Run again: nothing to download, nothing to train, the same bundle
        created = json.loads((out / "manifest.json").read_text())["created"]
        calls, images_asked = sum(fake.calls.values()), sum(fake.image_requests.values())
        output, _ = finish(start_build(fake, tmp_path, out, "--model", str(tiny_bundle), "--epochs", "40", "--quiet"))
        assert "already built from them" in output and f"lablr serve --model {out}" in output
        assert json.loads((out / "manifest.json").read_text())["created"] == created
        assert sum(fake.image_requests.values()) == images_asked and sum(fake.calls.values()) == calls
    finally:
        fake.stop()


def test_build_with_a_users_photos_learns_their_tags_beside_the_popular_ones(tmp_path, tiny_bundle):
    from lablr_server import running_server

    mine = user_photos(count=16)
    fake = FakeFlickr(photos=make_photos(per_kind=8) + mine).start()
    out = tmp_path / "mine"
    try:
        output, _ = finish(start_build(fake, tmp_path, out, "--model", str(tiny_bundle), "--epochs", "3",
                                       "--user", "https://www.flickr.com/photos/mariesky/", "--quiet"))
        model = Model.load(out)
        assert {"bruno", "lakegeneva"} <= set(model.tag_model.tags)  # the user's own vocabulary
        assert set(COLOURS) | set(SHAPES) <= set(model.tag_model.tags)  # and the popular one
        assert "Your own held-out photos:" in output
        own_test = [k for k in model.manifest.data.test_keys if k in {f"flickr:{p.id}" for p in mine}]
        assert 0 < len(own_test) < len(mine)  # the user's photos split photo by photo, not as one owner

        with running_server(out) as (base, _):
            answer = httpx.post(base + "/api/v1/suggest", params={"k": 20}, timeout=60,
                                files=[("image", ("photo.jpg", jpeg_bytes(mine[0], 320, 240), "image/jpeg"))])
        assert answer.status_code == 200, answer.text
        assert "bruno" in {s["tag"] for s in answer.json()["results"][0]["suggestions"]}
    finally:
        fake.stop()


def effnet_available():
    try:
        from lablr.plugins.effnet import weights_path

        weights_path()
        return True
    except Exception:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not effnet_available(), reason="needs lablr[pretrained]")
def test_build_on_the_pretrained_model_downloads_url_n_and_fits_without_training(tmp_path):
    fake = FakeFlickr(photos=make_photos(per_kind=6)).start()
    out = tmp_path / "effnet-flickr"
    try:
        output, errors = finish(start_build(fake, tmp_path, out, "--model", "openclipart-effnet"))
        assert set(fake.size_requests) == {"url_n"}  # 320x240 for its 224 px
        assert "Training the encoder" not in errors
        model = Model.load(out)
        assert model.part_names["encoder"] == "effnet-lite0" and not Path(f"{out}.work").exists()
        assert model.manifest.evaluation["mahalanobis"]["map"] > model.manifest.evaluation["popularity"]["map"]
        assert f"lablr serve --model {out}" in output
    finally:
        fake.stop()
