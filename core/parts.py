"""The small interfaces each kind of plugin part implements: exactly what Lablr's core calls.

A part is built from its settings (``Factory(**settings)``; a scorer from nothing), and a part
with learned state saves it into a bundle directory as plain files (Keras, .npz, JSON) and
loads it back. Nothing is pickled. tests/test_contracts.py runs training, fitting, evaluation
and the server through parts that answer nothing but these members, with these arguments.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, Self, Sequence

import numpy as np

from lablr.core.errors import LablrError


class ImageBatches(Protocol):
    """What an encoder trains on: a re-iterable stream of uint8 image batches (n, s, s, 3)."""

    count: int
    image_size: int

    def batches(self, batch_size: int, *, seed: int | None = None) -> Iterator[np.ndarray]:
        """Every image once per iteration; with a seed, in a shuffled order."""


# Members a part of that kind may lack: Lablr asks for them with getattr(part, name, None)
OPTIONAL_MEMBERS = {"encoder": ("vocabulary", "explained_variance", "encode_with_logits")}


class Encoder(Protocol):
    """Maps images to latent vectors."""

    image_size: int  # images arrive as uint8 arrays of shape (n, image_size, image_size, 3)
    latent_dim: int
    # Optional, for an encoder with a classifier (effnet-lite0's `classifier`): the photo vocabulary
    # over its classes (lablr.core.vocabulary.ConceptVocabulary; absent or None: none), and the
    # variance of the latents along each axis over the photos it was fitted on (the background a
    # user's own tags are weighed against, lablr.core.ranking).
    vocabulary: object
    explained_variance: np.ndarray

    def settings(self) -> dict:
        """What Factory(**settings) rebuilds this encoder from (JSON values)."""

    def check_can_fit(self) -> None:
        """Optional: raise a LablrError when this encoder cannot be trained here (a missing extra).
        Lablr calls it, when the encoder has it, before any catalog or photo is read."""

    def fit(self, images: ImageBatches, *, work_dir: Path, epochs: int, seed: int, verbose: int | str) -> object:
        """Learn from training images; checkpoint into work_dir and resume from it.

        `verbose` is Keras's: "auto" shows progress, 0 shows nothing. A pretrained encoder may
        ignore `epochs`.
        """

    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 (n, s, s, 3) -> float32 (n, latent_dim); the same image always gives the same z.

        Check the batch with `check_images`."""

    def encode_with_logits(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Optional, with a `vocabulary`: (latents, the classifier's logits (n, classes)) in one run."""

    def save(self, directory: Path) -> None: ...

    def load(self, directory: Path) -> object: ...


def check_can_fit(encoder):
    """Refuse now, before any photo is read, an encoder that cannot be trained here (the VAE without
    the `train` extra's TensorFlow). Encoder.check_can_fit is optional: without it, nothing to check."""
    check = getattr(encoder, "check_can_fit", None)
    if check is not None:
        check()


def check_images(images, image_size: int) -> np.ndarray:
    """The batch an encoder was given, as an array, once it is (n, image_size, image_size, 3)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (image_size, image_size, 3):
        raise LablrError(f"Expected images of shape (n, {image_size}, {image_size}, 3), got {images.shape}.")
    return images


class TagModel(Protocol):
    """A statistical model of each tag in latent space."""

    tags: list[str]
    counts: np.ndarray  # (K,) photos per tag

    def settings(self) -> dict: ...

    def fit(self, latents: np.ndarray, photo_tags: Sequence[Sequence[str]], tags: Sequence[str]) -> Self:
        """Learn every tag in `tags` from the latents (n, d) of photos tagged `photo_tags`; returns self."""

    def update(self, latents: np.ndarray, photo_tags: Sequence[Sequence[str]]) -> object:
        """Add photos to what is known; a tag not seen before joins the model."""

    def copy(self) -> Self:
        """An independent copy: updating it leaves this one as it was (the personal layer updates a
        copy of the bundle's tag model with the user's photos)."""

    def centroids(self) -> np.ndarray:
        """(K, d) the centre of each tag."""

    def dispersion(self) -> np.ndarray:
        """(K,) how spread out each tag is (log-determinant of its covariance for a Gaussian)."""

    def save(self, directory: Path) -> None: ...

    def load(self, directory: Path) -> object: ...


@dataclass
class Scores:
    """Scores of every tag for a batch of latents.

    `score` ranks the tags (higher is better) and must not collapse distinct values into ties,
    so a probability that underflows belongs in `shown`, the value people see (default: score).
    """

    score: np.ndarray  # (n, K)
    distance: np.ndarray | None = None  # (n, K) Mahalanobis distance, when the scorer has it
    shown: np.ndarray | None = None  # (n, K)

    @property
    def display(self) -> np.ndarray:
        return self.score if self.shown is None else self.shown


class Scorer(Protocol):
    """Turns latents and a tag model into a score for every tag.

    `requires` names the tag model's methods it calls beyond `TagModel`'s, e.g. ("whitening",).
    Lablr refuses to pair it with a tag model that lacks one, when `lablr train`, `fit` or
    `serve` starts. A scorer without the attribute requires nothing more.

    `counts_popularity` is True when the score already holds each tag's popularity (a log prior),
    so that the user's own tag frequencies move it (lablr.core.personal.prior); absent, False.
    """

    requires: tuple[str, ...]
    counts_popularity: bool

    def score(self, latents: np.ndarray, tag_model: TagModel) -> Scores: ...


class Visualizer(Protocol):
    """Draws where a photo falls among the tags."""

    def settings(self) -> dict: ...

    def fit(self, tag_model: TagModel) -> Self:
        """Learn the picture's projection from the tag model; returns self."""

    def draw(self, latent: np.ndarray, tag_model: TagModel, highlight: Sequence[str], *, format: str) -> bytes:
        """The picture of one latent (d,) among the tags, `highlight` marked: PNG or SVG bytes."""

    def save(self, directory: Path) -> None: ...

    def load(self, directory: Path) -> object: ...


@dataclass
class PhotoRecord:
    """One tagged image as a source yields it, before it enters the catalog."""

    key: str  # unique within the catalog, e.g. "openclipart:animals/cat_01"
    path: str | None
    tags: list[str]
    owner: str | None = None
    license: str | None = None
    title: str | None = None
    url: str | None = None


class Source(Protocol):
    """Yields tagged images from somewhere on disk: a folder, a CSV, a Debian package.

    `stop_tags` (optional) are tags that never describe this source's images; `lablr import`
    drops them.
    """

    description: str  # shown by `lablr plugins`
    stop_tags: tuple[str, ...]

    def records(self, location: str | None) -> Iterator[PhotoRecord]: ...
