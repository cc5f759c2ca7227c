"""POST /api/v1/embed: the photo back with the chosen tags as keywords, in-process and from a real server."""

import importlib.util
from urllib.parse import unquote

import httpx
import pytest
from lablr_server import running_server
from photo_files import (
    CAMERA,
    MIME,
    OLD_IPTC,
    OLD_XMP,
    UNDECODABLE_XMP,
    WITH_IPTC,
    icc,
    jpeg_scan,
    jpeg_with_xmp,
    make_photo,
    needs_exiftool,
    pixels,
    read_tags,
)
from starlette.testclient import TestClient
from test_server import bomb_png

from lablr.server.app import create_app

pytestmark = needs_exiftool
UNICODE = ["été", "東京", "São Paulo"]


@pytest.fixture(scope="module")
def client(tiny_bundle):
    with TestClient(create_app(tiny_bundle), base_url="http://127.0.0.1:8777") as client:
        yield client


def embed(client, data, tags, name="photo.jpg", mime="image/jpeg"):
    return client.post("/api/v1/embed", params={"tags": ",".join(tags)}, files={"image": (name, data, mime)})


def added(response) -> list[str]:
    header = response.headers["lablr-added-tags"]
    return [unquote(tag) for tag in header.split(",")] if header else []


@pytest.mark.parametrize("suffix", ["jpg", "png", "tif", "webp"])
def test_the_same_photo_comes_back_with_the_tags_in_it(client, tmp_path, suffix):
    photo = make_photo(tmp_path / f"holiday.{suffix}")
    original = photo.read_bytes()
    response = embed(client, original, ["beach", *UNICODE, "CAFÉ"], name=photo.name, mime=MIME[suffix])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MIME[suffix]
    assert response.headers["content-disposition"] == (f"attachment; filename=\"holiday.{suffix}\"; "
                                                       f"filename*=UTF-8''holiday.{suffix}")
    assert added(response) == ["beach", *UNICODE]  # "CAFÉ" is the "café" the photo has

    returned = tmp_path / f"returned.{suffix}"
    returned.write_bytes(response.content)
    seen = read_tags(returned)
    assert seen["Subject"] == OLD_XMP + ["beach", *UNICODE]
    assert seen["Keywords"] == (OLD_IPTC + ["beach", *UNICODE] if suffix in WITH_IPTC else [])
    assert seen["Added"] == ["beach", *UNICODE] and seen["LablrModel"] == "tiny-model"
    assert {key: seen[key] for key in CAMERA} == CAMERA
    assert icc(response.content) == icc(original)
    assert (pixels(response.content) == pixels(original)).all()
    if suffix == "jpg":
        assert jpeg_scan(response.content) == jpeg_scan(original)


def test_tags_the_photo_already_has_give_back_the_very_same_bytes(client, tmp_path):
    original = make_photo(tmp_path / "a.jpg").read_bytes()
    response = embed(client, original, ["old tag", "Café"])
    assert response.status_code == 200 and added(response) == []
    assert response.content == original


def test_a_raw_image_body_works_too(client, tmp_path):
    original = make_photo(tmp_path / "a.png").read_bytes()
    response = client.post("/api/v1/embed", params={"tags": "red", "filename": "../Été \"1\".png"},
                           content=original, headers={"Content-Type": "image/png"})
    assert response.status_code == 200 and added(response) == ["red"]
    assert response.headers["content-disposition"] == ("attachment; filename=\"_t_ _1_.png\"; "
                                                       "filename*=UTF-8''%C3%89t%C3%A9%20%221%22.png")


@pytest.mark.parametrize("params, status, code", [
    ({}, 422, "bad_parameter"),
    ({"tags": " , "}, 422, "bad_parameter"),
    ({"tags": ",".join(f"t{i}" for i in range(101))}, 422, "bad_parameter"),
    ({"tags": "x" * 101}, 422, "bad_parameter"),
    ({"tags": "a\nb"}, 422, "bad_parameter"),
])
def test_bad_tags_are_refused_with_a_clear_message(client, tmp_path, params, status, code):
    data = make_photo(tmp_path / "a.jpg").read_bytes()
    response = client.post("/api/v1/embed", params=params, files={"image": ("a.jpg", data, "image/jpeg")})
    assert response.status_code == status and response.json()["error"]["code"] == code


def test_bad_photos_get_json_errors_not_500s(client, tmp_path):
    good = make_photo(tmp_path / "a.jpg").read_bytes()
    gif = tmp_path / "a.gif"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(gif)
    cases = {b"": 400, b"not a photo": 400, good[:300]: 400, gif.read_bytes(): 415}
    for data, status in cases.items():
        response = embed(client, data, ["red"])
        assert response.status_code == status, (data[:20], response.text)
        assert response.json()["error"]["message"]
    two = client.post("/api/v1/embed", params={"tags": "red"},
                      files=[("image", ("a.jpg", good, "image/jpeg")), ("image", ("b.jpg", good, "image/jpeg"))])
    assert two.status_code == 422
    assert embed(client, bomb_png(), ["red"], mime="image/png").status_code == 413


@pytest.mark.parametrize("kind", list(UNDECODABLE_XMP))
def test_a_photo_whose_metadata_cannot_all_be_read_is_refused_not_stripped(client, tmp_path, kind):
    data = jpeg_with_xmp(tmp_path / "a.jpg", UNDECODABLE_XMP[kind]).read_bytes()
    response = embed(client, data, ["red"])
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "unreadable_metadata" and "left as it was" in error["message"]


def test_every_length_of_a_cut_photo_is_refused_or_embedded_whole(client, tmp_path):
    good = make_photo(tmp_path / "a.png", keywords=False).read_bytes()
    for length in [*range(0, 64), *range(64, len(good), 97)]:
        response = embed(client, good[:length], ["red"], mime="image/png")
        assert response.status_code in (200, 400), (length, response.text)


def test_the_real_server_embeds_and_lists_it_in_its_openapi(tiny_bundle, tmp_path):
    original = make_photo(tmp_path / "a.jpg").read_bytes()
    with running_server(tiny_bundle) as (base, _):
        response = httpx.post(base + "/api/v1/embed", params={"tags": "red,東京"},
                              files={"image": ("a.jpg", original, "image/jpeg")}, timeout=60)
        schema = httpx.get(base + "/openapi.json", timeout=30).json()
        if importlib.util.find_spec("lablr.server.guard"):  # the Host/Origin guard covers this POST too
            for headers, status in [({"Origin": "https://evil.example"}, 403),
                                    ({"Sec-Fetch-Site": "cross-site"}, 403), ({"Host": "evil.example"}, 400)]:
                refused = httpx.post(base + "/api/v1/embed", params={"tags": "red"}, headers=headers,
                                     files={"image": ("a.jpg", original, "image/jpeg")}, timeout=60)
                assert refused.status_code == status and refused.json()["error"]["message"], headers
    assert response.status_code == 200 and added(response) == ["red", "東京"]
    (tmp_path / "b.jpg").write_bytes(response.content)
    assert read_tags(tmp_path / "b.jpg")["Keywords"] == OLD_IPTC + ["red", "東京"]
    assert jpeg_scan(response.content) == jpeg_scan(original)
    operation = schema["paths"]["/api/v1/embed"]["post"]
    assert operation["operationId"] == "embed" and "Lablr-Added-Tags" in operation["responses"]["200"]["headers"]
