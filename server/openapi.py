"""The OpenAPI description of Lablr's API, written out by hand: it is the contract that the
browser extension and other programs rely on, so it is kept plain and complete."""

from lablr.core import __version__, defaults
from lablr.core.photometa.store import WRITABLE
from lablr.core.plugins import KINDS

from .keywords import ADDED_HEADER
from .uploads import FIELD


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses):
    meaning = {400: "No photo, or one that cannot be decoded (empty, truncated, not an image); or a Host "
                    "this server does not answer to.",
               403: "A request from another website (its Origin, or Sec-Fetch-Site: cross-site); for feedback, "
                    f"a browser's request (with an Origin) without the {defaults.CLIENT_HEADER} header.",
               404: "No such path.",
               408: "The body did not arrive in time.",
               409: "The server runs with --no-personal and records no feedback.",
               413: "The body is over the limit, or the images have more pixels than Lablr decodes.",
               415: "The body is neither multipart/form-data nor an image/* type (embed: or a format Lablr "
                    "cannot write keywords into).",
               422: "A parameter is out of range or names nothing registered.",
               503: "The personal layer cannot be read (damaged): the message names the file, left as it is.",
               507: "The personal layer cannot be written now (a full disk); nothing was recorded."}
    return {str(s): _json(_ref("Error"), meaning[s]) for s in statuses}


