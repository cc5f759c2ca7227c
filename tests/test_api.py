"""Each endpoint's contract and errors, in process: Starlette's TestClient on the app and a tiny model.

These run in milliseconds each; tests/test_server.py speaks to the same app under a real
uvicorn (`lablr serve`) over HTTP.
"""

import io

import pytest
from conftest import COLOURS, SHAPES, photo
from PIL import Image
from starlette.testclient import TestClient

import lablr.core
from lablr.core.defaults import MAX_IMAGES
from lablr.core.model import Model
from lablr.server import create_app

TAGS = set(COLOURS) | set(SHAPES)
BASE = "http://127.0.0.1:8777"  # a loopback address, as a browser on this machine sends it


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return Model.load(tiny_bundle)


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(model), base_url=BASE) as client:
        yield client


def files(*images):
    return [("image", (f"photo{i}.png", data, "image/png")) for i, data in enumerate(images)]


def suggestions(answer, row=0):
    assert answer.status_code == 200, answer.text
    return answer.json()["results"][row]["suggestions"]


def assert_error(answer, status, code):
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]["code"] == code and answer.json()["error"]["message"]


# -- the app's start: the model is loaded into app.state ---------------------------------------------


def test_the_lifespan_loads_a_bundle_into_app_state(tiny_bundle):
    app = create_app(tiny_bundle, max_body_bytes=1234)
    with TestClient(app, base_url=BASE) as client:
        assert isinstance(app.state.model, Model) and app.state.max_body_bytes == 1234
        assert client.get("/api/v1/health").json()["model"]["name"] == tiny_bundle.name


# -- health, tags, plugins, openapi, the page -------------------------------------------------------


def test_health_names_the_model(client, tiny_bundle):
    body = client.get("/api/v1/health").json()
    assert body == {"status": "ok", "version": lablr.core.__version__,
                    "model": {"name": tiny_bundle.name, "tags": len(TAGS), "encoder": "vae", "scorer": "mahalanobis",
                              "image_size": 16, "calibrated": True, "min_probability": 0.2},
                    "limits": {"max_k": 100, "max_tags": 75}}


def test_tags_lists_every_tag_most_frequent_first(client, model):
    body = client.get("/api/v1/tags").json()
    assert body["model"] == model.name and {row["tag"] for row in body["tags"]} == TAGS
    counts = [row["count"] for row in body["tags"]]
    assert counts == sorted(counts, reverse=True)
    by_tag = {row["tag"]: row for row in body["tags"]}
    for tag, count, spread in zip(model.tag_model.tags, model.tag_model.counts, model.tag_model.dispersion()):
        assert by_tag[tag] == {"tag": tag, "count": int(count), "dispersion": round(float(spread), 4)}


def test_plugins_lists_kind_name_and_the_providing_module(client):
    rows = client.get("/api/v1/plugins").json()["plugins"]
    assert all(set(row) == {"kind", "name", "plugin"} for row in rows)
    assert {"kind": "scorer", "name": "loglik", "plugin": "lablr.plugins.loglik"} in rows
    assert {"kind": "source", "name": "openclipart", "plugin": "lablr.plugins.openclipart"} in rows


def test_openapi_states_the_apps_own_body_limit(model):
    with TestClient(create_app(model, max_body_bytes=5000), base_url=BASE) as client:
        schema = client.get("/openapi.json").json()
    assert "5,000 bytes" in schema["paths"]["/api/v1/suggest"]["post"]["requestBody"]["description"]


