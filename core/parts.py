"""The small interfaces each kind of plugin part implements.

A part is built from its settings (``Part(**settings)``), and a part with learned state
saves it into a bundle directory as plain files (Keras, .npz, JSON) and loads it back.
Nothing is pickled.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np


class Encoder(Protocol):
    """Maps images to latent vectors."""

    image_size: int  # images arrive as uint8 arrays of shape (n, image_size, image_size, 3)
    latent_dim: int

    def settings(self) -> dict: ...

    def fit(self, images: "ImageBatches", *, work_dir: Path, epochs: int) -> None:
        """Learn from training images; checkpoint into work_dir and resume from it."""

    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 (n, s, s, 3) -> float32 (n, latent_dim); the same image always gives the same z."""

    def save(self, directory: Path) -> None: ...

    def load(self, directory: Path) -> None: ...


class ImageBatches(Protocol):
    """What an encoder trains on: a re-iterable stream of uint8 image batches."""

    count: int
    image_size: int

    def batches(self, batch_size: int, *, seed: int | None = None) -> Iterator[np.ndarray]: ...


class TagModel(Protocol):
    """A statistical model of each tag in latent space."""

    tags: list[str]
    counts: np.ndarray  # photos per tag

    def settings(self) -> dict: ...

    def fit(self, latents: np.ndarray, photo_tags: Sequence[Sequence[str]], tags: Sequence[str]): ...

    def update(self, latents: np.ndarray, photo_tags: Sequence[Sequence[str]]): ...

    def centroids(self) -> np.ndarray:
        """(K, d) the centre of each tag."""

    def dispersion(self) -> np.ndarray:
        """(K,) how spread out each tag is (log-determinant of its covariance for a Gaussian)."""

    def save(self, directory: Path) -> None: ...

    def load(self, directory: Path) -> None: ...


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
    """Turns latents and a tag model into a score for every tag."""

    def score(self, latents: np.ndarray, tag_model: TagModel) -> Scores: ...


class Visualizer(Protocol):
    """Draws where a photo falls among the tags."""

    def settings(self) -> dict: ...

    def fit(self, tag_model: TagModel): ...

    def draw(self, latent: np.ndarray, tag_model: TagModel, highlight: Sequence[str], *, format: str) -> bytes: ...

    def save(self, directory: Path) -> None: ...

    def load(self, directory: Path) -> None: ...


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
    """Yields tagged images from somewhere: a folder, a CSV, a Debian package, Flickr."""

    description: str

    def records(self, location: str | None) -> Iterator[PhotoRecord]: ...
