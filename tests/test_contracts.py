"""The interfaces in core/parts.py say exactly what Lablr calls on a part.

Training, fitting, evaluation and the server run here through parts that answer only the
members their protocol declares, and check every call's arguments against the protocol's
signature. A core that called anything else (an undeclared method, an argument the protocol
does not name) fails these tests. Plugins are held to it too: a tag model serves its own
members plus what the registered scorers declare in `requires`, and nothing more.

A scorer that requires what the tag model lacks is refused, in one line, when `lablr train`,
`fit` or `serve` starts, and as a 422 by the API.
"""

import inspect
import io
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_RULES, draw_shape
from starlette.testclient import TestClient

from lablr.core import hookimpl, plugins
from lablr.core.bundle import check_parts
from lablr.core.errors import IncompatibleParts
from lablr.core.parts import OPTIONAL_MEMBERS, Encoder, Scorer, Scores, TagModel, Visualizer

PROTOCOLS = {"encoder": Encoder, "tag_model": TagModel, "scorer": Scorer, "visualizer": Visualizer}


def declared(protocol) -> set:
    names = set(getattr(protocol, "__annotations__", {}))
    return names | {name for name, value in vars(protocol).items() if inspect.isfunction(value)
                    and not name.startswith("_")}


class Strict:
    """A part that answers only `allowed`, and checks calls of the protocol's methods."""

    def __init__(self, part, protocol, allowed):
        object.__setattr__(self, "_strict", (part, protocol, allowed))

    def __getattr__(self, name):
        part, protocol, allowed = self._strict
        if name not in allowed:
            raise AssertionError(f"{name} was used on a {protocol.__name__}, which does not declare it")
        value = getattr(part, name)
        method = getattr(protocol, name, None)
        if not inspect.isfunction(method):
            return value
        signature = inspect.signature(method)

        def checked(*args, **kwargs):
            signature.bind(None, *args, **kwargs)  # TypeError: a call the protocol does not describe
            result = value(*args, **kwargs)
            return self if result is part else result

        return checked

    def __setattr__(self, name, value):
        setattr(self._strict[0], name, value)


def strict_factory(kind, factory):
    def build(**settings):
        allowed = declared(PROTOCOLS[kind])
        if kind == "tag_model":  # what scorers may use beyond TagModel: only what they declare
            allowed |= {name for scorer in plugins.parts("scorer").values()
                        for name in getattr(scorer.factory, "requires", ())}
        return Strict(factory(**settings), PROTOCOLS[kind], allowed)

    for name in dir(factory):  # what Lablr reads on the class itself: a scorer's requires, a tag model's methods
        if not name.startswith("_"):
            setattr(build, name, getattr(factory, name))
    return build


class StrictParts:
    """Registers `strict-<name>` beside each built-in part."""

    @hookimpl
    def register_encoders(self, register):
        from lablr.plugins.vae import VAEEncoder

        register("strict-vae", strict_factory("encoder", VAEEncoder))

    @hookimpl
    def register_tag_models(self, register):
        from lablr.plugins.gaussian import GaussianTagModel

        register("strict-gaussian", strict_factory("tag_model", GaussianTagModel))

    @hookimpl
    def register_scorers(self, register):
        from lablr.plugins.mahalanobis import MahalanobisScorer

        register("strict-mahalanobis", strict_factory("scorer", MahalanobisScorer))

    @hookimpl
    def register_visualizers(self, register):
        from lablr.plugins.pca import PCAVisualizer

        register("strict-pca", strict_factory("visualizer", PCAVisualizer))


