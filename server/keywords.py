"""POST /api/v1/embed: the photo sent, with the chosen tags embedded as XMP and IPTC keywords.

The web page's "Download with tags". The answer is the same file, byte for byte, but for the
metadata that carries the new keywords (and Lablr's record of them); nothing is stored.
"""

from pathlib import PurePath
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from lablr.core import defaults
from lablr.core.data.catalog import TAG_RULE, is_acceptable_tag
from lablr.core.errors import LablrError
from lablr.core.photometa.tagging import embed as embed_tags

from .uploads import read_uploads

ADDED_HEADER = "Lablr-Added-Tags"  # the tags that were not in the photo yet, comma-separated, URL-encoded


async def embed(request):
    model = request.app.state.model
    uploads = await read_uploads(request, request.app.state.max_body_bytes)
    if len(uploads) != 1:
        raise LablrError(f"Send one photo to embed tags in; this request has {len(uploads)}.",
                         code="bad_parameter", status=422)
    upload, tags = uploads[0], chosen_tags(request.query_params.get("tags", ""))
    written, embedded = await run_in_threadpool(embed_tags, upload.data, tags, model.name)
    name = PurePath(upload.filename or "").name or "photo" + _SUFFIXES.get(embedded.mime, "")
    return Response(written.data, media_type=embedded.mime, headers={
        "Content-Disposition": f"attachment; filename=\"{_ascii(name)}\"; filename*=UTF-8''{quote(name, safe='')}",
        ADDED_HEADER: ",".join(quote(tag, safe="") for tag in written.added),
    })


def chosen_tags(raw: str) -> list[str]:
    tags = [tag.strip() for tag in raw.split(",") if tag.strip()]
    if not tags:
        raise LablrError("Name the tags to embed: tags=beach,sunset (comma-separated).", code="bad_parameter",
                         status=422)
    if len(tags) > defaults.MAX_K:
        raise LablrError(f"At most {defaults.MAX_K} tags; this request has {len(tags)}.", code="bad_parameter",
                         status=422)
    for tag in tags:
        if not is_acceptable_tag(tag):
            raise LablrError(f"A tag is {TAG_RULE}: {tag[:40]!r}.", code="bad_parameter", status=422)
    return tags


def _ascii(name: str) -> str:
    """The name for clients that do not read filename* (RFC 6266): ASCII, no quotes."""
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)


_SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png", "image/tiff": ".tif", "image/webp": ".webp"}