def test_the_page_and_its_files(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.get("/static/app.js").status_code == 200


# -- suggest ----------------------------------------------------------------------------------------


def test_suggest_gives_the_same_tags_as_the_model(client, model):
    from lablr.core.data import decoding as images

    data = photo("blue", "square", seed=4)
    answer = client.post("/api/v1/suggest", params={"k": 4}, files=files(data))
    expected = model.suggest(images.decode(data, model.image_size)[None], 4)[0]
    assert suggestions(answer) == [s.as_dict() for s in expected]
    assert set(answer.json()) == {"results", "model", "elapsed_ms"}


def test_suggest_answers_several_photos_in_order(client):
    shapes = [("red", "circle"), ("green", "triangle"), ("blue", "square")]
    answer = client.post("/api/v1/suggest", params={"k": 2}, files=files(*[photo(c, s) for c, s in shapes]))
    assert [r["filename"] for r in answer.json()["results"]] == ["photo0.png", "photo1.png", "photo2.png"]
    for row, (colour, shape) in enumerate(shapes):
        alone = client.post("/api/v1/suggest", params={"k": 2}, files=files(photo(colour, shape)))
        assert suggestions(answer, row) == suggestions(alone)


def test_suggest_takes_a_raw_body_and_echoes_its_filename(client):
    data = photo(format="JPEG")
    raw = client.post("/api/v1/suggest", content=data, headers={"content-type": "image/jpeg"},
                      params={"filename": "x.jpg"})
    assert raw.json()["results"][0]["filename"] == "x.jpg"
    form = client.post("/api/v1/suggest", files=[("image", ("x.jpg", data, "image/jpeg"))])
    assert raw.json()["results"] == form.json()["results"]


def test_suggest_excludes_tags_as_a_person_types_them(client):
    everything = [s["tag"] for s in suggestions(client.post("/api/v1/suggest", params={"k": 6}, files=files(photo())))]
    typed = f" {everything[0].upper()} ,{everything[1]},,nothing-like-it"
    rest = client.post("/api/v1/suggest", params={"k": 6, "exclude": typed}, files=files(photo()))
    assert [s["tag"] for s in suggestions(rest)] == everything[2:]


def test_suggest_with_the_other_scorer(client):
    plain = suggestions(client.post("/api/v1/suggest", params={"k": 6}, files=files(photo())))
    loglik = suggestions(client.post("/api/v1/suggest", params={"k": 6, "scorer": "loglik"}, files=files(photo())))
    # each score is that tag's own calibrated probability under the scorer asked for
    assert all(0 <= s["score"] <= 1 for s in loglik) and loglik != plain


@pytest.mark.parametrize("params, code", [
    ({"k": "0"}, "bad_parameter"), ({"k": "101"}, "bad_parameter"), ({"k": "ten"}, "bad_parameter"),
    ({"scorer": "nope"}, "unknown_plugin"),
])
@pytest.mark.parametrize("endpoint", ["/api/v1/suggest", "/api/v1/plot"])
def test_bad_parameters_are_422(client, endpoint, params, code):
    assert_error(client.post(endpoint, params=params, files=files(photo())), 422, code)


@pytest.mark.parametrize("data, status, code", [
    (b"", 400, "empty_image"),
    (b"plain text, not a picture", 400, "not_an_image"),
    (photo(format="JPEG")[:-200], 400, "truncated_image"),
])
@pytest.mark.parametrize("endpoint", ["/api/v1/suggest", "/api/v1/plot"])
def test_bad_images_are_refused_with_their_reason(client, endpoint, data, status, code):
    assert_error(client.post(endpoint, files=files(data)), status, code)


def test_requests_without_a_photo_are_refused(client):
    assert_error(client.post("/api/v1/suggest", content=b"{}", headers={"content-type": "application/json"}),
                 415, "unsupported_media_type")
    assert_error(client.post("/api/v1/suggest", files=[("photo", ("a.png", photo(), "image/png"))]), 400, "no_image")
    assert_error(client.post("/api/v1/suggest", content=b"xx", headers={"content-type": "multipart/form-data"}),
                 400, "bad_multipart")


def test_too_many_photos_are_refused(client):
    assert_error(client.post("/api/v1/suggest", files=files(*[b"x"] * (MAX_IMAGES + 1))), 413, "too_many_images")


def test_the_apps_body_limit_is_kept(model):
    with TestClient(create_app(model, max_body_bytes=2000), base_url=BASE) as client:
        big = photo() + b"\0" * 2000
        assert_error(client.post("/api/v1/suggest", content=big, headers={"content-type": "image/png"}),
                     413, "body_too_large")
        assert client.post("/api/v1/suggest", content=photo(), headers={"content-type": "image/png"}).status_code == 200


# -- plot -------------------------------------------------------------------------------------------


def test_plot_draws_png_and_svg(client):
    png = client.post("/api/v1/plot", params={"k": 2}, files=files(photo()))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).format == "PNG"
    svg = client.post("/api/v1/plot", params={"format": "svg"}, files=files(photo()))
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content


def test_plot_refuses_other_formats_and_several_photos(client):
    assert_error(client.post("/api/v1/plot", params={"format": "gif"}, files=files(photo())), 422, "bad_parameter")
    assert_error(client.post("/api/v1/plot", files=files(photo(), photo())), 422, "bad_parameter")


# -- what is not there ------------------------------------------------------------------------------


def test_unknown_paths_and_methods_are_json_errors(client):
    assert_error(client.get("/api/v1/nothing"), 404, "not_found")
    assert_error(client.get("/api/v1/suggest"), 405, "method_not_allowed")
    assert_error(client.post("/api/v1/tags"), 405, "method_not_allowed")

