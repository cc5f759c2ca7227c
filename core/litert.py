"""Encoders served through LiteRT (TensorFlow Lite's runtime): no TensorFlow import to suggest tags.

A bundle carries each encoder as a `.tflite` file, made from the Keras model when the bundle is
built (`convert`, the one place that needs TensorFlow) and checksummed like every bundle file.
Suggesting loads it with `ai-edge-litert` (a 22 MB package that imports in a tenth of a second)
and runs it on XNNPACK. An interpreter is not thread-safe, and the server scores photos in a
thread pool: each call holds a lock, and one call runs a whole batch on all the threads given.
"""

import contextlib
import os
import sys
import tempfile
import threading

import numpy as np

from .errors import BundleError

THREADS = min(4, os.cpu_count() or 1)


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


class LiteModel:
    """A .tflite model with one float32 image input and one output, run on batches of any size."""

    def __init__(self, content: bytes, *, threads: int = THREADS, source: str = "the .tflite model"):
        from ai_edge_litert.interpreter import Interpreter

        self.content = content
        try:
            with quiet_native_stderr():
                self._interpreter = Interpreter(model_content=content, num_threads=threads)
                self._interpreter.allocate_tensors()  # the delegate is made here: its notice too
        except (ValueError, RuntimeError) as error:
            raise BundleError(f"LiteRT cannot load {source}: {error}") from None
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = None
        self._lock = threading.Lock()

    @classmethod
    def read(cls, path, **options) -> "LiteModel":
        try:
            content = open(path, "rb").read()
        except OSError as error:
            raise BundleError(f"Cannot read {path}: {error.strerror}.") from None
        return cls(content, source=str(path), **options)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        with self._lock:
            if self._batch != images.shape:
                self._interpreter.resize_tensor_input(self._input, images.shape)
                self._interpreter.allocate_tensors()
                self._batch = images.shape
            self._interpreter.set_tensor(self._input, images)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output).copy()

    def save(self, path):
        with open(path, "wb") as file:
            file.write(self.content)


def convert(keras_model, *, half_precision: bool = False) -> bytes:
    """A Keras model (one float input, one output) as .tflite bytes; float16 weights if asked.

    Needs TensorFlow: it runs when a bundle is built, never when tags are suggested.
    """
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="lablr-tflite-") as directory:
        keras_model.export(directory, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(directory)
        if half_precision:  # half the file; XNNPACK widens the weights once, at load, so no slower
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()
