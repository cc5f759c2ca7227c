"""Lablr's defaults and limits, in one place: what its commands and its server start from.

A plugin keeps its own (plugins/flickr/defaults.py); a constant that only tunes one module's
internals (a shard's size, a chunk's size) stays beside that code.
"""

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where Lablr keeps what it can rebuild: converted weights, the evaluation catalog."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lablr"


def data_dir() -> Path:
    """Where Lablr keeps what only the user has: the personal layer of each model."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "lablr"


# Where photos and tags are recorded (lablr import, fetch, prepare, train...)
CATALOG = os.environ.get("LABLR_CATALOG", "lablr.db")

# The model
IMAGE_SIZE = 64
LATENT_DIM = 32
EPOCHS = 60
BATCH_SIZE = 64
# The photo vocabulary (ImageNet's classifier through WordNet, no training data) and the tags a user teaches
DEFAULT_MODEL = "photos"
BENCHMARK_MODEL = "openclipart-effnet"  # the same encoder, its tags learned on clip art: the method's benchmark
ORIGINAL_MODEL = "openclipart-vae"  # the original's method
DEFAULT_PARTS = {"encoder": "vae", "tag_model": "gaussian", "scorer": "mahalanobis", "visualizer": "pca"}

# Suggestions
DEFAULT_K = 10
MAX_K = 100
# The web page hides tags whose calibrated probability is below this (the user can change it; 0 shows all)
DEFAULT_MIN_PROBABILITY = 0.2

# Input limits: a decompression bomb is refused before it is decoded
MAX_IMAGE_PIXELS = 100_000_000  # also Pillow's Image.MAX_IMAGE_PIXELS (set by lablr.core.data.decoding)
MAX_REQUEST_PIXELS = 4 * MAX_IMAGE_PIXELS  # all the images of one request together
MAX_BODY_BYTES = 25 * 1024 * 1024
MAX_IMAGES = 64  # photos in one request
# A bundle's tag statistics hold at most this many numbers per tags x dimensions² (a float64 array
# of 512 MB: 4,096 tags in 128 dimensions): checked from the file's headers before it is read.
MAX_TAG_STATISTICS = 1 << 26
# Any one array of a bundle's .npz files, by the size its header declares (read before its data): the
# tag statistics at the bound above, as float64. Zipped zeros that declare tag names of a gigabyte are
# refused before they are decompressed.
MAX_BUNDLE_ARRAY_BYTES = 8 * MAX_TAG_STATISTICS
# A bundle's manifest (a build of a million Flickr photos lists its held-out ones in a few MB)
MAX_MANIFEST_BYTES = 64 * 1024 * 1024

# The server
HOST = "127.0.0.1"
PORT = 8777
BODY_TIMEOUT = 30.0  # seconds from a request's start to the end of its body, then 408
KEEP_ALIVE_TIMEOUT = 5.0  # seconds an idle keep-alive connection stays open
LIMIT_CONCURRENCY = 128  # connections and requests at once; past it uvicorn answers 503
# A request that changes what the server learned (feedback, personal) and carries an Origin must
# also carry this header (any value): a CORS-simple POST cannot, so no page or extension without
# permission for the server can teach it. The web page sends "web", the extension "extension".
CLIENT_HEADER = "X-Lablr-Client"

# The personal layer: what the user publishes teaches the model (see lablr.core.personal.layer)
PERSONAL_MIN_PHOTOS = 5  # a tag new to the model is suggested once this many of the user's photos carry it
MAX_FEEDBACK_TAGS = 75  # Flickr's own limit of tags per photo
PERSONAL_BUSY_SECONDS = 30.0  # how long a write waits for another worker's write to finish
# The user's own tag frequencies as a prior (see lablr.core.personal.prior): how many of the
# user's photos the bundle's popularity counts as is estimated from the user's counts; this
# variable fixes it instead (for measuring)
PERSONAL_PRIOR_PHOTOS = float(os.environ["LABLR_PERSONAL_PRIOR_PHOTOS"]) if os.environ.get(
    "LABLR_PERSONAL_PRIOR_PHOTOS") else None
# Each of the user's photos counts as this many of the bundle's in the tag statistics: the user's
# own photos say more about the user's next photo than anyone else's
PERSONAL_PHOTO_WEIGHT = int(os.environ.get("LABLR_PERSONAL_PHOTO_WEIGHT", 1))
# Kept and removed suggestions move a tag near each photo, learned from the suggestions on the
# user's PERSONAL_BIAS_NEIGHBOURS photos most like it. How far they may move it (the prior variance
# of its log-odds bias) is the one that best predicts the user's own answers, or the default while
# there is nothing to compare; LABLR_PERSONAL_BIAS_VARIANCE fixes it instead
PERSONAL_BIAS_NEIGHBOURS = int(os.environ.get("LABLR_PERSONAL_BIAS_NEIGHBOURS", 5))
PERSONAL_BIAS_DEFAULT_VARIANCE = 8.0
PERSONAL_BIAS_VARIANCE = float(os.environ["LABLR_PERSONAL_BIAS_VARIANCE"]) if os.environ.get(
    "LABLR_PERSONAL_BIAS_VARIANCE") else None
# Bounds on a personal layer, so that a layer at its limits starts in seconds and bounded memory
PERSONAL_MAX_EVENTS = int(os.environ.get("LABLR_PERSONAL_MAX_EVENTS", 50_000))  # photos learned from
PERSONAL_MAX_LEARNED_TAGS = int(os.environ.get("LABLR_PERSONAL_MAX_LEARNED_TAGS", 300))  # new tags suggested
PERSONAL_MAX_PENDING_TAGS = int(os.environ.get("LABLR_PERSONAL_MAX_PENDING_TAGS", 20_000))  # new tags counted
PERSONAL_MAX_EVENT_TAGS = int(os.environ.get("LABLR_PERSONAL_MAX_EVENT_TAGS", MAX_FEEDBACK_TAGS))  # per photo

# Data selection: how training and held-out photos are chosen (see lablr.core.data.selection)
PER_OWNER_CAP = 100
MIN_TAG_PHOTOS = 50
TEST_FRACTION = 0.2
MIN_TRAIN_PHOTOS = 20

# Tags that say how or when a photo was taken, not what it shows: dropped before training
# (`--stop-tags default`). In the compact form photo sites store tags in: lower case, no spaces.
NON_VISUAL_TAGS = (
    # cameras, lenses and phones
    "canon", "nikon", "sony", "fujifilm", "fuji", "olympus", "panasonic", "lumix", "pentax", "leica",
    "samsung", "iphone", "ipad", "android", "huawei", "xiaomi", "googlepixel", "gopro", "dji",
    "eos", "dslr", "mirrorless", "camera", "lens", "50mm", "35mm", "85mm", "24mm", "18mm", "55mm",
    "70200mm", "1855mm", "f18", "f28", "f14", "tamron", "sigma", "zeiss", "hasselblad",
    "canoneos", "sonyalpha", "iphoneography", "smartphone",
    # apps, uploads and editing
    "instagram", "instagramapp", "squareformat", "nofilter", "filter",
    "vsco", "vscocam", "lightroom", "photoshop", "snapseed", "uploaded", "flickr", "flickrmobile",
    "flickriosapp", "flickrandroidapp", "upload", "photo", "photos", "photography", "photographer", "picture",
    "image", "foto", "fotografia", "photooftheday", "explore", "explored", "inexplore", "interestingness",
    "geotagged", "geotag", "digital", "raw", "jpeg",
    # dates
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december", "today", "2000s",
) + tuple(str(year) for year in range(1900, 2041))

# Tags written into photos (`lablr tag`, POST /api/v1/embed; see lablr.core.photometa.tagging)
TAG_K = 5  # fewer than shown on screen: these stay in the photo
TAG_BATCH = 16  # photos decoded and scored at once
TAG_MAX_CHARS = 100  # a longer tag is refused by the server (embed and feedback)
IPTC_KEYWORD_MAX_BYTES = 64  # the IPTC standard's limit; a longer tag goes to XMP only
TAG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp")  # found in folders
SIDECAR_SUFFIX = ".xmp"
# A photo file the commands read (whole, into memory: suggest, plot, tag, personal learn): the largest
# image Lablr decodes, MAX_IMAGE_PIXELS of 16-bit RGBA stored uncompressed, is 800 MB
MAX_PHOTO_BYTES = 1 << 30
# An XMP sidecar Lablr reads (its keywords) or adds to: exiv2 takes about 12 times a packet's size to
# parse it, so a bigger one is named and left alone (darktable's, with every edit's history, are under 1 MB)
MAX_SIDECAR_BYTES = 16 * 1024 * 1024
LABLR_XMP_NAMESPACE = "urn:lablr:xmp:1.0#"  # where a photo records that Lablr tagged it
LABLR_XMP_PREFIX = "lablr"
