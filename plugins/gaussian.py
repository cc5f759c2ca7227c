"""`gaussian`: one Gaussian per tag over the latent means.

The model keeps exact sufficient statistics per tag (count, sum, sum of outer products), so
shards merge exactly and more photos can be added later. Covariances are shrunk towards a
scaled identity with the Oracle Approximating Shrinkage of Chen et al. (2010), a
Ledoit-Wolf-type estimator that needs nothing but those statistics: a tag with fewer photos
than latent dimensions still gets an invertible covariance.

`shared` adds a covariance every tag has in common, the pooled within-tag covariance (also a
function of the sums), worth that many photos: a tag's covariance is
(n·own + shared·pooled) / (n + shared), so a rare tag leans on the common shape of all tags
and a frequent one keeps its own.
"""

from pathlib import Path
from typing import Sequence

import numpy as np

from lablr.core import defaults, hookimpl
from lablr.core.errors import BundleError
from lablr.core.npz import expect, read_npz, tag_names
from lablr.core.part_settings import Setting
from lablr.core.ranking import whitening_factors

FILE = "tag_stats.npz"


@hookimpl
def register_tag_models(register):
    register("gaussian", GaussianTagModel)


class GaussianTagModel:
    SETTINGS = {"shrinkage": Setting(str, choices=("oas", "none")), "shared": Setting(float, 0, 1e9)}

    def __init__(self, shrinkage: str = "oas", shared: float = 0.0):
        if shrinkage not in ("oas", "none"):
            raise ValueError("shrinkage must be 'oas' or 'none'")
        if not shared >= 0:
            raise ValueError("shared must be a number of photos, 0 or more")
        self.shrinkage, self.shared = shrinkage, float(shared)
        self.tags: list[str] = []
        self.counts = np.zeros(0)
        self._sums = None  # (K, d)
        self._outer_sums = None  # (K, d, d)
        self._cache = None
        self._frozen = None  # (pooled covariance, floor) once `freeze` is called
        self._dirty = set()  # tags whose sums moved since the cache was derived (frozen models only)

    def settings(self):
        return {"shrinkage": self.shrinkage, **({"shared": self.shared} if self.shared else {})}

    # -- learning -----------------------------------------------------------------------------

    def fit(self, latents, photo_tags: Sequence[Sequence[str]], tags: Sequence[str]):
        latents = np.asarray(latents, dtype=np.float64)
        self.tags = list(tags)
        dim = latents.shape[1]
        self.counts = np.zeros(len(self.tags))
        self._sums = np.zeros((len(self.tags), dim))
        self._outer_sums = np.zeros((len(self.tags), dim, dim))
        return self.update(latents, photo_tags)

    def update(self, latents, photo_tags: Sequence[Sequence[str]]):
        """Add photos to the statistics; tags not seen before are added to the model."""
        latents = np.asarray(latents, dtype=np.float64)
        self._add_tags(sorted({t for tags in photo_tags for t in tags} - set(self.tags)), latents.shape[1])
        index = {tag: k for k, tag in enumerate(self.tags)}
        members = [[] for _ in self.tags]
        for row, tags in enumerate(photo_tags):
            for tag in tags:
                members[index[tag]].append(row)
        for k, rows in enumerate(members):
            if rows:
                z = latents[rows]
                self.counts[k] += len(rows)
                self._sums[k] += z.sum(axis=0)
                self._outer_sums[k] += z.T @ z
                self._dirty.add(k)
        if self._frozen is None:
            self._cache = None
        return self

    def freeze(self):
        """From now on, the shape all tags share (the pooled covariance and the floor) stays as these
        statistics give it, so adding photos re-derives only the tags they carry (the personal
        layer: one feedback is one small update, not a rebuild of every tag). Called again, the
        shape is taken afresh from the statistics of now, and every tag re-derived with it."""
        if self._frozen is not None:
            self._frozen, self._cache = None, None
        self._derived()
        if self.tags:  # with none, there is no common shape yet: each update derives every tag again
            self._frozen = self._shared_shape(self._empirical()[1])
        return self

    def copy(self) -> "GaussianTagModel":
        other = GaussianTagModel(self.shrinkage, self.shared)
        other.tags, other.counts = list(self.tags), self.counts.copy()
        other._sums = None if self._sums is None else self._sums.copy()
        other._outer_sums = None if self._outer_sums is None else self._outer_sums.copy()
        if self._frozen is not None:  # the derived arrays are never written in place: sharing them is safe
            other._frozen, other._cache, other._dirty = self._frozen, self._cache, set(self._dirty)
        return other

    def snapshot(self) -> "GaussianTagModel":
        """A read-only view for scoring: the tags, counts and derived arrays of now, without the sums
        (which the owner goes on adding to)."""
        self._derived()
        other = GaussianTagModel(self.shrinkage, self.shared)
        other.tags, other.counts = list(self.tags), self.counts.copy()
        other._cache, other._frozen = self._cache, self._frozen
        return other

    def merge(self, other: "GaussianTagModel"):
        """Add another model's statistics (e.g. fitted on another shard of the data)."""
        self._add_tags([t for t in other.tags if t not in self.tags], other._sums.shape[1])
        rows = [self.tags.index(t) for t in other.tags]
        self.counts[rows] += other.counts
        self._sums[rows] += other._sums
        self._outer_sums[rows] += other._outer_sums
        self._cache = None
        return self

    def _add_tags(self, new_tags, dim):
        if self._sums is None:
            self.counts, self._sums, self._outer_sums = np.zeros(0), np.zeros((0, dim)), np.zeros((0, dim, dim))
        if not new_tags:
            return
        grow = len(new_tags)
        self.tags += list(new_tags)
        self.counts = np.concatenate([self.counts, np.zeros(grow)])
        self._sums = np.concatenate([self._sums, np.zeros((grow, dim))])
        self._outer_sums = np.concatenate([self._outer_sums, np.zeros((grow, dim, dim))])

    # -- what scorers and pictures use -----------------------------------------------------------

    def centroids(self):
        return self._derived()["means"]

    def covariances(self):
        return self._derived()["covariances"]

    def dispersion(self):
        """Log-determinant of each tag's covariance (slogdet: det under- or overflows in 32-d)."""
        return self._derived()["logdet"]

    def whitening(self):
        """(matrix (d, K*d), offset (K, d)): for every tag k at once, the row k of
        (z @ matrix).reshape(K, d) - offset has the squared Mahalanobis distance as squared norm."""
        derived = self._derived()
        return derived["whitening"], derived["offset"]

    def _derived(self):
        if self._cache is None:
            self._cache = self._compute()
        elif self._dirty:
            self._cache = self._recompute(sorted(self._dirty))
        self._dirty = set()
        return self._cache

    def _empirical(self, rows=slice(None)):
        counts = np.maximum(self.counts[rows], 1)[:, None]
        means = self._sums[rows] / counts
        return means, self._outer_sums[rows] / counts[:, :, None] - np.einsum("kd,ke->kde", means, means)

    def _shared_shape(self, empirical):
        """(pooled covariance or None, floor): what every tag's covariance leans on."""
        dim = empirical.shape[-1]
        trace = np.trace(empirical, axis1=1, axis2=2)
        # A floor keeps a tag seen once (zero spread) invertible: a small share of the average spread.
        floor = 1e-3 * max(float(np.average(trace, weights=np.maximum(self.counts, 1e-12))) / dim, 1e-12)
        weights = self.counts[:, None, None]
        pooled = (weights * empirical).sum(axis=0) / max(self.counts.sum(), 1) if self.shared else None
        return pooled, floor

    def _compute(self, rows=slice(None)):
        if not self.tags:  # a bundle that ships no photos of its own (the photo vocabulary's) starts here
            dim = self._sums.shape[1]
            return {"means": np.zeros((0, dim)), "covariances": np.zeros((0, dim, dim)),
                    "whitening": np.zeros((dim, 0)), "offset": np.zeros((0, dim)), "logdet": np.zeros(0)}
        means, empirical = self._empirical(rows)
        pooled, floor = self._frozen or self._shared_shape(self._empirical()[1])
        covariances = self._shrink(empirical, self.counts[rows], floor)
        if self.shared:
            weights = self.counts[rows][:, None, None]
            covariances = (weights * covariances + self.shared * pooled) / (weights + self.shared)
        whitening, offset, logdet = whitening_factors(means, covariances)
        return {"means": means, "covariances": covariances, "whitening": whitening, "offset": offset,
                "logdet": logdet}

    def _recompute(self, rows):
        """The cache with the given tags re-derived (and new tags appended): new arrays, the old ones
        untouched, since a request may be scoring with them at this moment."""
        old, fresh = self._cache, self._compute(rows)
        kinds, dim = len(self.tags), self._sums.shape[1]
        grown = kinds - len(old["means"])
        out = {}
        for name in ("means", "covariances", "offset", "logdet"):
            array = old[name]
            if grown:
                array = np.concatenate([array, np.zeros((grown,) + array.shape[1:])])
            else:
                array = array.copy()
            array[rows] = fresh[name]
            out[name] = array
        whitening = np.concatenate([old["whitening"], np.zeros((dim, grown * dim))], axis=1) if grown \
            else old["whitening"].copy()
        blocks = whitening.reshape(dim, kinds, dim)
        blocks[:, rows, :] = fresh["whitening"].reshape(dim, len(rows), dim)
        out["whitening"] = whitening
        return out

    def _shrink(self, empirical, counts, floor):
        dim = empirical.shape[-1]
        identity = np.eye(dim)
        trace = np.trace(empirical, axis1=1, axis2=2)
        if self.shrinkage == "none":
            return empirical + floor * identity
        trace_of_square = np.einsum("kij,kji->k", empirical, empirical)
        numerator = (1 - 2 / dim) * trace_of_square + trace**2
        denominator = (counts + 1 - 2 / dim) * (trace_of_square - trace**2 / dim)
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(denominator > 0, np.minimum(numerator / denominator, 1.0), 1.0)
        scale = trace / dim
        shrunk = (1 - rho)[:, None, None] * empirical + (rho * scale)[:, None, None] * identity
        return shrunk + floor * identity

    # -- bundle files ---------------------------------------------------------------------------

    # Each tag's sum of outer products is symmetric: its upper triangle is stored, half the bytes.

    def save(self, directory: Path):
        upper = np.triu_indices(self._sums.shape[1])
        np.savez_compressed(Path(directory) / FILE, tags=np.array(self.tags, dtype=str), counts=self.counts,
                            sums=self._sums, outer_upper=self._outer_sums[:, upper[0], upper[1]])

    def load(self, directory: Path):
        path = Path(directory) / FILE
        data = read_npz(path, ("tags", "counts", "sums"), lambda headers: _check_shapes(headers, path),
                        optional=("outer_upper", "outer_sums"), what="the tag statistics")
        self.tags = tag_names(data["tags"], path, "the tag statistics")
        self.counts, self._sums = data["counts"].astype(np.float64), data["sums"].astype(np.float64)
        self._outer_sums = (_symmetric(data["outer_upper"], self._sums.shape[1]) if "outer_upper" in data
                            else data["outer_sums"].astype(np.float64))  # bundles written before the packing
        if (self.counts < 0).any():
            raise BundleError(f"The tag statistics in {path} count fewer than no photos for a tag.")
        self._cache, self._frozen, self._dirty = None, None, set()
        try:
            derived = self._derived()  # here, not at the first photo: a bundle that cannot score is refused now
        except np.linalg.LinAlgError:
            raise BundleError(f"The tag statistics in {path} give a covariance that is not positive definite.") \
                from None
        if not all(np.isfinite(derived[key]).all() for key in ("whitening", "offset", "logdet")):
            raise BundleError(f"The tag statistics in {path} give covariances that are not finite.")
        return self


