"""`vae`: a convolutional variational autoencoder in Keras 3 on TensorFlow.

Read like Keras' own VAE example: an encoder to (z_mean, z_log_var), a decoder, and a model
whose train_step samples z = mean + sigma * noise and adds beta times the KL term to the
reconstruction loss. Photos are encoded to z_mean, never to a sample, so the same photo always
gets the same tags; only that mean encoder goes into a bundle.

Once trained, the mean encoder is also converted to LiteRT (`encoder.tflite`, beside
`encoder.keras` in a bundle), and photos are encoded through it: loading a bundle and
suggesting tags import no TensorFlow. Training does, when it starts: TensorFlow and Keras
come with the `train` extra, and without them training stops at once with the pip command.
"""

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from lablr.core import defaults, hookimpl, litert
from lablr.core.errors import BundleError, LablrError, require_train_extra
from lablr.core.files import write_atomically
from lablr.core.part_settings import Setting
from lablr.core.parts import check_images
from lablr.plugins.vae_network import DOWNSAMPLINGS, build_vae, import_keras
from lablr.plugins.vae_work import recorded_run, start_afresh

FILE = "encoder.keras"
LITE_FILE = "encoder.tflite"


@hookimpl
def register_encoders(register):
    register("vae", VAEEncoder)


class VAEEncoder:
    SETTINGS = {"image_size": Setting(int, 8, 512), "latent_dim": Setting(int, 1, 1024),
                "filters": Setting(int, 1, 512), "beta": Setting(float, 0, 1000),
                "learning_rate": Setting(float, 0, 1)}
    LATENT_FILES = (FILE, LITE_FILE)  # the trained network decides the latent space (lablr.core.bundle.latent_space)

    def __init__(self, image_size: int = defaults.IMAGE_SIZE, latent_dim: int = defaults.LATENT_DIM,
                 filters: int = 32, beta: float = 1.0, learning_rate: float = 1e-3):
        if image_size % 2**DOWNSAMPLINGS:
            raise LablrError(f"The VAE's image size must be a multiple of {2**DOWNSAMPLINGS}, not {image_size}.")
        self.image_size, self.latent_dim = image_size, latent_dim
        self.filters, self.beta, self.learning_rate = filters, beta, learning_rate
        self._encoder = None  # the Keras mean encoder, after training (or from a bundle without .tflite)
        self._encode_fn = None
        self._lite = None  # the same encoder on LiteRT: what encodes photos when present
        self._keras_file = None  # the bundle's encoder.keras, when loaded through LiteRT

    def settings(self):
        return {"image_size": self.image_size, "latent_dim": self.latent_dim, "filters": self.filters,
                "beta": self.beta, "learning_rate": self.learning_rate}

    # -- inference --------------------------------------------------------------------------------

    def encode(self, images: np.ndarray) -> np.ndarray:
        if self._encoder is None and self._lite is None:
            raise LablrError("The VAE encoder has not been trained or loaded.")
        images = check_images(images, self.image_size)
        if self._lite is not None:
            out = [self._lite(images[i:i + 256].astype(np.float32) / 255.0) for i in range(0, len(images), 256)]
        else:
            out = [self._encode_fn(images[i:i + 256]).numpy() for i in range(0, len(images), 256)]
        return np.concatenate(out) if out else np.zeros((0, self.latent_dim), np.float32)

    def _use(self, encoder):
        import tensorflow as tf

        self._encoder = encoder
        shape = (None, self.image_size, self.image_size, 3)

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.uint8)], reduce_retracing=True)
        def encode_fn(images):
            return encoder(tf.cast(images, tf.float32) / 255.0, training=False)

        self._encode_fn = encode_fn

    # -- training ---------------------------------------------------------------------------------

    def check_can_fit(self):
        """Training needs TensorFlow: say so before any photo is read."""
        require_train_extra("Training the vae encoder")

    def fit(self, images, *, work_dir: Path, epochs: int = defaults.EPOCHS,
            batch_size: int = defaults.BATCH_SIZE, seed: int = 0, verbose: int | str = "auto"):
        """Train on a stream of image batches; checkpoints go to work_dir, and a rerun resumes there.

        With TF_CONFIG set, this process is one worker of a multi-worker job (see vae_multiworker).
        """
        if os.environ.get("TF_CONFIG"):
            from .vae_multiworker import fit_multiworker

            return fit_multiworker(self, images, work_dir=Path(work_dir), epochs=epochs, batch_size=batch_size,
                                   seed=seed, verbose=verbose)
        keras = import_keras("Training the vae encoder")
        import tensorflow as tf

        keras.utils.set_random_seed(seed)
        vae = build_vae(keras, self.image_size, self.latent_dim, self.filters, self.beta, seed)
        vae.compile(optimizer=keras.optimizers.Adam(self.learning_rate))
        vae(np.zeros((1, self.image_size, self.image_size, 3), np.float32))  # BackupAndRestore needs it built
        vae.optimizer.build(vae.trainable_variables)
        passes = iter(range(1_000_000))
        shape = (None, self.image_size, self.image_size, 3)
        dataset = tf.data.Dataset.from_generator(
            lambda: images.batches(batch_size, seed=seed * 100_003 + next(passes)),
            output_signature=tf.TensorSpec(shape, tf.uint8),
        ).repeat().map(lambda batch: tf.cast(batch, tf.float32) / 255.0).prefetch(2)
        backup = _backup_for(Path(work_dir), {**self.settings(), "seed": seed, "images": images.count})
        # Two checkpoints: a kill while one is written leaves the other to resume from.
        resume = keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False, double_checkpoint=True)
        steps = math.ceil(images.count / batch_size)  # the batches arrive shuffled from the image set
        vae.fit(dataset, epochs=epochs, steps_per_epoch=steps, shuffle=False, verbose=verbose, callbacks=[resume])
        self._use(vae.encoder_mean)
        self._lite = litert.LiteModel(litert.convert(vae.encoder_mean))
        return self

    # -- bundle files -----------------------------------------------------------------------------

    def save(self, directory: Path):
        if self._encoder is not None:
            self._encoder.save(Path(directory) / FILE)
        else:
            shutil.copyfile(self._keras_file, Path(directory) / FILE)
        if self._lite is None:
            self._lite = litert.LiteModel(litert.convert(self._encoder))
        self._lite.save(Path(directory) / LITE_FILE)

    def load(self, directory: Path):
        lite = Path(directory) / LITE_FILE
        if lite.exists():  # no TensorFlow: the Keras file stays on disk, for saving the bundle again
            self._lite, self._keras_file = litert.LiteModel.read(lite), Path(directory) / FILE
            if self._lite.output_size != self.latent_dim:
                raise BundleError(f"The encoder in {lite} gives {self._lite.output_size} numbers per photo, not the "
                                  f"{self.latent_dim} of its latent space.")
            return self
        path = Path(directory) / FILE
        # A bundle from before LiteRT: converted now, so it encodes as it will once saved
        keras = import_keras(f"Loading {directory}, a model from before LiteRT (no {LITE_FILE}),")
        try:
            encoder = keras.saving.load_model(path, compile=False, safe_mode=True)
        except (OSError, ValueError, TypeError) as error:
            raise BundleError(f"The encoder in {path} cannot be loaded: {error}") from None
        self._use(encoder)
        self._lite = litert.LiteModel(litert.convert(encoder))
        return self


def _backup_for(work_dir: Path, run: dict) -> Path:
    """The checkpoint folder of this run; one left by a run with other settings is set aside."""
    work_dir.mkdir(parents=True, exist_ok=True)
    marker, backup = work_dir / "run.json", work_dir / "backup"
    start_afresh(backup, recorded_run(marker), run)
    write_atomically(marker, json.dumps(run))
    return backup

