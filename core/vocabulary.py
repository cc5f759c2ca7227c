"""The photo vocabulary: tags Lablr knows without training data, as a bundle ships them.

Concept tags come from the encoder's ImageNet classifier: a tag's probability is the classifier's
probability mass on the classes under it (built from WordNet and reviewed rules by
lablr.core.pipeline.build_vocabulary; here it is only data, so serving needs no WordNet). Pixel tags
(`bw`, a dominant colour) are read from the photo's own pixels. Pure white is never read: it
is what Lablr pads a photo with to make a square, and what a transparent background becomes
(lablr.core.data.decoding), so a colour photo on a wide white border is still a colour photo.
"""

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from lablr.core import defaults
from lablr.core.errors import BundleError
from lablr.core.npz import expect, read_npz, tag_names

FILE = "concept_tags.npz"
CLASSES = 1000  # ImageNet's: the outputs of the encoder's classifier, one synset each
MAX_PAIRS = 100 * CLASSES  # (class, tag) pairs: each tag sums one class or more

# Pixel tags: hue ranges in degrees (a pixel is "vivid" when its saturation and brightness are high)
HUES = {"red": ((0, 15), (345, 360)), "orange": ((15, 40),), "yellow": ((40, 70),), "green": ((70, 165),),
        "blue": ((165, 255),), "purple": ((255, 290),), "pink": ((290, 345),)}
COLOURS = (*HUES, "white")
PIXEL_TAGS = ("bw", "blackandwhite", *COLOURS)  # what the pixels can tell; rules.toml picks some
VIVID_SATURATION, VIVID_VALUE = 0.45, 130  # brown (dark orange) and dull tints are no colour a person names
COLOURED_CHROMA = 24  # channel spread (0-255) above which a pixel has a colour; JPEG noise stays below
MOST_LIKELY = 0.9  # what the pixels can show at best: a sepia or tinted print may still be called "bw"
# A vivid colour filling the photo is still seldom a tag people give it: of 12 such suggestions on
# the photo evaluation's tuning photos (scripts/photo_eval/tuning.toml), none was among the tags
# written for the photo. A colour is shown (above 0.2), never confident.
COLOUR_MOST_LIKELY = 0.4
# A colour is named once a quarter of the photo is vivid in it, and most likely from three quarters on
COLOUR_SHARES = (0.25, 0.75)
# Among tags about as likely, the more specific ranks first (cat before animal): a tag over all 1,000
# classes ranks as if its probability were this much lower. The probability shown is never changed.
GENERALITY_PENALTY = 0.1
# A colour describes a photo more than it names what the photo shows (and is often its background):
# it ranks after a concept about as likely.
COLOUR_RANK_WEIGHT = 0.5
PIXEL_STRIDE = 4