def _check_shapes(headers, path):
    """The statistics' shapes agree with each other, and their size is within Lablr's bound."""
    what = "the tag statistics"
    shape, dtype = headers["tags"]
    if len(shape) != 1 or dtype.kind not in "US" or dtype.itemsize > 4 * defaults.TAG_MAX_CHARS:
        raise BundleError(f"The tag statistics in {path}: tags are not a list of names (of at most "
                          f"{defaults.TAG_MAX_CHARS} characters).")
    kinds = shape[0]
    expect(headers, "counts", (kinds,), path, what)
    expect(headers, "sums", (kinds, None), path, what)
    dim = headers["sums"][0][1]
    if not dim:  # no tags is fine: a model whose tags all come from elsewhere (a vocabulary, the personal layer)
        raise BundleError(f"The tag statistics in {path} have no dimensions.")
    if kinds * dim * dim > defaults.MAX_TAG_STATISTICS:
        raise BundleError(f"The tag statistics in {path} are for {kinds:,} tags in {dim} dimensions: more than "
                          f"Lablr holds ({defaults.MAX_TAG_STATISTICS:,} numbers for tags x dimensions²).")
    if "outer_upper" in headers:
        expect(headers, "outer_upper", (kinds, dim * (dim + 1) // 2), path, what)
    elif "outer_sums" in headers:
        expect(headers, "outer_sums", (kinds, dim, dim), path, what)
    else:
        raise BundleError(f"The tag statistics in {path} lack the sums of outer products.")


def _symmetric(upper: np.ndarray, dim: int) -> np.ndarray:
    """(K, dim*(dim+1)/2) upper triangles -> (K, dim, dim) symmetric matrices."""
    rows, cols = np.triu_indices(dim)
    full = np.zeros((len(upper), dim, dim))
    full[:, rows, cols] = upper
    full[:, cols, rows] = upper
    return full
