"""Reading photos out of a request, in memory, within the body limit.

A request carries its photos either as multipart/form-data (one or more files in the field
`image`) or as a raw body whose Content-Type is image/*. Nothing is written to disk: the body
is read into memory as it streams in, and refused (413) as soon as it passes the limit.
Starlette's own form parser is not used because it spools files over 1 MB to temporary files.
"""

from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from lablr.core.defaults import MAX_IMAGES
from lablr.core.errors import LablrError

FIELD = "image"
# A body a little over the limit is read to its end and dropped, so that a client that sends it
# whole before reading (most do) still gets the 413; a far bigger one is cut off.
DRAIN_FACTOR = 4
# The photos and a few text fields: a body of many tiny parts is refused at the first one too many,
# before parsing it all holds up the event loop (200,000 empty parts fit in 11 MB).
MAX_PARTS = MAX_IMAGES + 16


@dataclass
class Upload:
    filename: str | None
    data: bytes


class _Part:
    def __init__(self):
        self.headers = {}
        self.name = None
        self.filename = None
        self.data = bytearray()


def too_large(limit: int) -> LablrError:
    return LablrError(f"The request body is larger than {limit:,} bytes. Send a smaller photo "
                      "(Lablr looks at a few hundred pixels a side; 2,000 pixels is plenty).",
                      code="body_too_large", status=413)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, read as it streams in; 413 once it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise LablrError("The Content-Length header is not a number.", code="bad_request", status=400)
        if int(declared) > limit:
            await _drain(request, int(declared), limit)
            raise too_large(limit)
    body = bytearray()
    try:
        async for chunk in request.stream():
            if len(body) + len(chunk) > limit:
                await _drain(request, None, limit)
                raise too_large(limit)
            body += chunk
    except ClientDisconnect:
        raise LablrError("The client went away before the photo arrived.", code="incomplete_body") from None
    return bytes(body)


async def _drain(request: Request, declared: int | None, limit: int):
    if declared is not None and declared > DRAIN_FACTOR * limit:
        return
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > DRAIN_FACTOR * limit:
                return
    except (ClientDisconnect, RuntimeError):  # RuntimeError: the stream was already consumed
        return


async def read_uploads(request: Request, limit: int) -> list[Upload]:
    """The photos in a request, in the order sent. Raises LablrError (400, 413, 415)."""
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    media_type = media_type.decode("latin-1").lower()
    if media_type == "multipart/form-data":
        uploads = _photos(parse_parts(*await _multipart_body(request, options, limit)))
    elif media_type.startswith("image/"):
        uploads = [Upload(request.query_params.get("filename"), await read_body(request, limit))]
    else:
        shown = media_type or "no Content-Type"
        raise await _unsupported_media_type(request, limit, f"Lablr cannot read {shown}. Send multipart/form-data "
                                            f"with the photo in the field '{FIELD}', or the photo itself with an "
                                            "image/* Content-Type.")
    if len(uploads) > MAX_IMAGES:
        raise LablrError(f"At most {MAX_IMAGES} photos in one request; this one has {len(uploads)}.",
                         code="too_many_images", status=413)
    return uploads


async def read_form(request: Request, limit: int) -> tuple[list[Upload], dict[str, str]]:
    """(photos, text fields by name) of a multipart/form-data request. Raises LablrError (400, 413, 415)."""
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    if media_type.decode("latin-1").lower() != "multipart/form-data":
        raise await _unsupported_media_type(request, limit, f"Send multipart/form-data: the photo as a file in the "
                                            f"field '{FIELD}', and the other fields as text.")
    return parse_form(*await _multipart_body(request, options, limit))


async def _multipart_body(request: Request, options: dict, limit: int) -> tuple[bytes, bytes]:
    """(body, boundary) of a multipart/form-data request whose Content-Type has these options."""
    body = await read_body(request, limit)
    boundary = options.get(b"boundary")
    if not boundary:
        raise LablrError("The multipart body has no boundary in its Content-Type.", code="bad_multipart")
    return body, boundary


async def _unsupported_media_type(request: Request, limit: int, message: str) -> LablrError:
    """The 415 to raise with this message, once the body is drained as for a 413."""
    declared = request.headers.get("content-length", "")
    await _drain(request, int(declared) if declared.isdigit() else None, limit)
    return LablrError(message, code="unsupported_media_type", status=415)


def parse_form(body: bytes, boundary: bytes) -> tuple[list[Upload], dict[str, str]]:
    """(photos, the first text field of each other name). Raises LablrError (400)."""
    parts = parse_parts(body, boundary)
    fields = {}
    for part in parts:
        if part.name != FIELD and part.name not in fields:
            try:
                fields[part.name] = bytes(part.data).decode("utf-8")
            except UnicodeDecodeError:
                raise LablrError(f"The field '{part.name}' is not UTF-8 text.", code="bad_multipart") from None
    return _photos(parts), fields


def _photos(parts) -> list[Upload]:
    uploads = [Upload(p.filename, bytes(p.data)) for p in parts if p.name == FIELD]
    if not uploads:
        sent = ", ".join(sorted({repr(p.name) for p in parts})) or "nothing"
        raise LablrError(f"No photo: send it as a file in the form field '{FIELD}' (this request had {sent}).",
                         code="no_image")
    return uploads


def parse_parts(body: bytes, boundary: bytes) -> list[_Part]:
    parts: list[_Part] = []
    header = [b"", b""]

    def on_part_begin():
        if len(parts) == MAX_PARTS:
            raise LablrError(f"A request may have at most {MAX_PARTS} parts ({MAX_IMAGES} photos and a few fields); "
                             "this one has more.", code="too_many_parts", status=413)
        parts.append(_Part())

    def on_header_field(data, start, end):
        header[0] += data[start:end]

    def on_header_value(data, start, end):
        header[1] += data[start:end]

    def on_header_end():
        parts[-1].headers[header[0].lower()] = header[1]
        header[:] = [b"", b""]

    def on_headers_finished():
        _, options = parse_options_header(parts[-1].headers.get(b"content-disposition", b""))
        part = parts[-1]
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            part.filename = options[b"filename"].decode("utf-8", "replace")

    def on_part_data(data, start, end):
        parts[-1].data += data[start:end]

    callbacks = {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                 "on_header_value": on_header_value, "on_header_end": on_header_end,
                 "on_headers_finished": on_headers_finished, "on_part_data": on_part_data}
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except (MultipartParseError, ValueError) as error:
        raise LablrError(f"The multipart body is malformed ({error}).", code="bad_multipart") from None
    return parts
