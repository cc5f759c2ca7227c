"""The VAE trained as one worker of a `tf.distribute.MultiWorkerMirroredStrategy` job.

`lablr train` comes here when TF_CONFIG is set. Keras 3's `fit` fails under this strategy with
several workers (keras-team/keras#20585), so this is a custom loop: the loss and its gradient
under `tf.GradientTape` inside `strategy.run`, the gradients summed across workers by the
optimizer, and `tf.train.CheckpointManager` after every epoch.

Each worker streams its own block of the image set (`distribute_datasets_from_function`).
Every worker takes part in saving a checkpoint, as TensorFlow requires, but only the chief's
directory is kept; the others write to a scratch directory and delete it at once. A rerun of
the whole job (every worker) restores the chief's last checkpoint: `OUT.work` must be on
storage all workers see, like the images. Not a plugin: nothing here registers a part.
"""

import json
import math
import shutil
from pathlib import Path

import numpy as np

from lablr.core.files import write_atomically
from lablr.core.pipeline import multiworker

from .vae_network import build_vae, import_keras
from .vae_work import recorded_run, start_afresh

CHECKPOINTS = "checkpoints"


def fit_multiworker(encoder, images, *, work_dir: Path, epochs: int, batch_size: int, seed: int, verbose=1):
    keras = import_keras("Training the vae encoder")
    import tensorflow as tf

    role = multiworker.role()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG, waits for every worker
    keras.utils.set_random_seed(seed)
    size = encoder.image_size
    with strategy.scope():
        vae = build_vae(keras, size, encoder.latent_dim, encoder.filters, encoder.beta, seed)
        vae(np.zeros((1, size, size, 3), np.float32))
        optimizer = keras.optimizers.Adam(encoder.learning_rate)
        optimizer.build(vae.trainable_variables)
        done = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_done")
    checkpoint = tf.train.Checkpoint(vae=vae, optimizer=optimizer, epochs_done=done)
    run = {**encoder.settings(), "seed": seed, "images": images.count, "workers": role.count}
    chief_dir = _checkpoints_for(Path(work_dir), run, role.is_chief)
    own_dir = chief_dir if role.is_chief else Path(work_dir) / f"scratch-worker-{role.index}"
    manager = tf.train.CheckpointManager(checkpoint, str(own_dir), max_to_keep=2)
    latest = tf.train.latest_checkpoint(str(chief_dir)) if chief_dir else None
    if latest:  # every worker restores the chief's checkpoint, so all start from the same weights
        checkpoint.restore(latest).assert_existing_objects_matched()

    global_batch = batch_size * strategy.num_replicas_in_sync
    batches = iter(strategy.distribute_datasets_from_function(
        lambda context: _worker_dataset(tf, images, context, global_batch, seed, verbose)))
    train_step = _train_step(tf, strategy, vae, optimizer, encoder.latent_dim)
    steps = math.ceil(images.count / global_batch)
    first = int(done.numpy())
    if verbose and first:
        print(f"Resuming from the checkpoint after epoch {first}.", flush=True)
    for epoch in range(first, epochs):
        loss = sum(float(train_step(batches)) for _ in range(steps)) / steps
        done.assign(epoch + 1)
        manager.save()
        if not role.is_chief:
            shutil.rmtree(own_dir, ignore_errors=True)
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs} - worker {role.index} of {role.count} - loss: {loss:.4f}", flush=True)
    plain = build_vae(keras, size, encoder.latent_dim, encoder.filters, encoder.beta, seed)  # no strategy inside
    plain(np.zeros((1, size, size, 3), np.float32))
    plain.set_weights([np.asarray(w) for w in vae.get_weights()])
    encoder._use(plain.encoder_mean)
    return encoder


def _worker_dataset(tf, images, context, global_batch, seed, verbose):
    part = multiworker.worker_part(images, context.input_pipeline_id, context.num_input_pipelines)
    if verbose:
        print(f"Worker {context.input_pipeline_id} of {context.num_input_pipelines} reads {part.count} of "
              f"{images.count} training images.", flush=True)
    per_worker = context.get_per_replica_batch_size(global_batch)
    passes = iter(range(1_000_000))
    shape = (None, images.image_size, images.image_size, 3)
    return tf.data.Dataset.from_generator(
        lambda: part.batches(per_worker, seed=(seed * 100_003 + next(passes)) * 101 + context.input_pipeline_id),
        output_signature=tf.TensorSpec(shape, tf.uint8),
    ).repeat().map(lambda batch: tf.cast(batch, tf.float32) / 255.0).prefetch(2)


def _train_step(tf, strategy, vae, optimizer, latent_dim):
    replicas = strategy.num_replicas_in_sync

    def replica_step(batch):
        with tf.GradientTape() as tape:
            noise = tf.random.normal((tf.shape(batch)[0], latent_dim))
            loss, _, _ = vae.vae_losses(batch, noise=noise)
            share = loss / replicas  # the optimizer sums the workers' gradients
        gradients = tape.gradient(share, vae.trainable_variables)
        optimizer.apply_gradients(zip(gradients, vae.trainable_variables))
        return loss

    @tf.function
    def step(iterator):
        losses = strategy.run(replica_step, args=(next(iterator),))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, losses, axis=None)

    return step


def _checkpoints_for(work_dir: Path, run: dict, is_chief: bool) -> Path | None:
    """The chief's checkpoint folder; the chief sets aside one left by a run with other settings.
    A worker gets None (start afresh) while the folder is not this run's."""
    marker, directory = work_dir / "multiworker-run.json", work_dir / CHECKPOINTS
    if is_chief:
        work_dir.mkdir(parents=True, exist_ok=True)
        start_afresh(directory, recorded_run(marker), run)
        write_atomically(marker, json.dumps(run))
        return directory
    try:
        same = json.loads(marker.read_text()) == run
    except (OSError, ValueError):
        same = False
    return directory if same else None
