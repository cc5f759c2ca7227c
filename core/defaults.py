"""Every default and limit Lablr has, in one place."""

# The model
IMAGE_SIZE = 64
LATENT_DIM = 32
EPOCHS = 30
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

# Data selection: how training and held-out photos are chosen (see lablr.core.selection)
PER_OWNER_CAP = 100
MIN_TAG_PHOTOS = 50
TEST_FRACTION = 0.2
MIN_TRAIN_PHOTOS = 20

# OpenClipart, as Debian's openclipart-png and openclipart-svg packages install it
OPENCLIPART_ROOT = "/usr/share/openclipart"
OPENCLIPART_STOP_TAGS = ("unsorted",)

# Flickr's all-time popular tags, as the original Lablr used them
FLICKR_TAGS = (
    "sunset", "beach", "water", "sky", "flower", "nature", "blue", "night", "white", "tree",
    "green", "flowers", "portrait", "art", "light", "snow", "dog", "sun", "clouds", "cat",
    "park", "winter", "landscape", "street", "summer", "sea", "city", "trees", "yellow", "lake",
    "christmas", "people", "bridge", "family", "bird", "river", "pink", "house", "car", "food",
    "macro", "music", "moon", "orange", "garden",
)
