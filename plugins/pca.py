"""`pca`: where a photo falls among the tags, as a 2-D picture.

A PCA fitted on the tag centroids projects the latent space onto a plane. Each tag is a
circle at its centroid whose radius grows with its dispersion (the geometric-mean standard
deviation, exp(logdet / 2d), from slogdet); the suggested tags are highlighted and labelled,
and the photo is a star. Drawn with matplotlib's object API on Agg: no pyplot, no global state.
"""

import io
from pathlib import Path

import numpy as np

from lablr.core import hookimpl
from lablr.core.errors import BundleError
from lablr.core.npz import expect, read_npz
from lablr.core.part_settings import Setting

FILE = "pca.npz"
HIGHLIGHT = "#d9480f"
PLAIN = "#868e96"
MAX_DIM = 4096  # of the latent space it projects


@hookimpl
def register_visualizers(register):
    register("pca", PCAVisualizer)


class PCAVisualizer:
    # The picture is at most 20 x 20 inches at 200 dpi: 4,000 pixels a side.
    SETTINGS = {"width": Setting(float, 1, 20), "height": Setting(float, 1, 20), "dpi": Setting(int, 20, 200)}

    def __init__(self, width: float = 7.0, height: float = 6.0, dpi: int = 100):
        self.width, self.height, self.dpi = width, height, dpi
        self.mean = self.components = None

    def settings(self):
        return {"width": self.width, "height": self.height, "dpi": self.dpi}

    def fit(self, tag_model):
        centroids = tag_model.centroids()
        if len(centroids) < 2:  # no tags to spread yet: the latent space's own first two axes
            self.mean, self.components = np.zeros(centroids.shape[1]), np.eye(2, centroids.shape[1])
            return self
        self.mean = centroids.mean(axis=0)
        _, _, vt = np.linalg.svd(centroids - self.mean, full_matrices=False)
        self.components = vt[:2]
        return self

    def transform(self, latents):
        return (np.atleast_2d(latents) - self.mean) @ self.components.T

    def radii(self, tag_model, extent):
        """Circle radii: proportional to each tag's typical spread, the largest 12% of the plot."""
        dim = tag_model.centroids().shape[1]
        spread = np.exp(tag_model.dispersion() / (2 * dim))
        return 0.12 * extent * spread / spread.max() if len(spread) else spread

    def draw(self, latent, tag_model, highlight, *, format="png") -> bytes:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Circle

        centres = self.transform(tag_model.centroids())
        photo = self.transform(latent)[0]
        points = np.vstack([centres, photo])
        low, high = points.min(axis=0), points.max(axis=0)
        extent = float(max(high - low)) or 1.0
        radii = self.radii(tag_model, extent)
        chosen = set(highlight)

        figure = Figure(figsize=(self.width, self.height), dpi=self.dpi)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for tag, (x, y), radius in zip(tag_model.tags, centres, radii):
            is_chosen = tag in chosen
            axes.add_patch(Circle((x, y), radius, alpha=0.35 if is_chosen else 0.12, linewidth=1,
                                  facecolor=HIGHLIGHT if is_chosen else PLAIN,
                                  edgecolor=HIGHLIGHT if is_chosen else PLAIN))
            if is_chosen:
                # parse_math=False: a tag is text as written; "$$" or "$\\frac$" is not mathtext to render
                axes.annotate(tag, (x, y), fontsize=9, ha="center", va="center", color="#212529", parse_math=False)
        axes.plot(*photo, marker="*", markersize=18, color="#1864ab", markeredgecolor="white", linestyle="none",
                  label="your photo")
        margin = 0.15 * extent
        axes.set_xlim(low[0] - margin, high[0] + margin)
        axes.set_ylim(low[1] - margin, high[1] + margin)
        axes.set_aspect("equal")
        axes.set_xlabel("first principal component")
        axes.set_ylabel("second principal component")
        axes.set_title(f"Your photo among {len(tag_model.tags)} tags (suggested: highlighted)" if len(tag_model.tags)
                       else "Your photo. The tags you teach appear here, as circles", fontsize=10)
        axes.legend(loc="lower right", fontsize=8)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format=format)
        return buffer.getvalue()

    def save(self, directory: Path):
        np.savez_compressed(Path(directory) / FILE, mean=self.mean, components=self.components)

    def load(self, directory: Path):
        path = Path(directory) / FILE

        def check(headers):
            expect(headers, "components", (2, None), path, "the picture's PCA")
            dim = headers["components"][0][1]
            expect(headers, "mean", (dim,), path, "the picture's PCA")
            if not 1 <= dim <= MAX_DIM:
                raise BundleError(f"The picture's PCA in {path} is for {dim} dimensions; Lablr draws 1 to {MAX_DIM}.")

        data = read_npz(path, ("mean", "components"), check, what="the picture's PCA")
        self.mean, self.components = data["mean"], data["components"]
        return self
