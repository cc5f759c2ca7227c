"""Learning from every upload: POST /api/v1/feedback, GET /api/v1/personal, and the check
that keeps each worker's model up to date with the personal layer.

The app's state holds the bundle's own tag model (`base_tag_model`), the layer (`personal`,
None when serving with --no-personal), and the layer version its model was built from. Before
every request the version stamp is read (one indexed SQLite row); when another request or
another worker has written since, the model is rebuilt from the bundle's sums and the events.
"""

import logging
import os
import threading

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from lablr.core.errors import LablrError
from lablr.core.personal.layer import PersonalLayer, parse_tags, photo_hash

from .uploads import read_form

log = logging.getLogger("lablr.server")
_rebuild_lock = threading.Lock()


def open_personal(state, enabled: bool):
    """Called once the model is loaded: open its layer and serve the model with it."""
    state.base_tag_model = state.model.tag_model
    # A layer is keyed by its bundle's checksum: a model that was never saved has none.
    state.personal = PersonalLayer.for_bundle(state.model) if enabled and state.model.path else None
    state.personal_version = None
    state.learned = None
    if state.personal is None:
        log.info("Serving the model alone%s: feedback is refused.", "" if state.model.path else " (not saved)")
        return
    refresh(state)
    learned = state.learned
    log.info("Learning from your photos in %s: %d so far, %d tags added.", state.personal.path, learned.photos,
             len(learned.added))


def refresh(state):
    """Rebuild the served model if the layer changed since it was built (any process's write)."""
    layer = state.personal
    if layer is None or layer.version() == state.personal_version:
        return
    with _rebuild_lock:
        version, events = layer.snapshot()
        if version == state.personal_version:
            return
        tag_model, learned = layer.apply(state.base_tag_model, events, also_known=state.model.vocabulary_tags)
        tag_model.centroids()  # derive the covariances' factors now, not in the next request
        state.model = state.model.with_tag_model(tag_model)
        state.learned, state.personal_version = learned, version


class PersonalRefresh:
    """ASGI middleware: before each request, the model is the one the layer's version stamp says."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            state = scope["app"].state
            if getattr(state, "personal", None) is not None and state.personal.version() != state.personal_version:
                await run_in_threadpool(refresh, state)
        await self.app(scope, receive, send)


async def feedback(request):
    """A published photo's final tags: its latent is added to each tag's sums."""
    state = request.app.state
    if state.personal is None:
        raise LablrError("This server was started with --no-personal: it serves the model alone and learns "
                         "nothing. Restart it without --no-personal to record feedback.",
                         code="personal_off", status=409)
    uploads, fields = await read_form(request, state.max_body_bytes)
    if len(uploads) != 1:
        raise LablrError(f"Feedback is for one photo; this request has {len(uploads)}.", code="bad_parameter",
                         status=422)
    tags = parse_tags(fields.get("tags"))
    if not tags:
        raise LablrError("No tags: send the photo's final tags, comma-separated, in the field 'tags'.",
                         code="no_tags", status=422)
    suggested = parse_tags(fields["suggested"], "suggested") if "suggested" in fields else None
    model, data = state.model, uploads[0].data

    def work():
        latent = model.encode(model.decode(data)[None])[0]
        event = state.personal.record(photo_hash(data), latent, tags, suggested)
        refresh(state)
        return event

    event = await run_in_threadpool(work)
    learned = state.learned
    answer = {
        "recorded": event is not None,
        "photo_hash": photo_hash(data),
        "tags": tags,
        "suggested": suggested,
        "learning": [t for t in tags if t in model.tag_index or t in learned.added],
        "pending": {t: learned.pending[t] for t in tags if t in learned.pending},
        "min_photos": state.personal.min_photos,
        "personal": _status(state),
    }
    if event is None:
        answer["message"] = "This photo was already learned from; it counts once."
    return JSONResponse(answer)


async def personal(request):
    """What the model has learned from the user's photos."""
    return JSONResponse(_status(request.app.state))


def _status(state) -> dict:
    if state.personal is None:
        return {"enabled": False, "photos": 0, "added_tags": [], "pending_tags": {}, "worker": os.getpid()}
    learned = state.learned
    return {"enabled": True, "photos": learned.photos, "added_tags": learned.added,
            "pending_tags": learned.pending, "min_photos": state.personal.min_photos,
            "version": state.personal_version, "worker": os.getpid()}
