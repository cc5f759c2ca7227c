"""Every default and limit Lablr has, in one place."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where Lablr keeps what it can rebuild: converted weights, the evaluation catalog."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lablr"


def data_dir() -> Path:
    """Where Lablr keeps what only the user has: the personal layer of each model."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "lablr"


# The model
IMAGE_SIZE = 64
LATENT_DIM = 32
EPOCHS = 60
BATCH_SIZE = 64
DEFAULT_MODEL = "openclipart-vae"
DEFAULT_PARTS = {"encoder": "vae", "tag_model": "gaussian", "scorer": "mahalanobis", "visualizer": "pca"}

# Suggestions
DEFAULT_K = 10
MAX_K = 100

# Input limits: a decompression bomb is refused before it is decoded
MAX_IMAGE_PIXELS = 100_000_000
MAX_BODY_BYTES = 25 * 1024 * 1024

# The server
HOST = "127.0.0.1"
PORT = 8777

# Tag models: a tag's covariance counts this many photos' worth of the pooled covariance of all tags
TAG_PRIOR_PHOTOS = 20.0

# The personal layer: what the user publishes teaches the model (see lablr.core.personal)
PERSONAL_MIN_PHOTOS = 5  # a tag new to the model is suggested once this many of the user's photos carry it
MAX_FEEDBACK_TAGS = 75  # Flickr's own limit of tags per photo
MAX_TAG_CHARS = 100
PERSONAL_BUSY_SECONDS = 30.0  # how long a write waits for another worker's write to finish

# Data selection: how training and held-out photos are chosen (see lablr.core.selection)
PER_OWNER_CAP = 100
MIN_TAG_PHOTOS = 50
TEST_FRACTION = 0.2
MIN_TRAIN_PHOTOS = 20

# OpenClipart, as Debian's openclipart-png and openclipart-svg packages install it
OPENCLIPART_ROOT = os.environ.get("LABLR_OPENCLIPART_ROOT", "/usr/share/openclipart")
OPENCLIPART_STOP_TAGS = ("unsorted",)

# Flickr's all-time popular tags, as the original Lablr used them
FLICKR_TAGS = (
    "sunset", "beach", "water", "sky", "flower", "nature", "blue", "night", "white", "tree",
    "green", "flowers", "portrait", "art", "light", "snow", "dog", "sun", "clouds", "cat",
    "park", "winter", "landscape", "street", "summer", "sea", "city", "trees", "yellow", "lake",
    "christmas", "people", "bridge", "family", "bird", "river", "pink", "house", "car", "food",
    "macro", "music", "moon", "orange", "garden",
)

# Flickr: where to ask, how fast, and what to keep (see lablr.plugins.flickr)
FLICKR_API_URL = "https://api.flickr.com/services/rest/"  # env LABLR_FLICKR_API_URL points elsewhere
FLICKR_KEY_PAGE = "https://www.flickr.com/services/apps/create/"
FLICKR_CONFIG = "~/.config/lablr/flickr.json"  # {"api_key": ..., "api_secret": ...}; under $XDG_CONFIG_HOME if set
FLICKR_PER_TAG = 2000
FLICKR_PER_PAGE = 500  # Flickr's maximum: fewest calls per photo
FLICKR_MAX_RESULTS = 4000  # Flickr returns at most this many results per query; later pages repeat
FLICKR_CALLS_PER_HOUR = 3500  # Flickr allows 3,600 per key; the bucket's burst stays inside the margin
FLICKR_BURST = 10
FLICKR_WORKERS = 8  # concurrent image downloads
FLICKR_TIMEOUT = 30.0  # seconds per request
FLICKR_ATTEMPTS = 6  # tries per request on timeouts, 5xx and rate limits
FLICKR_BACKOFF = 1.0  # seconds before the first retry; doubles each time, with jitter
FLICKR_BACKOFF_CAP = 120.0
FLICKR_HOT_COUNT = 20  # `--tags hot`: this many of flickr.tags.getHotList
# The image to download: the first of these sizes a photo has (url_m: 500 px on the long side)
FLICKR_IMAGE_EXTRAS = ("url_m", "url_n", "url_z", "url_s")
# Licence names for --licenses, as Flickr numbers them (flickr.photos.licenses.getInfo)
FLICKR_LICENSES = {
    "all-rights-reserved": 0, "by-nc-sa": 1, "by-nc": 2, "by-nc-nd": 3, "by": 4, "by-sa": 5, "by-nd": 6,
    "no-known-restrictions": 7, "us-government": 8, "cc0": 9, "public-domain": 10,
}
FLICKR_LICENSE_GROUPS = {"cc": (1, 2, 3, 4, 5, 6, 9, 10), "free": (4, 5, 7, 8, 9, 10)}

# Tags that say how or when a photo was taken, not what it shows: dropped before training
# (`lablr prepare --stop-tags default`). Flickr's normalised form: lower case, no spaces.
FLICKR_STOP_TAGS = (
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