@dataclass
class ConceptVocabulary:
    """Tags over the classifier's classes: tag `tag_of[i]` sums class `classes[i]` (pairs)."""

    tags: list[str]
    classes: np.ndarray  # (pairs,) class index 0..999
    tag_of: np.ndarray  # (pairs,) index into tags
    temperature: float = 1.0  # the classifier's logits are divided by it before the softmax
    pixel_tags: list[str] = field(default_factory=list)

    @cached_property
    def all_tags(self) -> list[str]:
        """Concept tags, then the pixel tags that are not also concept tags."""
        known = set(self.tags)
        return self.tags + [tag for tag in self.pixel_tags if tag not in known]

    def rank_weights(self) -> np.ndarray:
        """(len(all_tags),) what each tag's probability is multiplied by to rank it: 1 for one class."""
        classes = np.bincount(self.tag_of, minlength=len(self.tags)).astype(np.float64)
        weights = 1.0 - GENERALITY_PENALTY * np.log(np.maximum(classes, 1)) / np.log(CLASSES)
        pixels = [COLOUR_RANK_WEIGHT if tag in COLOURS else 1.0 for tag in self.all_tags[len(self.tags):]]
        return np.concatenate([weights, pixels])  # "orange", a concept too, ranks as the fruit

    def probabilities(self, logits: np.ndarray, images: np.ndarray | None = None) -> np.ndarray:
        """(n, 1000) logits and the (n, s, s, 3) images -> (n, len(all_tags)) P(tag applies)."""
        logits = np.asarray(logits, np.float64) / self.temperature
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        softmax = exp / exp.sum(axis=1, keepdims=True)
        out = np.zeros((len(logits), len(self.all_tags)))
        for row, classes in enumerate(softmax):  # sums over ~4,000 pairs: no dense 1,000 x T product to wait on
            out[row, :len(self.tags)] = np.bincount(self.tag_of, classes[self.classes], minlength=len(self.tags))
        np.clip(out, 0.0, 1.0, out=out)
        if self.pixel_tags and images is not None:
            column = {tag: k for k, tag in enumerate(self.all_tags)}
            pixels = pixel_probabilities(images, self.pixel_tags)
            for j, tag in enumerate(self.pixel_tags):  # "orange": the fruit or the colour, whichever is likelier
                out[:, column[tag]] = np.maximum(out[:, column[tag]], pixels[:, j])
        return out

    # -- bundle file --------------------------------------------------------------------------------

    def save(self, directory: Path):
        np.savez_compressed(Path(directory) / FILE, tags=np.array(self.tags, dtype=str), classes=self.classes,
                            tag_of=self.tag_of, temperature=np.float64(self.temperature),
                            pixel_tags=np.array(self.pixel_tags, dtype=str))

    @classmethod
    def load(cls, directory: Path) -> "ConceptVocabulary":
        path = Path(directory) / FILE
        what = "the photo vocabulary"

        def check(headers):
            for name in ("tags", "pixel_tags"):
                shape, dtype = headers[name]
                if len(shape) != 1 or dtype.kind not in "US" or dtype.itemsize > 4 * defaults.TAG_MAX_CHARS:
                    raise BundleError(f"The photo vocabulary in {path}: {name} are not a list of tags.")
            pairs = headers["classes"][0]
            expect(headers, "classes", (None,), path, what)
            expect(headers, "tag_of", pairs, path, what)
            expect(headers, "temperature", (), path, what)
            if not headers["tags"][0][0] <= pairs[0] <= MAX_PAIRS or headers["pixel_tags"][0][0] > len(PIXEL_TAGS):
                raise BundleError(f"The photo vocabulary in {path} is damaged: rebuild the bundle.")

        data = read_npz(path, ("tags", "classes", "tag_of", "temperature", "pixel_tags"), check, what=what)
        vocabulary = cls(tag_names(data["tags"], path, what), data["classes"].astype(np.int64),
                         data["tag_of"].astype(np.int64), float(data["temperature"]),
                         tag_names(data["pixel_tags"], path, what))
        if (vocabulary.classes.size and (vocabulary.classes.min() < 0 or vocabulary.classes.max() >= CLASSES
                                         or vocabulary.tag_of.min() < 0
                                         or vocabulary.tag_of.max() >= len(vocabulary.tags))
                or not vocabulary.temperature > 0):
            raise BundleError(f"The photo vocabulary in {path} is damaged: rebuild the bundle.")
        return vocabulary


# -- pixel tags -------------------------------------------------------------------------------------


def pixel_probabilities(images: np.ndarray, tags) -> np.ndarray:
    """(n, s, s, 3) uint8 -> (n, len(tags)) from each photo's own pixels (pure white left out)."""
    return np.stack([_pixel_row(image, tags) for image in images]) if len(images) else np.zeros((0, len(tags)))


def _pixel_row(image: np.ndarray, tags) -> np.ndarray:
    # Every PIXEL_STRIDE-th pixel each way: a share of colours needs no more, and serving stays as fast
    pixels = np.asarray(image[::PIXEL_STRIDE, ::PIXEL_STRIDE], np.float32).reshape(-1, 3)
    pixels = pixels[(pixels < 255).any(axis=1)]  # the padding and transparent background are pure white
    if len(pixels) < 0.05 * (image.shape[0] // PIXEL_STRIDE) * (image.shape[1] // PIXEL_STRIDE):
        return np.zeros(len(tags))
    found = _pixel_evidence(pixels)
    return np.array([found.get(tag, 0.0) for tag in tags])


def _pixel_evidence(pixels: np.ndarray) -> dict:
    high, low = pixels.max(axis=1), pixels.min(axis=1)
    chroma = high - low
    coloured = float((chroma > COLOURED_CHROMA).mean())
    # No colour at all: black-and-white. 0.5% of coloured pixels is still grey; 3% is a colour photo.
    bw = MOST_LIKELY * float(np.clip((0.03 - coloured) / 0.025, 0.0, 1.0))
    out = {"bw": bw, "blackandwhite": bw}
    saturation = np.where(high > 0, chroma / np.maximum(high, 1), 0.0)
    vivid = (saturation > VIVID_SATURATION) & (high > VIVID_VALUE)
    hue = _hue(pixels, high, chroma)
    for colour, ranges in HUES.items():
        inside = np.zeros(len(pixels), bool)
        for start, end in ranges:
            inside |= (hue >= start) & (hue < end)
        out[colour] = _share_probability(float((vivid & inside).mean()))
    out["white"] = _share_probability(float(((low > 200) & (chroma < 20)).mean()))
    return out


def _share_probability(share: float) -> float:
    low, high = COLOUR_SHARES
    return COLOUR_MOST_LIKELY * float(np.clip((share - low) / (high - low), 0.0, 1.0))


def _hue(pixels, high, chroma) -> np.ndarray:
    """Hue in degrees (0-360) of RGB pixels; 0 where there is no colour."""
    r, g, b = pixels.T
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(high == r, ((g - b) / safe) % 6, np.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4))
    return np.where(chroma > 0, hue * 60.0, 0.0)
