"""The VAE's network in Keras 3 (the `vae` encoder's, and the multi-worker training's): not a plugin.

Both `lablr.plugins.vae` and `lablr.plugins.vae_multiworker` build it from here, so neither
imports the other's internals. Keras and TensorFlow are imported when a network is built.
"""

import os

from lablr.core import litert
from lablr.core.errors import require_train_extra

DOWNSAMPLINGS = 4  # stride-2 convolutions: the image side must divide by 2**4


def import_keras(what: str = "Building a Keras network"):
    """Import Keras on TensorFlow once, quietly; without the `train` extra, one line saying so."""
    require_train_extra(what)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with litert.quiet_native_stderr():
        import keras
        import tensorflow  # noqa: F401  (its C++ start-up lines go to stderr before any log level applies)

    return keras


def build_vae(keras, image_size, latent_dim, filters, beta, seed):
    from keras import layers, ops

    inputs = keras.Input((image_size, image_size, 3))
    x = inputs
    for i in range(DOWNSAMPLINGS):
        x = layers.Conv2D(filters * 2 ** min(i, 2), 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    encoder = keras.Model(inputs, [z_mean, z_log_var], name="encoder")

    side = image_size // 2**DOWNSAMPLINGS
    latent = keras.Input((latent_dim,))
    y = layers.Dense(side * side * filters * 4, activation="relu")(latent)
    y = layers.Reshape((side, side, filters * 4))(y)
    for i in reversed(range(DOWNSAMPLINGS - 1)):
        y = layers.Conv2DTranspose(filters * 2 ** min(i, 2), 3, strides=2, padding="same", activation="relu")(y)
    outputs = layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation="sigmoid")(y)
    decoder = keras.Model(latent, outputs, name="decoder")

    class VAE(keras.Model):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = encoder, decoder
            self.encoder_mean = keras.Model(inputs, z_mean, name="vae_encoder")
            self.noise = keras.random.SeedGenerator(seed)
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
            self.kl_tracker = keras.metrics.Mean(name="kl")

        @property
        def metrics(self):
            return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

        def call(self, images):
            mean, _ = self.encoder(images)
            return self.decoder(mean)

        def vae_losses(self, images, noise=None):
            """(loss, reconstruction loss, KL term), each the mean over the batch."""
            mean, log_var = self.encoder(images, training=True)
            if noise is None:
                noise = keras.random.normal(ops.shape(mean), seed=self.noise)
            reconstruction = self.decoder(mean + ops.exp(0.5 * log_var) * noise, training=True)
            reconstruction_loss = ops.mean(ops.sum(
                keras.losses.binary_crossentropy(images, reconstruction), axis=(1, 2)))
            kl = ops.mean(ops.sum(-0.5 * (1 + log_var - ops.square(mean) - ops.exp(log_var)), axis=1))
            return reconstruction_loss + beta * kl, reconstruction_loss, kl

        def train_step(self, images):
            import tensorflow as tf

            with tf.GradientTape() as tape:
                loss, reconstruction_loss, kl = self.vae_losses(images)
            gradients = tape.gradient(loss, self.trainable_weights)
            self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
            self.loss_tracker.update_state(loss)
            self.reconstruction_tracker.update_state(reconstruction_loss)
            self.kl_tracker.update_state(kl)
            return {m.name: m.result() for m in self.metrics}

    return VAE()
