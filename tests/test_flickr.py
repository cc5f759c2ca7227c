"""The Flickr pipeline against a fake Flickr on 127.0.0.1: fetch, resume after SIGKILL, prepare, train.

No test touches flickr.com: LABLR_FLICKR_API_URL points flickrapi at tests/fake_flickr.py, and
the image URLs are the ones the fake's answers give.
"""

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import LABLR, TINY_RULE_OPTIONS
from fake_flickr import COLOURS, SHAPES, FakeFlickr, FakePhoto, make_photos
from PIL import Image

from lablr.core.cli import cli
from lablr.core.data.catalog import Catalog
from lablr.core.defaults import NON_VISUAL_TAGS
from lablr.core.errors import LablrError
from lablr.plugins.flickr.api import FetchSettings, flickr_tag, photo_record
from lablr.plugins.flickr.downloads import Retry, TokenBucket
from lablr.plugins.flickr.fetcher import fetch
from lablr.plugins.flickr.sizes import preference

FAST = FetchSettings(per_tag=1000, per_page=5, calls_per_hour=1e7, burst=100, workers=4, timeout=1.0,
                     retry=Retry(attempts=5, backoff=0.01, cap=0.05), image_extras=preference(64))


@pytest.fixture
def flickr(monkeypatch, tmp_path):
    fake = FakeFlickr(slow_seconds=3.0).start()
    for name, value in fake.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # never the user's own key file
    yield fake
    fake.stop()


def catalog_rows(path):
    with sqlite3.connect(path) as db:
        return db.execute("select key, status, path, owner, license, title, url from photos").fetchall()


def tags_of(path):
    return {p["key"]: set(p["tags"]) for p in Catalog(path).photos()}


def expected_tags(photo):
    return {t for t in (flickr_tag(raw) for raw in photo.tags) if t}