def openapi_schema(max_body_bytes: int = defaults.MAX_BODY_BYTES) -> dict:
    photo_body = {
        "required": True,
        "description": f"One or more photos as files in the multipart field `{FIELD}` (at most {defaults.MAX_IMAGES}), "
                       f"or one photo as the raw body with its image/* type. At most {max_body_bytes:,} bytes "
                       f"in all, {defaults.MAX_IMAGE_PIXELS:,} pixels per image and "
                       f"{defaults.MAX_REQUEST_PIXELS:,} for all of them.",
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": [FIELD],
                "properties": {FIELD: {"type": "array", "items": {"type": "string", "format": "binary"}}},
            }},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
    k = {"name": "k", "in": "query", "description": "How many tags.",
         "schema": {"type": "integer", "minimum": 1, "maximum": defaults.MAX_K, "default": defaults.DEFAULT_K}}
    scorer = {"name": "scorer", "in": "query", "description": "A registered scorer (default: the model's own).",
              "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Lablr", "version": __version__,
                 "description": "Suggests the tags that make a photo found on Flickr."},
        "paths": {
            "/api/v1/health": {"get": {
                "summary": "Whether the server is up, and its model.", "operationId": "health",
                "responses": {"200": _json(_ref("Health"), "The server is ready.")},
            }},
            "/api/v1/suggest": {"post": {
                "summary": "Suggest tags for each photo, best first.", "operationId": "suggest",
                "parameters": [k, scorer, {
                    "name": "exclude", "in": "query", "schema": {"type": "string"},
                    "description": "Comma-separated tags the photo already has; they are not suggested."}, {
                    "name": "filename", "in": "query", "schema": {"type": "string"},
                    "description": "The photo's name, echoed back, when it is sent as a raw body."}],
                "requestBody": photo_body,
                "responses": {"200": _json(_ref("Suggestions"), "One result per photo, in the order sent."),
                              **_errors(400, 403, 408, 413, 415, 422, 503)},
            }},
            "/api/v1/plot": {"post": {
                "summary": "Where one photo falls among the tags: a 2-D picture of the latent space.",
                "operationId": "plot",
                "parameters": [k, scorer, {"name": "format", "in": "query",
                                           "schema": {"type": "string", "enum": ["png", "svg"], "default": "png"}}],
                "requestBody": photo_body,
                "responses": {"200": {"description": "The picture, the k suggested tags highlighted.", "content": {
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                    "image/svg+xml": {"schema": {"type": "string"}}}},
                    **_errors(400, 403, 408, 413, 415, 422, 503)},
            }},
            "/api/v1/embed": {"post": {
                "summary": "The photo with the chosen tags embedded as keywords: XMP dc:subject, and IPTC "
                           "Keywords in JPEG and TIFF (PNG and WebP have XMP only).",
                "description": "The answer is the same file, the picture and every other piece of metadata "
                               "unchanged; tags the photo already has (in any case) are not repeated. Lablr "
                               "records what it added in its own XMP namespace, and does not add again a tag "
                               "it added that was removed since. JPEG, PNG, TIFF and WebP.",
                "operationId": "embed",
                "parameters": [{
                    "name": "tags", "in": "query", "required": True, "schema": {"type": "string"},
                    "description": f"Comma-separated tags to embed (at most {defaults.MAX_K}, each at most "
                                   f"{defaults.TAG_MAX_CHARS} characters)."}, {
                    "name": "filename", "in": "query", "schema": {"type": "string"},
                    "description": "The photo's name, for the download, when it is sent as a raw body."}],
                "requestBody": {**photo_body, "description": "One photo: " + photo_body["description"]},
                "responses": {"200": {
                    "description": "The photo, as an attachment under its own name.",
                    "headers": {ADDED_HEADER: {
                        "description": "The tags that were not in the photo yet and were added: comma-separated, "
                                       "each URL-encoded; empty when the photo had them all (then the bytes are "
                                       "the ones sent).", "schema": {"type": "string"}}},
                    "content": {mime: {"schema": {"type": "string", "format": "binary"}}
                                for mime in WRITABLE}},
                    **_errors(400, 403, 408, 413, 415, 422)},
            }},
            "/api/v1/feedback": {"post": {
                "summary": "Learn from a published photo: its latent joins the statistics of its final tags.",
                "description": "The photo is encoded once; its latent, tags and what was suggested are recorded in "
                               "the personal layer of this model on this machine (the image is not kept). A tag "
                               f"new to the model is suggested once {defaults.PERSONAL_MIN_PHOTOS} photos carry "
                               "it. The same photo (by its decoded pixels) counts once. The next request uses the "
                               "update. 409 when the layer holds its limit of photos.",
                "operationId": "feedback",
                "parameters": [{"name": defaults.CLIENT_HEADER, "in": "header", "required": False,
                                "schema": {"type": "string", "examples": ["web", "extension"]},
                                "description": "Required (any value) when the request has an Origin, as a "
                                               "browser's has: a page or extension that may not reach the server "
                                               "cannot send it, so cannot teach the model."}],
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": [FIELD, "tags"], "properties": {
                        FIELD: {"type": "string", "format": "binary", "description": "The photo, one file."},
                        "tags": {"type": "string", "examples": ["sunset,beach,sea"],
                                 "description": "The tags the photo was published with, comma-separated "
                                                f"(at most {defaults.MAX_FEEDBACK_TAGS})."},
                        "suggested": {"type": "string", "description": "The suggestions the user saw (shown above the "
                                      "threshold, not those hidden), comma-separated: one not kept is "
                                      "evidence against that tag for this user."},
                    }}}}},
                "responses": {"200": _json(_ref("Feedback"), "What was recorded."),
                              **_errors(400, 403, 409, 413, 415, 422, 503, 507)},
            }},
            "/api/v1/personal": {"get": {
                "summary": "What the model learned from your photos: how many, and the tags added.",
                "operationId": "personal",
                "responses": {"200": _json(_ref("Personal"), "The personal layer's state."), **_errors(503)},
            }},
            "/api/v1/tags": {"get": {
                "summary": "Every tag the model knows, with its photo count and dispersion.", "operationId": "tags",
                "responses": {"200": _json(_ref("Tags"), "Most frequent tags first.")},
            }},
            "/api/v1/plugins": {"get": {
                "summary": "Every registered plugin part.", "operationId": "plugins",
                "responses": {"200": _json(_ref("Plugins"), "Parts by kind and name.")},
            }},
            "/openapi.json": {"get": {
                "summary": "This description.", "operationId": "openapi",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }},
            "/": {"get": {
                "summary": "The web page: drop a photo, see its tags and the picture.", "operationId": "page",
                "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
            }},
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string", "examples": ["bad_image", "body_too_large"]},
                               "message": {"type": "string"}}}}},
            "Model": {"type": "object", "required": ["name", "tags", "encoder", "scorer"], "properties": {
                "name": {"type": "string"}, "tags": {"type": "integer", "description": "How many tags."},
                "encoder": {"type": "string"}, "scorer": {"type": "string"}, "image_size": {"type": "integer"},
                "calibrated": {"type": "boolean", "description": "Whether `score` is a calibrated probability."},
                "min_probability": {"type": "number", "description": "When calibrated: below this probability "
                                    "the web page hides a tag unless the user chooses otherwise."}}},
            "Health": {"type": "object", "required": ["status", "version", "model"], "properties": {
                "status": {"const": "ok"}, "version": {"type": "string", "description": "Lablr's version."},
                "model": _ref("Model"),
                "limits": {"type": "object", "description": "What clients must stay within.", "properties": {
                    "max_k": {"type": "integer", "description": "The most tags one photo may be asked for (k)."},
                    "max_tags": {"type": "integer", "description": "The most tags feedback takes for one photo."}}}}},
            "Suggestion": {"type": "object", "required": ["tag", "score"], "properties": {
                "tag": {"type": "string"},
                "score": {"type": "number", "description": "With a calibrated model (see health): the probability, "
                          "0 to 1, that the tag applies to this photo, each tag on its own (they do not sum to 1). "
                          "Otherwise the scorer's own scale. Higher is better."},
                "distance": {"type": "number", "description": "Mahalanobis distance to the tag, when known."}}},
            "Suggestions": {"type": "object", "required": ["results", "model", "elapsed_ms"], "properties": {
                "results": {"type": "array", "items": {"type": "object", "required": ["filename", "suggestions"],
                                                       "properties": {
                    "filename": {"type": ["string", "null"]},
                    "suggestions": {"type": "array", "items": _ref("Suggestion")}}}},
                "model": {"type": "string"}, "elapsed_ms": {"type": "number"}}},
            "Tags": {"type": "object", "required": ["model", "tags", "vocabulary"], "properties": {
                "model": {"type": "string"},
                "vocabulary": {"type": "array", "items": {"type": "string"},
                               "description": "The photo vocabulary's other tags (no photo taught them yet)."},
                "tags": {"type": "array", "items": {"type": "object", "required": ["tag", "count", "dispersion"],
                                                    "properties": {
                    "tag": {"type": "string"}, "count": {"type": "integer"},
                    "dispersion": {"type": "number", "description": "Log-determinant of the tag's covariance."}}}}}},
            "Personal": {"type": "object", "required": ["enabled", "photos", "added_tags", "pending_tags"],
                         "properties": {
                "enabled": {"type": "boolean", "description": "False when serving with --no-personal."},
                "photos": {"type": "integer", "description": "Photos learned from."},
                "added_tags": {"type": "array", "items": {"type": "string"},
                               "description": "Tags new to the model that are now suggested."},
                "pending_tags": {"type": "object", "additionalProperties": {"type": "integer"},
                                 "description": "New tags not suggested yet, with their photo counts."},
                "held_back_tags": {"type": "object", "additionalProperties": {"type": "integer"},
                                   "description": "Those of pending_tags with min_photos or more: they wait for room, "
                                                  "as the model holds LABLR_PERSONAL_MAX_LEARNED_TAGS new tags."},
                "min_photos": {"type": "integer"}, "version": {"type": "integer"}}},
            "Feedback": {"type": "object", "required": ["recorded", "photo_hash", "tags", "personal"], "properties": {
                "recorded": {"type": "boolean", "description": "False when this photo was already learned from."},
                "photo_hash": {"type": "string", "description": "SHA-256 of the photo's decoded pixels, whichever "
                               "way up: the same photo with other metadata or orientation tag is the same photo."},
                "tags": {"type": "array", "items": {"type": "string"}, "description": "The tags, as stored."},
                "suggested": {"type": ["array", "null"], "items": {"type": "string"}},
                "learning": {"type": "array", "items": {"type": "string"},
                             "description": "Those of its tags that the model suggests, with this photo in them."},
                "pending": {"type": "object", "additionalProperties": {"type": "integer"},
                            "description": "Its new tags not suggested yet, with their photo counts."},
                "held_back": {"type": "object", "additionalProperties": {"type": "integer"},
                              "description": "Those of pending that wait for room, not for photos."},
                "min_photos": {"type": "integer"}, "message": {"type": "string"},
                "personal": _ref("Personal")}},
            "Plugins": {"type": "object", "required": ["plugins"], "properties": {"plugins": {
                "type": "array", "items": {"type": "object", "required": ["kind", "name", "plugin"], "properties": {
                    "kind": {"type": "string", "enum": list(KINDS)},
                    "name": {"type": "string"}, "plugin": {"type": "string"}}}}}},
        }},
    }
