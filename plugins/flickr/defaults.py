"""The Flickr plugin's defaults: where to ask, how fast, and what to keep."""

from lablr.core.defaults import NON_VISUAL_TAGS

SOURCE = "flickr"  # the catalog's name for where these photos come from

# How `lablr prepare`, `train` and `fit` choose Flickr photos, beside Lablr's defaults: all of
# one owner's photos on one side of the split (a photographer's near-identical shots must not
# leak into the test), and tags that say how or when, not what, dropped.
SELECTION_RULES = {"split_by_owner": True, "stop_tags": NON_VISUAL_TAGS}

# The endpoint, credentials and where a key is had
API_URL = "https://api.flickr.com/services/rest/"
URL_ENV = "LABLR_FLICKR_API_URL"  # points the fetcher at another endpoint (a mirror, the tests' fake)
KEY_ENV, SECRET_ENV = "FLICKR_API_KEY", "FLICKR_API_SECRET"
CONFIG_ENV = "LABLR_FLICKR_CONFIG"
CONFIG = "~/.config/lablr/flickr.json"  # {"api_key": ..., "api_secret": ...}; under $XDG_CONFIG_HOME if set
KEY_PAGE = "https://www.flickr.com/services/apps/create/"
PHOTOS_URL = "https://www.flickr.com/photos/"  # + a URL name: a user's photostream

# Flickr's all-time popular tags, as the original Lablr used them: `lablr fetch --tags default`
TAGS = (
    "sunset", "beach", "water", "sky", "flower", "nature", "blue", "night", "white", "tree",
    "green", "flowers", "portrait", "art", "light", "snow", "dog", "sun", "clouds", "cat",
    "park", "winter", "landscape", "street", "summer", "sea", "city", "trees", "yellow", "lake",
    "christmas", "people", "bridge", "family", "bird", "river", "pink", "house", "car", "food",
    "macro", "music", "moon", "orange", "garden",
)
HOT_COUNT = 20  # `--tags hot`: this many of flickr.tags.getHotList

# Searching and downloading
PER_TAG = 2000
PER_PAGE = 500  # Flickr's maximum: fewest calls per photo
MAX_RESULTS = 4000  # Flickr returns at most this many results per query; later pages repeat
CALLS_PER_HOUR = 3500  # Flickr allows 3,600 per key; the bucket's burst stays inside the margin
BURST = 10
WORKERS = 8  # concurrent image downloads
TIMEOUT = 30.0  # seconds per request
ATTEMPTS = 6  # tries per request on timeouts, 5xx and rate limits
BACKOFF = 1.0  # seconds before the first retry; doubles each time, with jitter
BACKOFF_CAP = 120.0

# Flickr's image sizes, as the API's `extras` name them: (the image URL's suffix, the longest side in
# pixels, cropped to a square). https://www.flickr.com/services/api/misc.urls.html
SIZES = {
    "url_sq": ("s", 75, True), "url_t": ("t", 100, False), "url_q": ("q", 150, True),
    "url_s": ("m", 240, False), "url_n": ("n", 320, False), "url_m": ("", 500, False),
    "url_z": ("z", 640, False), "url_c": ("c", 800, False), "url_l": ("b", 1024, False),
}
# A size covers a model's input when its short side does, for a photo of this shape (4:3, the most
# common): url_n (320x240) covers 224 px. Sizes under MIN_SIDE are never taken: url_sq (75) and
# url_t (100) would save a few kB a photo and leave nothing to spare for wider photos.
ASPECT = 3 / 4
MIN_SIDE = 150

# Licence names for --licenses, as Flickr numbers them (flickr.photos.licenses.getInfo)
LICENSES = {
    "all-rights-reserved": 0, "by-nc-sa": 1, "by-nc": 2, "by-nc-nd": 3, "by": 4, "by-sa": 5, "by-nd": 6,
    "no-known-restrictions": 7, "us-government": 8, "cc0": 9, "public-domain": 10,
}
LICENSE_GROUPS = {"cc": (1, 2, 3, 4, 5, 6, 9, 10), "free": (4, 5, 7, 8, 9, 10)}

# `lablr build flickr`
BUILD_PER_TAG = 300  # 45 tags x 300: a model in minutes (docs/flickr.md)
TRAINED_ENCODERS = ("vae",)  # encoders build trains anew; any other is the model's own, and only the tags are fitted
# A --user's photos are all theirs: no per-owner cap, split photo by photo, and their own tags are
# learnt from this many photos (the popular tags keep the usual rules)
OWN_MIN_TAG_PHOTOS = 5
OWN_MIN_TRAIN_PHOTOS = 3
# Each phase's share of the overall progress bar: seconds for 45 x 300 photos measured by
# scripts/measure_flickr.py on 2 cores (training: the pixel VAE's 60 epochs, estimated)
PHASE_WEIGHTS = {"Photos found": 4, "Images downloaded": 89, "Decoding images": 23, "Training the encoder": 8000,
                 "Fitting and evaluating": 125}