class Centroids:
    """A tag model that has every TagModel member and no whitening(): each tag's mean, no spread."""

    def __init__(self):
        self.tags, self.counts, self._sums = [], np.zeros(0), np.zeros((0, 0))

    def settings(self):
        return {}

    def fit(self, latents, photo_tags, tags):
        self.tags, self.counts, self._sums = list(tags), np.zeros(len(tags)), np.zeros((len(tags), latents.shape[1]))
        self.update(latents, photo_tags)
        return self

    def update(self, latents, photo_tags):
        for z, own in zip(latents, photo_tags):
            for tag in own:
                self.counts[self.tags.index(tag)] += 1
                self._sums[self.tags.index(tag)] += z

    def copy(self):
        other = Centroids()
        other.tags, other.counts, other._sums = list(self.tags), self.counts.copy(), self._sums.copy()
        return other

    def centroids(self):
        return self._sums / np.maximum(self.counts, 1)[:, None]

    def dispersion(self):
        return np.zeros(len(self.tags))

    def save(self, directory):
        np.savez(directory / "centroids.npz", tags=np.array(self.tags), counts=self.counts, sums=self._sums)

    def load(self, directory):
        with np.load(directory / "centroids.npz", allow_pickle=False) as data:
            self.tags, self.counts, self._sums = [str(t) for t in data["tags"]], data["counts"], data["sums"]
        return self


class NearestScorer:
    """Nearest centroid first: needs nothing beyond TagModel."""

    def score(self, latents, tag_model):
        distance = np.linalg.norm(np.atleast_2d(latents)[:, None, :] - tag_model.centroids()[None], axis=2)
        return Scores(score=-distance, distance=distance)


class CentroidsPlugin:
    @hookimpl
    def register_tag_models(self, register):
        register("centroids", Centroids)

    @hookimpl
    def register_scorers(self, register):
        register("nearest", NearestScorer)


@pytest.fixture(scope="module")
def registered():
    """The strict parts and the centroids tag model, registered for this module only."""
    plugins.load_plugins()
    added = {"strict-parts": StrictParts(), "centroids-tag-model": CentroidsPlugin()}
    for name, plugin in added.items():
        plugins.pm.register(plugin, name=name)
    plugins._registry.cache_clear()
    yield
    for name in added:
        plugins.pm.unregister(name=name)
    plugins._registry.cache_clear()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, shapes_csv):
    from lablr.core.data.importing import import_source

    path = tmp_path_factory.mktemp("contracts") / "catalog.db"
    import_source("csv", str(shapes_csv), path, progress=False)
    return path


@pytest.fixture(scope="module")
def strict_bundle(registered, catalog):
    from lablr.core.data.selection import Rules
    from lablr.core.pipeline.train import train

    out = catalog.parent / "strict-model"
    train(catalog, out, encoder="strict-vae", encoder_settings={"image_size": 16, "latent_dim": 4, "filters": 8},
          tag_model="strict-gaussian", scorer="strict-mahalanobis", visualizer="strict-pca",
          rules=Rules(**TINY_RULES), epochs=2, progress=False)
    return out


def test_every_built_in_part_has_every_member_its_protocol_declares():
    for kind, protocol in PROTOCOLS.items():
        for part in plugins.parts(kind).values():
            if part.provider.startswith("lablr.plugins."):
                missing = {name for name in declared(protocol) - {"requires", *OPTIONAL_MEMBERS.get(kind, ())}
                           if not hasattr(part.factory, name) and name not in inspect.signature(part.factory).parameters}
                assert not missing - {"tags", "counts", "image_size", "latent_dim"}, (part.name, missing)


def test_training_fitting_and_evaluating_use_only_what_the_protocols_declare(strict_bundle, catalog, tmp_path):
    from lablr.core import fitted_photos
    from lablr.core.bundle import leave_out
    from lablr.core.data.selection import Rules
    from lablr.core.model import Model
    from lablr.core.pipeline.evaluate import evaluate_bundle
    from lablr.core.pipeline.fit import add_photos, refit

    model = Model.load(strict_bundle)
    assert isinstance(model.encoder, Strict) and isinstance(model.tag_model, Strict)
    photo = np.asarray(draw_shape("red", "circle", size=16))
    found = model.suggest(photo[None], 3)[0]
    assert len(found) == 3 and model.suggest(photo[None], 3, scorer="loglik")[0]
    assert model.plot(photo, 3).startswith(b"\x89PNG")
    rules = Rules(**TINY_RULES)
    refit(strict_bundle, catalog, tmp_path / "refit", rules=rules)
    unrecorded = tmp_path / "unrecorded"  # its photos are not known: all of the catalog's are added again
    shutil.copytree(tmp_path / "refit", unrecorded)
    leave_out(unrecorded, fitted_photos.FILE)
    assert add_photos(unrecorded, catalog, tmp_path / "added", rules=rules).added > 0
    report = evaluate_bundle(tmp_path / "refit", catalog)
    assert report["strict-mahalanobis"]["photos"] > 0


