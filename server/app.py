"""The Starlette app: the JSON API under /api/v1, its OpenAPI description, and the web page.

Each endpoint is a module-level `async def name(request)` that finds the loaded model as
`request.app.state.model` and the body limit as `request.app.state.max_body_bytes`, in
Starlette's own style. The model is loaded once per worker, when the app starts. Decoding and
inference run in a thread pool, so the event loop keeps serving while a photo is scored. Every
error a client can cause is answered with JSON, {"error": {"code", "message"}}, and the right
status.
"""

import contextlib
import logging
import os
import threading
import time
from pathlib import Path

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lablr.core import __version__, defaults
from lablr.core.errors import LablrError
from lablr.core.model import PICTURE_TYPES, Model, check_picture_format
from lablr.core.plugins import all_parts

from . import feedback
from .guard import LOOPBACK_NAMES, BodyDeadline, HostGuard, WatchedSend
from .keywords import embed
from .openapi import openapi_schema
from .options import ServerOptions
from .uploads import read_uploads

log = logging.getLogger("lablr.server")
STATIC = Path(__file__).parent / "static"
PLOT_LOCK = threading.Lock()  # matplotlib shares font objects between figures, and so between threads


# -- the endpoints ----------------------------------------------------------------------------------


async def health(request):
    return JSONResponse({"status": "ok", "version": __version__, "model": request.app.state.model.summary(),
                         "limits": {"max_k": defaults.MAX_K, "max_tags": defaults.MAX_FEEDBACK_TAGS}})


async def suggest(request):
    started = time.perf_counter()
    model = request.app.state.model
    uploads = await read_uploads(request, request.app.state.max_body_bytes)
    k, scorer = _k(request), _scorer(request, model)
    exclude = request.query_params.get("exclude", "").split(",")

    def work():
        images = model.decode_all([upload.data for upload in uploads])
        return model.suggest(images, k, scorer=scorer, exclude=exclude)

    found = await run_in_threadpool(work)
    return JSONResponse({
        "results": [{"filename": upload.filename, "suggestions": [s.as_dict() for s in suggestions]}
                    for upload, suggestions in zip(uploads, found)],
        "model": model.name,
        "elapsed_ms": round(1000 * (time.perf_counter() - started), 2),
    })


async def plot(request):
    model = request.app.state.model
    uploads = await read_uploads(request, request.app.state.max_body_bytes)
    k, scorer = _k(request), _scorer(request, model)
    picture_format = request.query_params.get("format", "png")
    check_picture_format(picture_format)
    if len(uploads) != 1:
        raise LablrError(f"The picture is of one photo; this request has {len(uploads)}.",
                         code="bad_parameter", status=422)

    def draw(image):
        with PLOT_LOCK:
            return model.plot(image, k, format=picture_format, scorer=scorer)

    image = await run_in_threadpool(model.decode, uploads[0].data)
    async with request.app.state.plot_turn:  # pictures wait here, in the event loop, not in pool threads
        data = await run_in_threadpool(draw, image)
    return Response(data, media_type=PICTURE_TYPES[picture_format])


async def tags(request):
    model = request.app.state.model
    dispersion = model.tag_model.dispersion()
    rows = [{"tag": tag, "count": int(count), "dispersion": round(float(spread), 4)}
            for tag, count, spread in zip(model.tag_model.tags, model.tag_model.counts, dispersion)]
    rows.sort(key=lambda row: (-row["count"], row["tag"]))
    vocabulary = model.tags[len(model.tag_model.tags):]  # the photo vocabulary's, taught by no photo yet
    return JSONResponse({"model": model.name, "tags": rows, "vocabulary": vocabulary})


async def plugins(request):
    return JSONResponse({"plugins": [part.as_dict() for part in all_parts()]})


async def openapi(request):
    return JSONResponse(openapi_schema(request.app.state.max_body_bytes))


async def index(request):
    return FileResponse(STATIC / "index.html")


