from lablr.core.model import Model


def test_tiny_bundle_suggests(tiny_bundle):
    model = Model.load(tiny_bundle)
    assert sorted(model.tag_model.tags) == ["blue", "circle", "green", "red", "square", "triangle"]