def test_the_server_uses_only_what_the_protocols_declare(strict_bundle):
    from conftest import draw_shape as draw

    from lablr.server import create_app

    buffer = io.BytesIO()
    draw("blue", "square").save(buffer, "PNG")
    files = {"image": ("p.png", buffer.getvalue(), "image/png")}
    with TestClient(create_app(strict_bundle), base_url="http://127.0.0.1:8777") as client:
        assert client.get("/api/v1/tags").status_code == 200
        assert client.post("/api/v1/suggest", files=files).status_code == 200
        assert client.post("/api/v1/plot", files=files).status_code == 200


# -- a scorer that needs what the tag model lacks ---------------------------------------------------


def test_train_refuses_the_pairing_before_training(registered, catalog, tmp_path):
    from lablr.core.cli import cli

    result = CliRunner().invoke(cli, ["train", "--catalog", str(catalog), "--out", str(tmp_path / "m"),
                                      "--tag-model", "centroids", "--scorer", "mahalanobis", "--epochs", "1"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: The scorer 'mahalanobis' needs a tag model with whitening(), which the tag model 'centroids' "
        "does not have. Choose another scorer or tag model."]
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.work").exists()


@pytest.fixture(scope="module")
def centroids_bundle(registered, catalog):
    """A model whose tag model has no whitening(), with a scorer that does not need it."""
    from lablr.core.data.selection import Rules
    from lablr.core.pipeline.train import train

    out = catalog.parent / "centroids-model"
    train(catalog, out, encoder_settings={"image_size": 16, "latent_dim": 4, "filters": 8}, tag_model="centroids",
          scorer="nearest", rules=Rules(**TINY_RULES), epochs=1, progress=False)
    return out


def test_the_api_refuses_a_scorer_the_tag_model_cannot_serve_with_a_422(centroids_bundle):
    from lablr.server import create_app

    buffer = io.BytesIO()
    draw_shape("green", "triangle").save(buffer, "PNG")
    files = {"image": ("p.png", buffer.getvalue(), "image/png")}
    with TestClient(create_app(centroids_bundle), base_url="http://127.0.0.1:8777") as client:
        own = client.post("/api/v1/suggest", files=files, params={"k": 2})
        assert own.status_code == 200 and len(own.json()["results"][0]["suggestions"]) == 2
        refused = client.post("/api/v1/suggest", files=files, params={"scorer": "mahalanobis"})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "incompatible_parts"
        assert "whitening()" in refused.json()["error"]["message"]


def test_serve_and_fit_refuse_a_bundle_whose_scorer_needs_what_its_tag_model_lacks(centroids_bundle, catalog,
                                                                                   tmp_path):
    from lablr.core.cli import cli

    bundle = tmp_path / "edited"
    shutil.copytree(centroids_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["parts"]["scorer"] = {"name": "mahalanobis", "settings": {}}  # as a hand-edited bundle might say
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleParts):
        check_parts(bundle)
    for command in (["serve", "--model", str(bundle), "--port", "1"],
                    ["fit", "--model", str(bundle), "--catalog", str(catalog), "--out", str(tmp_path / "refit")]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 1, result.output
        assert result.output.strip().splitlines() == [
            "Error: The scorer 'mahalanobis' needs a tag model with whitening(), which the tag model 'centroids' "
            "does not have. Choose another scorer or tag model."]
    assert not (tmp_path / "refit").exists()