ROUTES = [
    Route("/", index, methods=["GET"]),
    Route("/api/v1/health", health, methods=["GET"]),
    Route("/api/v1/suggest", suggest, methods=["POST"]),
    Route("/api/v1/plot", plot, methods=["POST"]),
    Route("/api/v1/embed", embed, methods=["POST"]),
    Route("/api/v1/tags", tags, methods=["GET"]),
    Route("/api/v1/plugins", plugins, methods=["GET"]),
    Route("/api/v1/feedback", feedback.feedback, methods=["POST"]),
    Route("/api/v1/personal", feedback.personal, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]


# -- the app ----------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def lifespan(app):
    app.state.model, blank_latent = await run_in_threadpool(_load_and_warm, app.state.model_source)
    app.state.plot_turn = anyio.Lock()
    await run_in_threadpool(feedback.open_personal, app.state, app.state.personal_enabled)
    # matplotlib's import and fonts take a second or two: after start-up, not before health answers
    threading.Thread(target=_warm_picture, args=(app.state.model, blank_latent), daemon=True).start()
    summary = app.state.model.summary()
    where = f" at {app.state.address}" if app.state.address else ""
    log.info("Lablr is serving%s with model %s (%d tags, %s + %s), worker %d", where, summary["name"],
             summary["tags"], summary["encoder"], summary["scorer"], os.getpid())
    yield


def create_app(model=defaults.DEFAULT_MODEL, *, max_body_bytes: int = defaults.MAX_BODY_BYTES,
               address: str | None = None, allowed_hosts=LOOPBACK_NAMES,
               body_timeout: float = defaults.BODY_TIMEOUT, personal: bool = True, extension_ids=()) -> Starlette:
    """The app for a model: a bundle's path, a bundled model's name, or a loaded Model; with the
    user's personal layer of that model unless `personal` is False.

    Only requests whose Host is one of `allowed_hosts` and that come from no other site reach any
    route (lablr.server.guard); in-process tests use base_url="http://127.0.0.1:8777".
    """
    handlers = {LablrError: _lablr_error, HTTPException: _http_error}
    middleware = [Middleware(UnexpectedErrors),
                  Middleware(HostGuard, allowed_hosts=allowed_hosts, extension_ids=extension_ids),
                  Middleware(BodyDeadline, seconds=body_timeout), Middleware(feedback.PersonalRefresh)]
    app = Starlette(routes=ROUTES, lifespan=lifespan, exception_handlers=handlers, middleware=middleware)
    app.state.model_source = model
    app.state.max_body_bytes = max_body_bytes
    app.state.address = address
    app.state.personal_enabled = personal
    return app


def create_app_from_env() -> Starlette:
    """The app as `lablr serve` configures it (its ServerOptions), for each uvicorn worker (a factory)."""
    options = ServerOptions.from_environment()
    if options is None:
        return create_app()
    return create_app(options.model, max_body_bytes=options.max_body_bytes, address=options.address,
                      allowed_hosts=options.host_names(), body_timeout=options.body_timeout,
                      personal=options.personal, extension_ids=options.extension_ids)


def _load_and_warm(model) -> tuple[Model, np.ndarray]:
    """The model, run once on a blank photo; and the blank's latent, for _warm_picture to draw."""
    loaded = model if isinstance(model, Model) else Model.load(model)
    blank = np.full((1, loaded.image_size, loaded.image_size, 3), 255, np.uint8)
    latent, concepts = loaded.encode_with_concepts(blank)  # prepares the encoder
    loaded.score(latent, concepts=concepts)  # derives the tag statistics, builds the scorer
    all_parts()
    return loaded, latent


def _warm_picture(loaded: Model, latent: np.ndarray):
    """Draws the blank photo already encoded at start-up: the picture's first draw without a second run of
    the network."""
    with PLOT_LOCK:  # a picture asked for meanwhile waits for this one
        loaded.visualizer.draw(latent[0], loaded.tag_model, loaded.tags[:1])  # imports matplotlib, loads fonts


def _k(request) -> int:
    raw = request.query_params.get("k")
    if raw is None:
        return defaults.DEFAULT_K
    try:
        k = int(raw)
    except ValueError:
        k = None
    if k is None or not 1 <= k <= defaults.MAX_K:
        raise LablrError(f"k must be a whole number from 1 to {defaults.MAX_K}, not {raw!r}.", code="bad_parameter",
                         status=422)
    return k


def _scorer(request, loaded) -> str | None:
    name = request.query_params.get("scorer") or None
    if name is not None:
        loaded.scorer(name)  # UnknownPart (422) names the registered scorers
    return name


def _error(status, code, message):
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def _lablr_error(request, error: LablrError):
    return _error(error.status, error.code, error.message)


HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request, error: HTTPException):
    message = {404: f"Nothing at {request.url.path}. The API is under /api/v1; see /openapi.json.",
               405: f"{request.method} is not allowed on {request.url.path}."}.get(error.status_code, error.detail)
    return _error(error.status_code, HTTP_CODES.get(error.status_code, "http_error"), message)


class UnexpectedErrors:
    """Answers an error no handler expected with a JSON 500, logged once, and the connection kept.

    Starlette's own last-resort handler re-raises after answering, and uvicorn then closes the
    keep-alive connection: every later request of that client would fail too.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        watched_send = WatchedSend(send)
        try:
            await self.app(scope, receive, watched_send)
        except LablrError as error:  # raised before a route (the layer's refresh), beyond the app's handlers
            if watched_send.started:
                raise
            await _error(error.status, error.code, error.message)(scope, receive, send)
        except Exception as error:  # noqa: BLE001 - the one place every unexpected error ends
            if watched_send.started:
                raise  # half an answer was sent: only closing the connection can say so
            log.exception("Unexpected error on %s %s", scope.get("method"), scope.get("path"))
            response = _error(500, "internal_error",
                              f"Lablr failed unexpectedly ({type(error).__name__}); see the server log.")
            await response(scope, receive, send)
