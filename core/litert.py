"""Encoders served through LiteRT (TensorFlow Lite's runtime): no TensorFlow import to suggest tags.

A bundle carries each encoder as a `.tflite` file, made from the Keras model when the bundle is
built (`convert`, the one place that needs TensorFlow) and checksummed like every bundle file.
Suggesting loads it with `ai-edge-litert` (a 22 MB package that imports in a tenth of a second)
and runs it on XNNPACK. An interpreter is not thread-safe, and the server scores photos in a
thread pool: each call borrows an interpreter of its own (see LiteModel).
"""

import contextlib
import os
import queue
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from lablr.core.errors import BundleError, require_train_extra

COPIES = min(4, os.cpu_count() or 1)


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence what native code writes to file descriptor 2 while loading: TensorFlow's absl and
    oneDNN notices (twice each on import), LiteRT's "Created TensorFlow Lite XNNPACK delegate".
    Failures still raise Python exceptions with their messages."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


class _Runner:
    """One interpreter, single-threaded, and the batch shape its tensors are allocated for."""

    def __init__(self, content: bytes, source: str, outputs: tuple[str, ...] | None = None):
        from ai_edge_litert.interpreter import Interpreter

        try:
            with quiet_native_stderr():
                self.interpreter = Interpreter(model_content=content, num_threads=1)
                self.interpreter.allocate_tensors()  # the delegate is made here: its notice too
        except (ValueError, RuntimeError) as error:
            raise BundleError(f"LiteRT cannot load {source}: {error}") from None
        self.input = self.interpreter.get_input_details()[0]["index"]
        details = (self._named_outputs(outputs, source) if outputs
                   else [self.interpreter.get_output_details()[0]])
        self.outputs = [detail["index"] for detail in details]
        self.output_size = int(details[0]["shape"][-1])  # numbers per image in the first output
        self.shape = None

    def _named_outputs(self, names, source) -> list[dict]:
        """The signature's outputs by name: TFLite does not keep Keras' output order."""
        try:
            details = self.interpreter.get_signature_runner().get_output_details()
        except ValueError as error:
            raise BundleError(f"{source} has no signature to find its outputs by name: {error}") from None
        missing = [name for name in names if name not in details]
        if missing:
            raise BundleError(f"{source} has no output named {', '.join(missing)} (it has {', '.join(details)}): "
                              "rebuild the bundle.")
        return [details[name] for name in names]

    def run(self, images: np.ndarray) -> np.ndarray:
        if self.shape != images.shape:
            self.interpreter.resize_tensor_input(self.input, images.shape)
            self.interpreter.allocate_tensors()
            self.shape = images.shape
        self.interpreter.set_tensor(self.input, images)
        self.interpreter.invoke()
        found = [self.interpreter.get_tensor(index).copy() for index in self.outputs]
        return found[0] if len(found) == 1 else tuple(found)


class LiteModel:
    """A .tflite model with one float32 image input, run on batches of any size.

    It returns its first output, or with `outputs` (names in its signature) a tuple of those.

    Requests in parallel each get an interpreter of their own, up to one per core, each on one
    thread: on a busy machine, XNNPACK's threads waiting for each other cost more than they save
    (a 224-px EfficientNet-Lite0 takes about 5 ms on one core either way).
    """

    def __init__(self, content: bytes, *, copies: int = COPIES, source: str = "the .tflite model",
                 outputs: tuple[str, ...] | None = None):
        self.content, self.source, self.outputs = content, source, outputs
        self._idle = queue.LifoQueue()
        first = _Runner(content, source, outputs)  # one now: a damaged file fails at load, not later
        self.output_size = first.output_size  # numbers per image in the first output
        self._idle.put(first)
        self._made, self._copies = 1, max(1, copies)
        self._lock = threading.Lock()

    def _take(self) -> _Runner:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            make = self._made < self._copies
            self._made += make
        return _Runner(self.content, self.source, self.outputs) if make else self._idle.get()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        runner = self._take()
        try:
            return runner.run(np.ascontiguousarray(images, dtype=np.float32))
        finally:
            self._idle.put(runner)

    @classmethod
    def read(cls, path, **options) -> "LiteModel":
        try:
            content = Path(path).read_bytes()
        except OSError as error:
            raise BundleError(f"Cannot read {path}: {error.strerror}.") from None
        return cls(content, source=str(path), **options)

    def save(self, path):
        with open(path, "wb") as file:
            file.write(self.content)


def convert(keras_model, *, compact: bool = False) -> bytes:
    """A Keras model (one float input; one output, or a dict of named ones) as .tflite bytes; with
    `compact`, its weights stored in fewer bits (`compact_weights`).

    Needs TensorFlow (the `train` extra): it runs when a bundle is built, never when tags are suggested.
    """
    require_train_extra("Converting a network to LiteRT")
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="lablr-tflite-") as directory, quiet_native_stderr():
        keras_model.export(directory, verbose=False)
        # the converter's MLIR passes log to stderr by the page: quiet, errors still raise
        content = tf.lite.TFLiteConverter.from_saved_model(directory).convert()
        return compact_weights(content) if compact else content


def compact_weights(content: bytes) -> bytes:
    """The model with its weights stored as integers, one scale per output channel: 8 bits, and 4 for
    fully connected layers (EfficientNet-Lite0's classifier: 1.3 M weights). Each is widened back to
    float32 once, at load (weight-only quantization: the arithmetic stays float32, and no slower).
    EfficientNet-Lite0 goes from 9.3 MB at float16 to 4.4 MB; on the photo evaluation its precision@3
    moved by less than 0.01 (docs/quality.md)."""
    from ai_edge_quantizer import qtyping, quantizer, recipe_manager

    recipe = recipe_manager.RecipeManager()
    recipe.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=8)
    recipe.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.FULLY_CONNECTED, num_bits=4)
    compactor = quantizer.Quantizer(bytearray(content))
    compactor.load_quantization_recipe(recipe.get_quantization_recipe())
    return bytes(compactor.quantize(enable_progress_bar=False, enable_progress_report=False).quantized_model)
