"""Learning from every upload: POST /api/v1/feedback, GET /api/v1/personal, and the check
that keeps each worker's model up to date with the personal layer.

The app's state holds the layer (`personal`, None when serving with --no-personal) and its
`learning` (lablr.core.personal.learning), whose model is the one served. Before every request
but health, the layer's stamps are read (one indexed SQLite row, on a connection that no write
holds): when another request or another worker has written since, the new events are added to
the model, a few tags re-derived, and the new model swapped in whole. A request already scoring
keeps the model it started with, so suggest never waits on a feedback.
"""

import logging
import os

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from lablr.core.errors import LablrError
from lablr.core.personal.layer import FEEDBACK, PersonalLayer, hash_as_decoded, parse_tags, photo_hash
from lablr.core.personal.learning import Learning

from .uploads import read_form

log = logging.getLogger("lablr.server")
UNCHECKED = ("/api/v1/health",)  # answers at once, whatever the layer is doing


def open_personal(state, enabled: bool):
    """Called once the model is loaded: open its layer and serve the model with it."""
    # A layer is keyed by its bundle's checksum: a model that was never saved has none.
    state.personal = PersonalLayer.for_bundle(state.model) if enabled and state.model.path else None
    state.learning = None
    if state.personal is None:
        log.info("Serving the model alone%s: feedback is refused.", "" if state.model.path else " (not saved)")
        return
    state.learning = Learning(state.model, state.personal)
    refresh(state)
    learned = state.learning.learned()
    log.info("Learning from your photos in %s: %d so far, %d tags added.", state.personal.path, learned.photos,
             len(learned.added))


def refresh(state):
    """Serve the model the layer's stamps say (new events of any process learned)."""
    if state.learning is not None and state.learning.sync():
        state.model = state.learning.model


class PersonalRefresh:
    """ASGI middleware: before each request, the model is the one the layer's stamps say."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/api/") and scope["path"] not in UNCHECKED:
            state = scope["app"].state
            learning = getattr(state, "learning", None)
            if learning is not None and state.personal.stamps() != learning.stamps:
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
    model, data, learning = state.model, uploads[0].data, state.learning

    def work():
        pixels = model.decode(data)
        digest = photo_hash(pixels)
        latents, concepts = model.encode_with_concepts(pixels[None])  # one run of the network
        latent = latents[0]
        shown = learning.shown_logits(latent, suggested, concepts=None if concepts is None else concepts[0]) \
            if suggested else None
        event = state.personal.record(digest, latent, tags, suggested, shown, known_as=[hash_as_decoded(pixels)],
                                       source=FEEDBACK)
        refresh(state)  # answered only once this worker's model has learned it
        return digest, event

    digest, event = await run_in_threadpool(work)
    learned = learning.learned()
    answer = {
        "recorded": event is not None,
        "photo_hash": digest,
        "tags": tags,
        "suggested": suggested,
        "learning": [t for t in tags if t in model.tag_index or t in learned.added],
        "pending": {t: learned.pending[t] for t in tags if t in learned.pending},
        "held_back": {t: learned.held_back[t] for t in tags if t in learned.held_back},
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
        return {"enabled": False, "photos": 0, "added_tags": [], "pending_tags": {}, "held_back_tags": {},
                "worker": os.getpid()}
    learned = state.learning.learned()
    return {"enabled": True, "photos": learned.photos, "added_tags": learned.added,
            "pending_tags": learned.pending, "held_back_tags": learned.held_back,
            "min_photos": state.personal.min_photos,
            "version": state.learning.stamps[0], "worker": os.getpid()}
