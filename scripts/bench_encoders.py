"""Encode time per image: the pretrained `effnet-lite0` next to the default `vae`, on this machine.

    python scripts/bench_encoders.py [--images 64] [--repeats 5]

Times `encoder.encode` on uint8 photos already decoded to each encoder's own size (224 for
effnet-lite0, the bundle's size for the VAE), one photo at a time (what the server does for a
single upload) and in batches of 32 (what training and `lablr evaluate` do); the median of
several runs, after a warm-up call. Also times effnet-lite0's start: converting the PyTorch
weights (the first start) against reading the converted cache (every later start).

The VAE is the bundled openclipart-vae when it exists; otherwise the VAE architecture with its
default settings and random weights (the same work per image), and the output says so.
"""

import argparse
import statistics
import tempfile
import time

import numpy as np


def per_image_ms(encode, images, batch, repeats):
    encode(images[:batch])  # warm-up: builds and traces the function
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(images), batch):
            encode(images[i:i + batch])
        runs.append((time.perf_counter() - start) / len(images) * 1000)
    return statistics.median(runs)


def vae_encoder():
    from lablr.core import defaults
    from lablr.core.bundle import bundled_names
    from lablr.core.model import Model

    if defaults.ORIGINAL_MODEL in bundled_names():
        model = Model.load(defaults.ORIGINAL_MODEL)
        return model.encoder, f"bundle {defaults.ORIGINAL_MODEL}"
    from lablr.plugins.vae import VAEEncoder
    from lablr.plugins.vae_network import build_vae, import_keras

    encoder = VAEEncoder()
    vae = build_vae(import_keras(), encoder.image_size, encoder.latent_dim, encoder.filters, encoder.beta, 0)
    encoder._use(vae.encoder_mean)
    return encoder, "no bundle: default architecture, random weights"


def effnet_encoder(images_for_pca):
    from lablr.plugins.effnet import EffNetLite0Encoder

    class Few:
        count, image_size = len(images_for_pca), images_for_pca.shape[1]

        def batches(self, batch_size, *, seed=None):
            for i in range(0, self.count, batch_size):
                yield images_for_pca[i:i + batch_size]

    return EffNetLite0Encoder(latent_dim=16).fit(Few(), verbose=0)  # a PCA just so that encode runs


def start_times():
    """(seconds to convert the .pth, seconds to read the converted cache)."""
    import os

    from lablr.plugins import effnet

    with tempfile.TemporaryDirectory() as cache:
        old = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = cache
        try:
            start = time.perf_counter()
            effnet.converted_weights()
            first = time.perf_counter() - start
            start = time.perf_counter()
            effnet.converted_weights()
            later = time.perf_counter() - start
        finally:
            if old is None:
                os.environ.pop("XDG_CACHE_HOME")
            else:
                os.environ["XDG_CACHE_HOME"] = old
    return first, later


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    vae, vae_note = vae_encoder()
    s = vae.image_size
    vae_images = rng.integers(0, 256, (args.images, s, s, 3), dtype=np.uint8)
    effnet_images = rng.integers(0, 256, (args.images, 224, 224, 3), dtype=np.uint8)
    effnet = effnet_encoder(effnet_images[:32])

    print(f"{'encoder':<14} {'image':>7} {'1 at a time':>13} {'batches of 32':>15}   (ms per image, median of "
          f"{args.repeats})")
    for name, encoder, images, note in (("vae", vae, vae_images, vae_note),
                                        ("effnet-lite0", effnet, effnet_images, "pretrained, PCA to 16")):
        one = per_image_ms(encoder.encode, images[:16], 1, args.repeats)
        many = per_image_ms(encoder.encode, images, 32, args.repeats)
        size = f"{encoder.image_size}px"
        print(f"{name:<14} {size:>7} {one:>13.2f} {many:>15.2f}   {note}")
    first, later = start_times()
    print(f"effnet-lite0 weights: {first:.2f} s to convert the .pth (first start), {later:.2f} s from the cache")
    from lablr.plugins.effnet import network_functions

    network_functions.cache_clear()
    start = time.perf_counter()
    network_functions(224)[0](effnet_images[:1])
    print(f"effnet-lite0 start: {time.perf_counter() - start:.2f} s to build the Keras network and trace it "
          f"(TensorFlow already imported)")
    import os

    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