def test_fetch_pages_through_every_tag_and_records_each_photo_once_with_all_its_tags(flickr, tmp_path):
    catalog = tmp_path / "flickr.db"
    report = fetch(catalog, ["red", "circle", "blue"], settings=FAST, progress=False)

    wanted = {p.id: p for p in flickr.photos if {"red", "circle", "blue"} & set(p.tags)}
    rows = catalog_rows(catalog)
    assert sorted(key for key, *_ in rows) == sorted(f"flickr:{i}" for i in wanted)  # red circles: once
    # Paging: every page of every tag asked once, 5 photos a page
    for tag in ("red", "circle", "blue"):
        pages = -(-len(flickr.photos_tagged(tag)) // 5)
        assert [page for t, page in flickr.searches if t == tag] == list(range(1, pages + 1))
    assert report.found == sum(len(flickr.photos_tagged(t)) for t in ("red", "circle", "blue"))
    assert report.new == len(wanted) and report.downloaded == len(wanted)
    # All of Flickr's tags (machine tags dropped), owner, licence, title, URL
    assert tags_of(catalog) == {f"flickr:{i}": expected_tags(p) for i, p in wanted.items()}
    for key, status, path, owner, license, title, url in rows:
        photo = wanted[key.split(":")[1]]
        assert (status, owner, license, title, url) == ("ok", photo.owner, str(photo.license), photo.title,
                                                        flickr.url_of(photo, "url_q"))
        assert Image.open(path).size == (150, 150)  # FAST is sized for the 64 px default: url_q
    assert set(flickr.image_requests) == set(wanted) and max(flickr.image_requests.values()) == 1
    assert not list(Path(f"{catalog}.flickr").rglob("*.part"))

    # A second run asks Flickr nothing more: every search is done and every image is here
    calls, images = sum(flickr.calls.values()), sum(flickr.image_requests.values())
    again = fetch(catalog, ["red", "circle", "blue"], settings=FAST, progress=False)
    assert (again.new, again.downloaded) == (0, 0)
    assert (sum(flickr.calls.values()), sum(flickr.image_requests.values())) == (calls, images)


def test_fetch_into_a_folder_of_the_users_removes_only_its_own_half_written_images(flickr, tmp_path):
    downloads = tmp_path / "Downloads"  # `lablr fetch --images ~/Downloads`
    theirs = [downloads / "film.mkv.part", downloads / "12" / "notes.txt.part", downloads / "12" / "34.jpg.part.old"]
    for path in theirs:  # a browser's and other programs' partial files
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not Lablr's")
    killed_run = downloads / "45" / "53000000045.jpg.part"
    killed_run.parent.mkdir()
    killed_run.write_bytes(b"half an image")
    fetch(tmp_path / "flickr.db", ["red"], images_dir=downloads, settings=FAST, progress=False)
    assert all(path.read_text() == "not Lablr's" for path in theirs)
    assert not killed_run.exists()


def test_fetch_into_another_programs_database_changes_nothing_there(flickr, tmp_path):
    theirs = tmp_path / "places.sqlite"
    with sqlite3.connect(theirs) as db:
        db.execute("create table moz_places (id integer primary key, url text)")
    before = theirs.read_bytes()
    with pytest.raises(LablrError, match="another program's database"):
        fetch(theirs, ["red"], settings=FAST, progress=False)
    assert theirs.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["places.sqlite"]
    assert not flickr.image_requests


def test_a_photo_whose_id_is_not_flickrs_digits_is_not_recorded():
    answer = {"url_q": "https://live.staticflickr.com/1/2_s_q.jpg", "width_q": "150", "height_q": "150"}
    assert photo_record({**answer, "id": "53000000045"}, ["url_q"]).key == "flickr:53000000045"
    for odd in ("../../../.bashrc", "12/../../x", ""):
        assert photo_record({**answer, "id": odd}, ["url_q"]) is None  # its file would be named by it


def test_per_tag_limit_and_licences(flickr, tmp_path):
    catalog = tmp_path / "flickr.db"
    settings = FetchSettings(**{**FAST.__dict__, "per_tag": 3, "licenses": (4, 5, 9)})
    fetch(catalog, ["green", "square"], settings=settings, progress=False)
    photos = Catalog(catalog).photos()
    by_key = {f"flickr:{p.id}": p for p in flickr.photos}
    assert 3 < len(photos) <= 6
    assert all(by_key[p["key"]].license in (4, 5, 9) for p in photos)
    assert sum("green" in p["tags"] for p in photos) >= 3 and sum("square" in p["tags"] for p in photos) >= 3


def test_retries_after_server_errors_rate_limits_and_slow_answers(flickr, tmp_path):
    flickr.fail_next("flickr.photos.search", "503", "429", "slow", "105")
    red = flickr.photos_tagged("red")
    flickr.fail_image(red[0].id, "500", "429")
    flickr.fail_image(red[1].id, "slow", "502")
    catalog = tmp_path / "flickr.db"
    report = fetch(catalog, ["red"], settings=FAST, progress=False)

    assert report.downloaded == len(red) and report.failed == 0
    assert len(report.retries) == 8  # each fault answered once, then retried
    assert any("rate limited" in r for r in report.retries) and any("Timeout" in r for r in report.retries)
    assert {p["key"] for p in Catalog(catalog).photos()} == {f"flickr:{p.id}" for p in red}
    assert flickr.image_requests[red[0].id] == 3 and flickr.image_requests[red[1].id] == 3


def test_an_image_that_keeps_failing_stays_pending_and_the_rerun_fetches_only_it(flickr, tmp_path):
    red = flickr.photos_tagged("red")
    flickr.fail_image(red[2].id, *["503"] * FAST.retry.attempts)
    catalog = tmp_path / "flickr.db"
    result = CliRunner().invoke(cli, ["fetch", "--tags", "red", "--catalog", str(catalog), "--backoff", "0.01",
                                      "--attempts", str(FAST.retry.attempts), "--quiet"])
    assert result.exit_code == 1
    assert "1 downloads still failed" in result.output and "run `lablr fetch` again" in result.output
    assert f"{len(red) - 1} Flickr photos ready, 1 to download" in result.output

    before = dict(flickr.image_requests)
    result = CliRunner().invoke(cli, ["fetch", "--tags", "red", "--catalog", str(catalog), "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"{len(red)} Flickr photos ready, 0 to download" in result.output
    assert {i: n - before.get(i, 0) for i, n in flickr.image_requests.items() if n != before.get(i, 0)} == {red[2].id: 1}


def test_photos_deleted_from_flickr_are_marked_missing(flickr, tmp_path):
    red = flickr.photos_tagged("red")
    flickr.missing.add(red[0].id)
    catalog = tmp_path / "flickr.db"
    report = fetch(catalog, ["red"], settings=FAST, progress=False)
    assert (report.missing, report.downloaded) == (1, len(red) - 1)
    statuses = {key: status for key, status, *_ in catalog_rows(catalog)}
    assert statuses[f"flickr:{red[0].id}"] == "missing"
    assert f"flickr:{red[0].id}" not in {p["key"] for p in Catalog(catalog).photos()}


def test_missing_key_says_where_to_get_one(flickr, monkeypatch, tmp_path):
    monkeypatch.delenv("FLICKR_API_KEY")
    result = CliRunner().invoke(cli, ["fetch", "--tags", "red", "--catalog", str(tmp_path / "c.db")])
    assert result.exit_code == 1
    assert "No Flickr API key" in result.output and "https://www.flickr.com/services/apps/create/" in result.output
    assert "FLICKR_API_KEY" in result.output and "Traceback" not in result.output
    assert flickr.calls.total() == 0

    # The key file outside the repository works as well as the environment
    monkeypatch.delenv("FLICKR_API_SECRET")
    key_file = tmp_path / "config" / "lablr" / "flickr.json"
    key_file.parent.mkdir(parents=True)
    key_file.write_text(json.dumps({"api_key": flickr.api_key, "api_secret": flickr.secret}))
    result = CliRunner().invoke(cli, ["fetch", "--tags", "red", "--per-tag", "2", "--catalog",
                                      str(tmp_path / "c.db"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "2 Flickr photos ready" in result.output


def test_a_key_flickr_refuses_is_a_clear_error(flickr, monkeypatch, tmp_path):
    monkeypatch.setenv("FLICKR_API_KEY", "not-a-key")
    result = CliRunner().invoke(cli, ["fetch", "--tags", "red", "--catalog", str(tmp_path / "c.db")])
    assert result.exit_code == 1
    assert "Flickr refused the API key" in result.output and "100" in result.output
    monkeypatch.setenv("FLICKR_API_KEY", flickr.api_key)
    monkeypatch.setenv("FLICKR_API_SECRET", "wrong-secret")  # the OAuth signature no longer matches
    with pytest.raises(LablrError, match="Invalid signature"):
        fetch(tmp_path / "c.db", ["red"], settings=FAST, progress=False)


def test_hot_tags_come_from_flickr(flickr, tmp_path):
    catalog = tmp_path / "flickr.db"
    result = CliRunner().invoke(cli, ["fetch", "--tags", "hot:3", "--per-tag", "2", "--catalog", str(catalog),
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    assert [tag for tag, _ in flickr.searches] == list(flickr.hot[:3])
    assert flickr.calls["flickr.tags.getHotList"] == 1


def test_the_token_bucket_stays_under_the_hourly_limit():
    now = [0.0]
    bucket = TokenBucket(3500, burst=10, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    times = []
    for _ in range(4000):
        bucket.acquire()
        times.append(now[0])
    # in any hour, at most 3,510 calls: under Flickr's 3,600
    assert max(sum(1 for t in times if start <= t < start + 3600) for start in times[::100]) <= 3510


def test_tags_are_normalised_the_flickr_way():
    assert flickr_tag("New York") == "newyork"
    assert flickr_tag("Café-au-lait!") == "caféaulait"
    assert flickr_tag("uploaded:by=flickrmobile") == ""


# -- crash safety: a real `lablr fetch`, killed -------------------------------------------------


def run_fetch(fake, catalog, *extra, **popen):
    env = {**os.environ, **fake.env(), "XDG_CONFIG_HOME": str(Path(catalog).parent / "config")}
    command = [*LABLR, "fetch", "--catalog", str(catalog), "--backoff", "0.01", "--calls-per-hour", "10000000",
               "--quiet", *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def final_files(directory):
    return {p.name for p in Path(directory).rglob("*.jpg")}


def check_finished(fake, catalog, tags):
    """Every photo once, every image whole and recorded, no half-written file anywhere."""
    wanted = {p.id for p in fake.photos if set(tags) & set(p.tags)}
    rows = catalog_rows(catalog)
    assert sorted(key for key, *_ in rows) == sorted(f"flickr:{i}" for i in wanted)
    assert {status for _, status, *_ in rows} == {"ok"}
    assert tags_of(catalog) == {f"flickr:{p.id}": expected_tags(p) for p in fake.photos if p.id in wanted}
    assert not list(Path(f"{catalog}.flickr").rglob("*.part"))
    with sqlite3.connect(catalog) as db:
        downloads = dict(db.execute("select path, bytes from downloads").fetchall())
    assert len(downloads) == len(wanted)
    for path, size in downloads.items():
        assert Path(path).stat().st_size == size
        with Image.open(path) as image:
            image.load()  # decodes to the end: not cut short


def test_sigkill_mid_download_then_rerun_finishes_without_duplicates_or_repeats(tmp_path):
    fake = FakeFlickr(image_delay=0.4).start()
    try:
        catalog, tags = tmp_path / "flickr.db", ["red", "circle"]
        images = Path(f"{catalog}.flickr")
        process = run_fetch(fake, catalog, "--tags", ",".join(tags), "--workers", "3")
        half_written = lambda: list(images.rglob("*.part"))  # an image arriving as we kill
        assert wait_for(lambda: len(final_files(images)) >= 4 and half_written()), "no download started"
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        done_at_kill = {name.split(".")[0] for name in final_files(images)}
        requests_at_kill = dict(fake.image_requests)
        assert 4 <= len(done_at_kill) < len({p.id for p in fake.photos if set(tags) & set(p.tags)})

        fake.image_delay = 0
        rerun = run_fetch(fake, catalog, "--tags", ",".join(tags))
        output, _ = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, output
        check_finished(fake, catalog, tags)
        asked_again = {i for i, n in fake.image_requests.items() if n > requests_at_kill.get(i, 0)}
        assert not asked_again & done_at_kill  # what was on disk whole was not downloaded again
        assert sum(fake.calls.values()) > 0
    finally:
        fake.stop()


def test_sigkill_mid_search_then_rerun_continues_with_the_next_page(tmp_path):
    fake = FakeFlickr(api_delay=0.2).start()
    try:
        catalog, tags = tmp_path / "flickr.db", ["blue", "triangle"]
        pages = {t: -(-len(fake.photos_tagged(t)) // 4) for t in tags}
        process = run_fetch(fake, catalog, "--tags", ",".join(tags), "--per-page", "4")
        assert wait_for(lambda: len(fake.searches) >= 3)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        asked_before = list(fake.searches)
        with sqlite3.connect(catalog) as db:
            recorded = dict(db.execute("select tag, page from searches").fetchall())
        assert recorded.get("blue", 0) >= 1  # progress was recorded as it went

        fake.api_delay = 0
        rerun = run_fetch(fake, catalog, "--tags", ",".join(tags), "--per-page", "4")
        output, _ = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, output
        check_finished(fake, catalog, tags)
        asked_after = fake.searches[len(asked_before):]
        for tag in tags:  # the rerun continues after the last recorded page, and asks each page once
            assert [p for t, p in asked_after if t == tag] == list(range(recorded.get(tag, 0) + 1, pages[tag] + 1))
        assert len(asked_before) + len(asked_after) <= sum(pages.values()) + 1
    finally:
        fake.stop()


# -- prepare, and the whole chain ---------------------------------------------------------------

def test_prepare_records_broken_images_splits_by_owner_and_drops_non_visual_tags(flickr, tmp_path):
    broken = flickr.photos_tagged("green")[0]
    flickr.broken.add(broken.id)
    catalog = tmp_path / "flickr.db"
    fetch(catalog, ["red", "blue", "green"], settings=FAST, progress=False)
    assert len(Catalog(catalog).photos()) == len(flickr.photos)  # the cut-short JPEG downloaded like any other

    result = CliRunner().invoke(cli, ["prepare", "--catalog", str(catalog), "--size", "16", "--quiet",
                                      *TINY_RULE_OPTIONS])
    assert result.exit_code == 0, result.output
    assert f"Decoded {len(flickr.photos) - 1} images at 16x16" in result.output and "1 broken" in result.output
    assert f"broken: flickr:{broken.id}" in result.output
    assert "0 on both sides" in result.output and "Next" not in result.output
    assert "split by owner" in result.output and f"{len(NON_VISUAL_TAGS)} stop tags" in result.output

    with sqlite3.connect(catalog) as db:
        statuses = dict(db.execute("select key, status from photos").fetchall())
        split = db.execute("select p.owner, s.split from splits s join photos p on p.id = s.photo_id").fetchall()
    assert statuses[f"flickr:{broken.id}"] == "broken"
    assert {"train", "test"} == {side for _, side in split}
    sides_of_owner = {}
    for owner, side in split:
        sides_of_owner.setdefault(owner, set()).add(side)
    assert all(len(sides) == 1 for sides in sides_of_owner.values())  # an owner's photos on one side only
    kept = result.output.split("tags kept: ")[1].splitlines()[0].split(", ")
    assert set(COLOURS) | set(SHAPES) <= set(kept)
    assert not {"nikon", "canon", "iphone", "2015", "2019"} & set(kept)  # camera makes and years: stopped

    # Without the stop-list they stay; a stop-list file works too
    result = CliRunner().invoke(cli, ["prepare", "--catalog", str(catalog), "--size", "16", "--quiet",
                                      "--stop-tags", "none", *TINY_RULE_OPTIONS])
    assert {"nikon", "canon", "iphone"} <= set(result.output.split("tags kept: ")[1].splitlines()[0].split(", "))
    stop_file = tmp_path / "stop.txt"
    stop_file.write_text("# my stop-list\nNikon\nRed Circle\n")
    result = CliRunner().invoke(cli, ["prepare", "--catalog", str(catalog), "--size", "16", "--quiet",
                                      "--stop-tags", str(stop_file), *TINY_RULE_OPTIONS])
    kept = set(result.output.split("tags kept: ")[1].splitlines()[0].split(", "))
    assert "canon" in kept and not {"nikon", "redcircle"} & kept


@pytest.mark.slow
def test_fetch_prepare_train_fit_evaluate_serve(tmp_path):
    """The walkthrough of docs/flickr.md, command by command, against the fake Flickr."""
    import httpx
    from fake_flickr import jpeg_bytes
    from lablr_server import running_server

    fake = FakeFlickr(photos=make_photos(per_kind=8)).start()
    try:
        catalog, model, refit = tmp_path / "flickr.db", tmp_path / "my-model", tmp_path / "my-model-refit"
        env = {**os.environ, **fake.env(), "XDG_CONFIG_HOME": str(tmp_path / "config")}

        def lablr(*args):
            done = subprocess.run([*LABLR, *map(str, args)], env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        tags = ",".join(COLOURS + SHAPES)
        lablr("fetch", "--tags", tags, "--per-tag", "100", "--catalog", catalog, "--quiet")
        assert len(Catalog(catalog).photos("flickr")) == len(fake.photos)
        prepared = lablr("prepare", "--catalog", catalog, "--size", "16", "--quiet", *TINY_RULE_OPTIONS)
        assert "0 on both sides" in prepared
        held_out = sorted(key for key, side in Catalog(catalog).splits().items() if side == "test")
        # train and fit need no selection options: they use the rules prepare recorded, Flickr's
        trained = lablr("train", "--catalog", catalog, "--out", model, "--image-size", "16", "--latent-dim", "4",
                        "--epochs", "3")
        assert "mahalanobis" in trained and "popularity" in trained.lower()
        manifest = json.loads((model / "manifest.json").read_text())
        assert manifest["data"]["rules"]["split_by_owner"] and manifest["data"]["test_keys"] == held_out
        learned = set(model_tags(model))
        assert set(COLOURS) | set(SHAPES) <= learned and not {"nikon", "canon", "iphone", "2015"} & learned
        lablr("fit", "--model", model, "--catalog", catalog, "--out", refit)
        report = json.loads(lablr("evaluate", "--model", refit, "--catalog", catalog, "--json"))
        test_keys = set(manifest["data"]["test_keys"])
        assert report["mahalanobis"]["photos"] == len(test_keys) > 0  # the owner-split held-out photos

        photo = next(p for p in fake.photos if p.colour == "red" and p.shape == "circle")
        with running_server(refit) as (base, _):
            answer = httpx.post(base + "/api/v1/suggest", params={"k": 3},
                                files=[("image", ("photo.jpg", jpeg_bytes(photo, 96), "image/jpeg"))], timeout=60)
        assert answer.status_code == 200, answer.text
        suggestions = answer.json()["results"][0]["suggestions"]
        assert len(suggestions) == 3 and {s["tag"] for s in suggestions} <= set(model_tags(refit))
    finally:
        fake.stop()


def model_tags(bundle):
    from lablr.core.model import Model

    return Model.load(bundle).tag_model.tags


def test_a_later_run_with_a_higher_per_tag_continues_the_search(flickr, tmp_path):
    catalog = tmp_path / "flickr.db"
    fetch(catalog, ["red"], settings=FetchSettings(**{**FAST.__dict__, "per_tag": 5}), progress=False)
    assert len(Catalog(catalog).photos()) == 5
    fetch(catalog, ["red"], settings=FetchSettings(**{**FAST.__dict__, "per_tag": 12}), progress=False)
    assert len(Catalog(catalog).photos()) == 12
    assert [page for _, page in flickr.searches] == [1, 2, 3]  # pages of 5: page 1, then 2 and 3


# -- image sizes: the smallest that covers the model's input ------------------------------------

def sizes_recorded(catalog):
    with sqlite3.connect(catalog) as db:
        return dict(db.execute("select p.key, s.size from image_sizes s join photos p on p.id = s.photo_id"))


@pytest.mark.parametrize("options, size, pixels", [
    (["--model", "openclipart-effnet"], "url_n", {(320, 240), (240, 320)}),  # the pretrained model's 224 px
    (["--model", "openclipart-vae"], "url_q", {(150, 150)}),  # the pixel VAE's 64 px
    (["--size", "224"], "url_n", {(320, 240), (240, 320)}),
    (["--size", "400"], "url_z", {(640, 480), (480, 640)}),  # 500x375 (url_m) would not cover 400 px
])
def test_fetch_downloads_the_smallest_size_that_covers_the_model_input(flickr, tmp_path, options, size, pixels):
    catalog = tmp_path / "flickr.db"
    result = CliRunner().invoke(cli, ["fetch", "--tags", "red", "--catalog", str(catalog), "--quiet",
                                      "--calls-per-hour", "1e7", *options])
    assert result.exit_code == 0, result.output
    red = flickr.photos_tagged("red")
    assert flickr.size_requests == {size: len(red)}  # every image asked once, at that size only
    assert set(sizes_recorded(catalog).values()) == {size}
    assert {Image.open(p["path"]).size for p in Catalog(catalog).photos()} == pixels
    assert f"{size} {len(red)} (" in result.output


def test_fetch_defaults_to_the_default_model_input_size(flickr, tmp_path):
    from lablr.core import bundle, defaults

    expected = preference(bundle.read_manifest(bundle.resolve(defaults.DEFAULT_MODEL)).image_size)[0]
    catalog = tmp_path / "flickr.db"
    result = CliRunner().invoke(cli, ["fetch", "--tags", "blue", "--catalog", str(catalog), "--quiet",
                                      "--calls-per-hour", "1e7"])
    assert result.exit_code == 0, result.output
    assert set(flickr.size_requests) == {expected}


def test_a_photo_without_the_size_falls_back_to_the_next_larger_one(tmp_path, monkeypatch):
    photos = make_photos()
    lacking_n, small = photos[0], photos[1]
    photos[0] = FakePhoto(**{**lacking_n.__dict__, "lacks": frozenset({"url_n"})})  # an old upload
    photos[1] = FakePhoto(**{**small.__dict__, "width": 300, "height": 200})  # an original under 320 px
    fake = FakeFlickr(photos=photos).start()
    try:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        catalog = tmp_path / "flickr.db"
        settings = FetchSettings(**{**FAST.__dict__, "image_extras": preference(224)})
        fetch(catalog, ["red"], settings=settings, progress=False)
        red = fake.photos_tagged("red")
        sizes = sizes_recorded(catalog)
        assert sizes.pop(f"flickr:{lacking_n.id}") == "url_m"  # the next larger: 500x375
        assert sizes.pop(f"flickr:{small.id}") == "url_s"  # no size covers 224 px: the largest it has
        assert set(sizes.values()) == {"url_n"}
        assert fake.size_requests == {"url_n": len(red) - 2, "url_m": 1, "url_s": 1}
    finally:
        fake.stop()


# -- a user's own photos -------------------------------------------------------------------------

def user_photos(owner="99999999@N00", alias="mariesky", count=12):
    """A user whose photos carry their own tags (a place, a dog's name) beside common ones."""
    photos = []
    for i in range(count):
        colour, shape = COLOURS[i % 3], SHAPES[i % 3]
        photo_id = str(54000000000 + i)
        photos.append(FakePhoto(
            id=photo_id, owner=owner, ownername="Marie Sky", secret=f"{i:010x}", server="65535",
            title=f"Bruno #{i}", license=4, tags=["bruno", "lakegeneva", colour] + (["morgesharbour"] if i % 2 else []),
            colour=colour, shape=shape, seed=i, path_alias=alias))
    return photos


@pytest.fixture
def marie_on_flickr(monkeypatch):
    """The fake Flickr with Marie Sky's public photos beside the others, Lablr pointed at it: (fake, hers)."""
    mine = user_photos()
    fake = FakeFlickr(photos=make_photos() + mine).start()
    for name, value in fake.env().items():
        monkeypatch.setenv(name, value)
    yield fake, mine
    fake.stop()


@pytest.mark.parametrize("who", ["99999999@N00", "https://www.flickr.com/photos/mariesky/",
                                 "flickr.com/people/mariesky", "mariesky", "Marie Sky"])
def test_fetch_user_records_their_public_photos_with_their_tags(tmp_path, marie_on_flickr, who):
    fake, mine = marie_on_flickr
    catalog = tmp_path / "flickr.db"
    result = CliRunner().invoke(cli, ["fetch", "--user", who, "--tags", "none", "--catalog", str(catalog),
                                      "--quiet", "--calls-per-hour", "1e7", "--per-page", "5", "--size", "64"])
    assert result.exit_code == 0, result.output
    assert tags_of(catalog) == {f"flickr:{p.id}": expected_tags(p) for p in mine}
    assert any("morgesharbour" in tags for tags in tags_of(catalog).values())
    rows = catalog_rows(catalog)
    assert {owner for _, _, _, owner, *_ in rows} == {"99999999@N00"}
    assert [page for user, page in fake.searches if user == "user:99999999@N00"] == [1, 2, 3]
    assert fake.calls["flickr.photos.search"] == 0 and fake.size_requests == {"url_q": len(mine)}


def test_fetch_user_and_tags_into_one_catalog_and_an_unknown_user(tmp_path, marie_on_flickr):
    fake, mine = marie_on_flickr
    catalog = tmp_path / "flickr.db"
    result = CliRunner().invoke(cli, ["fetch", "--user", "mariesky", "--tags", "red,blue", "--catalog",
                                      str(catalog), "--quiet", "--calls-per-hour", "1e7", "--size", "64"])
    assert result.exit_code == 0, result.output
    keys = set(tags_of(catalog))
    assert {f"flickr:{p.id}" for p in mine} <= keys
    assert {f"flickr:{p.id}" for p in fake.photos_tagged("red") + fake.photos_tagged("blue")} <= keys

    result = CliRunner().invoke(cli, ["fetch", "--user", "nobody-here", "--tags", "none", "--catalog",
                                      str(catalog), "--quiet", "--size", "64"])
    assert result.exit_code == 1 and "Flickr knows no user 'nobody-here'" in result.output
    assert fake.calls["flickr.people.findByUsername"] == 1  # not a URL name: perhaps a username
    result = CliRunner().invoke(cli, ["fetch", "--tags", "none", "--catalog", str(catalog), "--size", "64"])
    assert result.exit_code == 1 and "Nothing to fetch: give --tags, --user, or both." in result.output
    assert "Traceback" not in result.output


def test_user_answers_cut_at_every_length_are_retried_or_refused_in_one_line(tmp_path, monkeypatch):
    """flickr.urls.lookupUser and flickr.people.getPublicPhotos answers cut short, at every length:
    never a traceback, never a wrong user or a photo read from half an answer."""
    import httpx

    from lablr.plugins.flickr.api import FlickrClient

    mine = user_photos(count=3)
    fake = FakeFlickr(photos=make_photos(per_kind=1) + mine).start()
    try:
        one_try = FetchSettings(**{**FAST.__dict__, "retry": Retry(attempts=1, backoff=0, cap=0),
                                   "image_extras": preference(224)})
        client = FlickrClient(fake.api_key, fake.secret, fake.api_url, one_try)
        full = {method: len(httpx.post(fake.api_url, data={"method": method, "api_key": fake.api_key, **params})
                            .content.rstrip())  # cut short of its closing tag
                for method, params in [("flickr.urls.lookupUser", {"url": "flickr.com/photos/mariesky"}),
                                       ("flickr.people.getPublicPhotos", {"user_id": mine[0].owner, "per_page": 3,
                                                                          "extras": "tags,url_n"})]}
        for length in range(full["flickr.urls.lookupUser"]):
            fake.fail_next("flickr.urls.lookupUser", f"cut:{length}")
            with pytest.raises(LablrError, match="Flickr did not answer flickr.urls.lookupUser"):
                client.lookup_user("flickr.com/photos/mariesky")
        assert client.lookup_user("flickr.com/photos/mariesky") == mine[0].owner
        for length in range(0, full["flickr.people.getPublicPhotos"], 3):
            fake.fail_next("flickr.people.getPublicPhotos", f"cut:{length}")
            with pytest.raises(LablrError, match="Flickr did not answer"):
                client.public_photos(mine[0].owner, 1, 3, preference(224))
        photos, pages = client.public_photos(mine[0].owner, 1, 3, preference(224))
        assert [p["id"] for p in photos] == [p.id for p in sorted(mine, key=lambda p: -int(p.id))] and pages == 1
    finally:
        fake.stop()
