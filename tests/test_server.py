"""The real server (`lablr serve` under uvicorn, on 127.0.0.1), spoken to over HTTP."""

import asyncio
import io
import struct
import subprocess
import sys
import zlib

import httpx
import pytest
from conftest import COLOURS, SHAPES, draw_shape, encoded, photo
from lablr_server import READY, running_server
from PIL import Image

import lablr.core

TAGS = set(COLOURS) | set(SHAPES)


def bomb_png(width=20_000, height=10_000) -> bytes:
    """A real PNG of 200 megapixels (1-bit, all black) that is about 25 kB on disk."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + width // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def server(tiny_bundle):
    with running_server(tiny_bundle) as (base, log):
        yield base, log


@pytest.fixture(scope="module")
def base(server):
    return server[0]


@pytest.fixture(scope="module")
def client(base):
    with httpx.Client(base_url=base, timeout=60) as client:
        yield client


def suggest(client, *images, params=None, names=None):
    names = names or [f"photo{i}.png" for i in range(len(images))]
    files = [("image", (name, data, "image/png")) for name, data in zip(names, images)]
    return client.post("/api/v1/suggest", params=params, files=files)


def assert_error(response, status, code=None):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"code", "message"} and error["message"]
    if code:
        assert error["code"] == code


def still_serving(client):
    answer = suggest(client, photo(), params={"k": 2})
    assert answer.status_code == 200
    assert len(answer.json()["results"][0]["suggestions"]) == 2


# -- start-up ---------------------------------------------------------------------------------------


def test_serve_logs_one_ready_line_with_address_and_model(server, tiny_bundle):
    base, log = server
    ready = [line for line in log if READY in line]
    assert len(ready) == 1
    assert base in ready[0] and tiny_bundle.name in ready[0]


def test_health(client, tiny_bundle):
    answer = client.get("/api/v1/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert body["version"] == lablr.core.__version__ != ""
    assert body["model"]["name"] == tiny_bundle.name
    assert body["model"]["tags"] == len(TAGS)
    assert body["model"]["encoder"] == "vae" and body["model"]["scorer"] == "mahalanobis"


# -- suggest ----------------------------------------------------------------------------------------


def test_suggest_answers_each_photo_in_order_best_first(client):
    shapes = [("red", "circle"), ("blue", "square"), ("green", "triangle")]
    answer = suggest(client, *[photo(c, s) for c, s in shapes], params={"k": 4},
                     names=["a.png", "b.png", "c.png"])
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"results", "model", "elapsed_ms"} and body["elapsed_ms"] >= 0
    assert [r["filename"] for r in body["results"]] == ["a.png", "b.png", "c.png"]
    for result in body["results"]:
        found = result["suggestions"]
        assert len(found) == 4 and {s["tag"] for s in found} <= TAGS
        assert all(set(s) == {"tag", "score", "distance"} for s in found)
        assert [s["score"] for s in found] == sorted((s["score"] for s in found), reverse=True)
    # Each photo is answered for itself: the answer for one photo alone is the same.
    alone = suggest(client, photo("blue", "square"), params={"k": 4}).json()
    assert alone["results"][0]["suggestions"] == body["results"][1]["suggestions"]


def test_suggest_defaults_to_ten_tags_or_all_the_model_has(client):
    found = suggest(client, photo()).json()["results"][0]["suggestions"]
    assert len(found) == len(TAGS)  # the default k is 10; the tiny model has 6 tags
    assert len(suggest(client, photo(), params={"k": 100}).json()["results"][0]["suggestions"]) == len(TAGS)


def test_suggest_takes_a_raw_image_body(client):
    data = photo("green", "square", format="JPEG")
    raw = client.post("/api/v1/suggest", content=data, headers={"content-type": "image/jpeg"},
                      params={"k": 3, "filename": "g.jpg"})
    assert raw.status_code == 200
    form = client.post("/api/v1/suggest", files={"image": ("g.jpg", data, "image/jpeg")}, params={"k": 3})
    assert raw.json()["results"] == form.json()["results"]


def test_suggest_leaves_out_excluded_tags(client):
    everything = [s["tag"] for s in suggest(client, photo(), params={"k": 6}).json()["results"][0]["suggestions"]]
    left_out = everything[:2]
    typed = f"{left_out[0]}, {left_out[1].upper()} ,not-a-tag"  # as a person types them
    rest = suggest(client, photo(), params={"k": 6, "exclude": typed}).json()
    assert [s["tag"] for s in rest["results"][0]["suggestions"]] == everything[2:]


def test_suggest_with_another_scorer(client):
    plain = suggest(client, photo(), params={"k": 6}).json()["results"][0]["suggestions"]
    loglik = suggest(client, photo(), params={"k": 6, "scorer": "loglik"}).json()["results"][0]["suggestions"]
    assert {s["tag"] for s in loglik} == {s["tag"] for s in plain}
    # each score is that tag's own calibrated probability: not a softmax that sums to 1 over the tags
    assert all(0 <= s["score"] <= 1 for s in loglik + plain)
    assert [s["score"] for s in loglik] != [s["score"] for s in plain]


def _rgba(image):
    rgba = image.convert("RGBA")
    rgba.putalpha(200)
    return rgba


@pytest.mark.parametrize("mode, make", [
    ("grayscale", lambda im: encoded(im.convert("L"))),
    ("palette with transparency", lambda im: encoded(im.convert("P"), transparency=0)),
    ("RGBA", lambda im: encoded(_rgba(im))),
    ("CMYK JPEG", lambda im: encoded(im.convert("CMYK"), "JPEG")),
    ("16-bit grayscale", lambda im: encoded(im.convert("I;16"))),
    ("GIF", lambda im: encoded(im, "GIF")),
    ("WebP", lambda im: encoded(im, "WEBP")),
    ("BMP", lambda im: encoded(im, "BMP")),
    ("TIFF", lambda im: encoded(im, "TIFF")),
])
def test_suggest_reads_every_common_kind_of_image(client, mode, make):
    answer = suggest(client, make(draw_shape("blue", "triangle")), params={"k": 3})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["results"][0]["suggestions"]) == 3


def test_suggest_applies_exif_orientation(client):
    upright = draw_shape("green", "triangle", size=64)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored = encoded(upright.transpose(Image.Transpose.ROTATE_90), "PNG", exif=exif)
    sideways = encoded(upright.transpose(Image.Transpose.ROTATE_90), "PNG")
    found = suggest(client, encoded(upright), stored, sideways, params={"k": 100}).json()["results"]
    # The same to rounding: the photo is turned after it is shrunk, and Pillow rounds between its two passes
    # (so every tag is compared by its score: two tags about as likely may swap places).
    upright_scores, stored_scores, sideways_scores = ({s["tag"]: s["score"] for s in found[i]["suggestions"]}
                                                      for i in (0, 1, 2))
    assert stored_scores == pytest.approx(upright_scores, abs=0.005)
    assert sideways_scores != pytest.approx(upright_scores, abs=0.005)


def test_32_concurrent_suggest_requests_each_get_their_own_answer(client, base):
    kinds = [(c, s) for c in COLOURS for s in SHAPES]
    photos = [photo(*kinds[i % len(kinds)], seed=i) for i in range(32)]
    expected = [suggest(client, data, params={"k": 6}).json()["results"][0]["suggestions"] for data in photos]

    async def ask_all():
        async with httpx.AsyncClient(base_url=base, timeout=120) as session:
            return await asyncio.gather(*[
                session.post("/api/v1/suggest", params={"k": 6}, files={"image": (f"{i}.png", data, "image/png")})
                for i, data in enumerate(photos)])

    answers = asyncio.run(ask_all())
    assert all(a.status_code == 200 for a in answers)
    assert [a.json()["results"][0]["filename"] for a in answers] == [f"{i}.png" for i in range(32)]
    assert [a.json()["results"][0]["suggestions"] for a in answers] == expected
    assert len({str(e) for e in expected}) > 1  # the photos really get different answers


# -- the other endpoints ----------------------------------------------------------------------------


def test_tags_lists_every_tag_with_count_and_dispersion(client):
    body = client.get("/api/v1/tags").json()
    assert {row["tag"] for row in body["tags"]} == TAGS
    for row in body["tags"]:
        assert set(row) == {"tag", "count", "dispersion"}
        assert row["count"] > 0 and isinstance(row["dispersion"], float)
    counts = [row["count"] for row in body["tags"]]
    assert counts == sorted(counts, reverse=True)


def test_plugins_lists_the_registered_parts(client):
    parts = {(p["kind"], p["name"]): p["plugin"] for p in client.get("/api/v1/plugins").json()["plugins"]}
    assert parts[("scorer", "mahalanobis")] == "lablr.plugins.mahalanobis"
    assert {("encoder", "vae"), ("tag_model", "gaussian"), ("scorer", "loglik"), ("visualizer", "pca")} <= set(parts)


def test_plot_draws_png_and_svg(client):
    files = {"image": ("a.png", photo(), "image/png")}
    png = client.post("/api/v1/plot", files=files, params={"k": 3})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size[0] > 300
    svg = client.post("/api/v1/plot", files=files, params={"format": "svg"})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content


MATH_LIKE_TAGS = ["price $$ cut", "$x^$", "50$ \\frac{1}{$"]


def test_learned_tags_that_look_like_math_are_drawn_as_written(tiny_bundle, tmp_path):
    """matplotlib parses "$...$" as mathtext: a learned "$$" tag once made every later picture a 500."""
    with running_server(tiny_bundle, env={"XDG_DATA_HOME": str(tmp_path)}) as (base, _), \
            httpx.Client(base_url=base, timeout=60, limits=httpx.Limits(max_connections=1)) as client:
        for seed in range(lablr.core.defaults.PERSONAL_MIN_PHOTOS):
            taught = client.post("/api/v1/feedback", files={"image": ("a.png", photo(seed=seed), "image/png")},
                                 data={"tags": ",".join(MATH_LIKE_TAGS)})
            assert taught.status_code == 200, taught.text
        assert set(MATH_LIKE_TAGS) <= {row["tag"] for row in client.get("/api/v1/tags").json()["tags"]}
        for picture_format in ("svg", "png", "svg"):
            answer = client.post("/api/v1/plot", files={"image": ("a.png", photo(), "image/png")},
                                 params={"k": 100, "format": picture_format})
            assert answer.status_code == 200, answer.text


def test_an_unexpected_error_is_a_json_500_and_the_connection_stays_open(tiny_bundle):
    import socket
    import threading
    import time

    import uvicorn
    from starlette.routing import Route

    from lablr.server.app import create_app

    async def broken(request):
        raise RuntimeError("a bug")

    app = create_app(tiny_bundle, personal=False)
    app.router.routes.insert(0, Route("/api/v1/broken", broken))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        port = sock.getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                          limits=httpx.Limits(max_connections=1)) as client:
            events = []
            for path in ("/api/v1/broken", "/api/v1/health", "/api/v1/broken", "/api/v1/health"):
                answer = client.get(path, extensions={"trace": lambda name, info: events.append(name)})
                assert answer.status_code == (500 if "broken" in path else 200)
                assert answer.headers.get("connection") != "close"
            assert_error(client.get("/api/v1/broken"), 500, "internal_error")
        assert events.count("connection.connect_tcp.complete") == 1  # one connection served all four
    finally:
        server.should_exit = True
        thread.join(10)


def test_openapi_describes_every_endpoint(client):
    schema = client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    operations = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert {("/api/v1/health", "get"), ("/api/v1/suggest", "post"), ("/api/v1/plot", "post"),
            ("/api/v1/tags", "get"), ("/api/v1/plugins", "get"), ("/openapi.json", "get"), ("/", "get")} <= operations
    for path, method in operations:  # every operation described exists, and answers without a 404 or 405
        status = client.request(method.upper(), path).status_code
        assert status not in (404, 405, 500), (path, method, status)
    suggest_op = schema["paths"]["/api/v1/suggest"]["post"]
    assert {"400", "413", "415", "422"} <= set(suggest_op["responses"])
    assert {p["name"] for p in suggest_op["parameters"]} >= {"k", "scorer", "exclude"}


def test_web_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text and client.get(asset).status_code == 200
    assert "http://" not in page.text.replace("http://www.w3.org", "") and "https://" not in page.text  # no CDN


# -- bad input: a clear JSON error, the right status, and the server keeps serving --------------------


def _truncated_jpeg():
    data = encoded(Image.effect_noise((256, 256), 60).convert("RGB"), "JPEG", quality=95)
    return data[: len(data) // 2]


BAD_UPLOADS = {
    "empty file": (b"", 400, "empty_image"),
    "truncated JPEG": (_truncated_jpeg(), 400, "truncated_image"),
    "text file": (b"path,label\nimages/a.png,red\n", 400, "not_an_image"),
    "decompression bomb": (bomb_png(), 413, "image_too_large"),
}


@pytest.mark.parametrize("kind", BAD_UPLOADS)
@pytest.mark.parametrize("endpoint", ["/api/v1/suggest", "/api/v1/plot"])
def test_bad_images_are_refused(client, kind, endpoint):
    data, status, code = BAD_UPLOADS[kind]
    assert len(data) < 100_000
    assert_error(client.post(endpoint, files={"image": ("upload.png", data, "image/png")}), status, code)
    still_serving(client)


def test_a_bad_photo_among_good_ones_is_refused_with_its_reason(client):
    answer = suggest(client, photo(), BAD_UPLOADS["truncated JPEG"][0], photo("blue", "square"))
    assert_error(answer, 400, "truncated_image")


def test_a_raw_body_that_is_not_an_image_is_refused(client):
    assert_error(client.post("/api/v1/suggest", content=b"GIF89a broken", headers={"content-type": "image/gif"}),
                 400, "not_an_image")
    still_serving(client)


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "application/octet-stream", None])
def test_unsupported_media_types_are_refused(client, content_type):
    headers = {"content-type": content_type} if content_type else {}
    answer = client.post("/api/v1/suggest", content=b'{"image": "x"}', headers=headers)
    assert_error(answer, 415, "unsupported_media_type")
    still_serving(client)


def test_a_big_body_of_the_wrong_type_still_gets_its_answer(client):
    answer = client.post("/api/v1/suggest", content=b"x" * (12 * 1024 * 1024), headers={"content-type": "text/csv"})
    assert_error(answer, 415, "unsupported_media_type")
    still_serving(client)


def test_form_without_an_image_field_is_refused(client):
    answer = client.post("/api/v1/suggest", files={"photo": ("a.png", photo(), "image/png")}, data={"k": "3"})
    assert_error(answer, 400, "no_image")
    assert "'image'" in answer.json()["error"]["message"] and "'photo'" in answer.json()["error"]["message"]
    urlencoded = client.post("/api/v1/suggest", data={"image": "a.png"})
    assert_error(urlencoded, 415, "unsupported_media_type")
    still_serving(client)


def test_malformed_multipart_is_refused(client):
    no_boundary = client.post("/api/v1/suggest", content=b"--x\r\n", headers={"content-type": "multipart/form-data"})
    assert_error(no_boundary, 400, "bad_multipart")
    garbage = client.post("/api/v1/suggest", content=b"this is not multipart at all",
                          headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert_error(garbage, 400)
    still_serving(client)


BIG = 26 * 1024 * 1024  # over the default 25 MB limit


@pytest.mark.parametrize("name", ["image", "tags"])
def test_a_body_of_many_tiny_parts_is_refused_at_the_first_one_too_many(client, name):
    """200,000 empty parts (11 MB) once held up the event loop while they were parsed."""
    part = f'--b\r\nContent-Disposition: form-data; name="{name}"; filename="a.png"\r\n\r\n\r\n'.encode()
    body = part * 200_000 + b"--b--\r\n"
    for endpoint in ("/api/v1/suggest", "/api/v1/feedback"):
        answer = client.post(endpoint, content=body, headers={"content-type": "multipart/form-data; boundary=b"})
        assert_error(answer, 413, "too_many_parts")
    still_serving(client)


def test_body_over_the_limit_is_refused(client):
    assert_error(client.post("/api/v1/suggest", content=b"\0" * BIG, headers={"content-type": "image/jpeg"}),
                 413, "body_too_large")
    still_serving(client)


def test_streamed_body_over_the_limit_is_refused_while_reading(client):
    def chunks():  # no Content-Length: the limit is found while the body arrives
        for _ in range(BIG // (1024 * 1024)):
            yield b"\0" * (1024 * 1024)

    answer = client.post("/api/v1/suggest", content=chunks(), headers={"content-type": "image/jpeg"})
    assert_error(answer, 413, "body_too_large")
    still_serving(client)


@pytest.mark.parametrize("params, code", [
    ({"k": "0"}, "bad_parameter"),
    ({"k": "101"}, "bad_parameter"),
    ({"k": "ten"}, "bad_parameter"),
    ({"k": "-3"}, "bad_parameter"),
    ({"scorer": "no-such-scorer"}, "unknown_plugin"),
])
@pytest.mark.parametrize("endpoint", ["/api/v1/suggest", "/api/v1/plot"])
def test_bad_parameters_are_refused(client, endpoint, params, code):
    answer = client.post(endpoint, params=params, files={"image": ("a.png", photo(), "image/png")})
    assert_error(answer, 422, code)
    still_serving(client)


def test_unknown_scorer_error_names_the_registered_ones(client):
    answer = suggest(client, photo(), params={"scorer": "nope"})
    assert "mahalanobis" in answer.json()["error"]["message"]


def test_plot_refuses_an_unknown_format_and_several_photos(client):
    one = {"image": ("a.png", photo(), "image/png")}
    assert_error(client.post("/api/v1/plot", params={"format": "gif"}, files=one), 422, "bad_parameter")
    two = [("image", ("a.png", photo(), "image/png")), ("image", ("b.png", photo(), "image/png"))]
    assert_error(client.post("/api/v1/plot", files=two), 422, "bad_parameter")
    still_serving(client)


def test_unknown_paths_and_methods_get_json_errors(client):
    assert_error(client.get("/api/v1/nothing"), 404, "not_found")
    assert_error(client.get("/api/v1/suggest"), 405, "method_not_allowed")
    assert_error(client.delete("/api/v1/health"), 405, "method_not_allowed")
    still_serving(client)


def test_no_request_above_ever_got_a_traceback(server):
    _, log = server
    assert not [line for line in log if "Traceback" in line or "Exception" in line]


def test_serve_with_a_missing_model_says_so_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lablr.core.cli", "serve", "--model", str(tmp_path / "nothing")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "No model bundle" in done.stderr and "Traceback" not in done.stderr
