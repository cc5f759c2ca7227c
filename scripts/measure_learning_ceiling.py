"""How far could learning from a user go in this latent space? The ceiling behind bench_learning.py.

    python scripts/measure_learning_ceiling.py [--model openclipart-effnet] [--seed 0]

The same users and halves as bench_learning.py (same seed, same order). In process, through a
real personal layer taught each user's first half with its tags (as feedback without the
suggestions shown), the second half is ranked:
- by the bundle alone, and as served with the layer (what bench_learning.py measures);
- by a logistic regression per tag trained on the user's taught half alone (scikit-learn, a
  test dependency), and by its log-odds added to the served ones: what a discriminative model
  of this user alone adds in the same latent space;
- by the served log-odds plus that regression and a vote of the user's 3 nearest taught photos,
  each weighted as best suits the measured half itself: an optimistic bound, since the weights
  are chosen on the photos they are measured on.
The last column is the share of the gap to a perfect ranking (mAP 1) that serving closes.

With --fine-tune (TensorFlow, `pip install 'lablr[train]'`; a few minutes per user), two more
columns ask whether other features than the encoder's could do better: EfficientNet-Lite0's last
blocks are fine-tuned on the user's taught half, under a new layer of log-odds for the tags it
carries (flips and crops; FINE_TUNE holds the recipe), and the measured half is ranked by that
network alone, and by it added to the served log-odds at the weight that best suits the measured
half.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_learning import catalog_photos, users  # noqa: E402
from bench_new_tags import encode, served_after  # noqa: E402


def user_alone(taught_latents, taught_relevant, measured_latents, strength=1.0):
    """(n, K) log-odds of a logistic regression per tag on the user's taught photos alone."""
    from sklearn.linear_model import LogisticRegression

    scores = np.full((len(measured_latents), taught_relevant.shape[1]), -30.0)
    for k in range(taught_relevant.shape[1]):
        carrying = taught_relevant[:, k].sum()
        if 0 < carrying < len(taught_relevant):
            fitted = LogisticRegression(C=strength, max_iter=1000).fit(taught_latents, taught_relevant[:, k])
            scores[:, k] = fitted.decision_function(measured_latents)
    return scores


def neighbour_vote(taught_latents, taught_relevant, measured_latents, count=3):
    """(n, K) the log-odds of each tag among the user's `count` nearest taught photos (one pseudo-photo
    of the user's own frequencies added), against its frequency among all of them."""
    from lablr.core.personal.prior import logit, nearest

    near = nearest(taught_latents, measured_latents, count)
    frequency = taught_relevant.mean(axis=0)
    votes = (taught_relevant[near].sum(axis=1) + frequency) / (count + 1)
    return logit(votes) - logit(np.clip(frequency, 1e-3, 1 - 1e-3))


# Trained: EfficientNet-Lite0's blocks from this one on (of 16) and its 1x1 head; Adam; each photo
# flipped at random and cropped to 80-100% of its side.
FINE_TUNE = {"first_block": 12, "epochs": 24, "batch": 16, "learning_rate": 3e-4, "dropout": 0.2, "seed": 0}


def fine_tuned(taught, taught_relevant, measured, image_size):
    """(n, K) log-odds of the tags the user taught, from EfficientNet-Lite0 fine-tuned on `taught`
    (photos) for the measured photos; -30 for tags the taught half lacks."""
    from lablr.core.data import decoding as imaging
    from lablr.core.personal.prior import logit
    from lablr.plugins import effnet
    from lablr.plugins.vae_network import import_keras

    keras = import_keras("Fine-tuning EfficientNet-Lite0")
    import tensorflow as tf

    recipe = FINE_TUNE
    keras.utils.set_random_seed(recipe["seed"])
    images = [np.stack([imaging.load(p["path"], image_size) for p in photos]) for photos in (taught, measured)]
    carried = np.flatnonzero(taught_relevant.sum(axis=0) > 0)
    targets = taught_relevant[:, carried].astype(np.float32)
    frequency = np.clip(targets.mean(axis=0), 1e-3, 1 - 1e-3)  # a tag on every taught photo: not infinite

    network = effnet.build_network(keras, image_size, effnet.converted_weights())
    trained = False
    for layer in network.layers:
        trained = trained or layer.name.startswith(f"block{recipe['first_block']}_")
        layer.trainable = trained
    dropped = keras.layers.Dropout(recipe["dropout"])(network.outputs[0])
    logits = keras.layers.Dense(len(carried), kernel_initializer="zeros",
                                bias_initializer=keras.initializers.Constant(logit(frequency)))(dropped)
    tuned = keras.Model(network.input, logits)
    optimizer = keras.optimizers.Adam(recipe["learning_rate"])
    loss = keras.losses.BinaryCrossentropy(from_logits=True)

    def varied(batch):
        batch = tf.image.random_flip_left_right(tf.cast(batch, tf.float32))
        side = tf.cast(image_size * tf.random.uniform([], 0.8, 1.0), tf.int32)
        return tf.image.resize(tf.image.random_crop(batch, [tf.shape(batch)[0], side, side, 3]), [image_size] * 2)

    @tf.function
    def step(batch, wanted):
        with tf.GradientTape() as tape:
            value = loss(wanted, tuned(varied(batch), training=True))
        optimizer.apply_gradients(zip(tape.gradient(value, tuned.trainable_weights), tuned.trainable_weights))

    shuffling = np.random.default_rng(recipe["seed"])
    for _epoch in range(recipe["epochs"]):
        order = shuffling.permutation(len(targets))
        for start in range(0, len(order), recipe["batch"]):
            chosen = order[start:start + recipe["batch"]]
            step(images[0][chosen], targets[chosen])
    scores = np.full((len(measured), taught_relevant.shape[1]), -30.0)
    scores[:, carried] = np.concatenate([tuned(images[1][i:i + 32].astype(np.float32), training=False).numpy()
                                         for i in range(0, len(images[1]), 32)])
    return scores


def best_stack(served, regression, vote, relevant):
    """The best mAP of served + a regression + b vote over a small grid, chosen on `relevant` itself."""
    from lablr.core.pipeline.metrics import ranking_metrics

    return max(ranking_metrics(served + a * regression + b * vote, relevant)["map"]
               for a in (0, 0.25, 0.5, 1, 2) for b in (0, 0.25, 0.5, 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="openclipart-effnet")
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fine-tune", action="store_true",
                        help="add EfficientNet-Lite0 fine-tuned on each user's taught half (needs TensorFlow)")
    args = parser.parse_args()

    from lablr.core.model import Model
    from lablr.core.pipeline.metrics import ranking_metrics, relevance

    model = Model.load(args.model)
    vocabulary = [tag for tag, _ in model.manifest.tags]
    rng = np.random.default_rng(args.seed)
    print(f"{model.name}, seed {args.seed}; mAP on the other half, over the bundle's own tags\n")
    print("| User | bundle alone | served with the layer | the user's own regression alone | served + regression "
          "| served + regression + vote, weights chosen on the measured half | gap closed by serving |"
          + (" fine-tuned encoder alone | served + fine-tuned, weight chosen on the measured half |"
             if args.fine_tune else ""))
    print("|---" * (9 if args.fine_tune else 7) + "|")
    for name, photos in users(model.manifest, catalog_photos(), args.users):
        order = rng.permutation(len(photos))  # the halves bench_learning.py draws
        taught, taught_latents = encode(model, [photos[i] for i in order[: len(photos) // 2]])
        measured, measured_latents = encode(model, [photos[i] for i in order[len(photos) // 2:]])
        served = served_after(model, taught_latents, [p["tags"] for p in taught])
        columns = [served.tag_index[tag] for tag in vocabulary]
        relevant = relevance([p["tags"] for p in measured], vocabulary)
        before = model.score(measured_latents).score
        after = served.score(measured_latents).score[:, columns]
        taught_relevant = relevance([p["tags"] for p in taught], vocabulary)
        alone = user_alone(taught_latents, taught_relevant, measured_latents)
        vote = neighbour_vote(taught_latents, taught_relevant.astype(np.float64), measured_latents)
        cells = [ranking_metrics(scores, relevant)["map"] for scores in (before, after, alone, after + alone)]
        cells.append(best_stack(after, alone, vote, relevant))
        closed = (cells[1] - cells[0]) / max(1 - cells[0], 1e-9)
        tuned = []
        if args.fine_tune:
            network = fine_tuned(taught, taught_relevant, measured, model.image_size)
            tuned = [ranking_metrics(network, relevant)["map"],
                     max(ranking_metrics(after + weight * network, relevant)["map"] for weight in (0.25, 0.5, 1, 2))]
        print(f"| {name} | {cells[0]:.3f} | " + " | ".join(f"{m:.3f} ({m - cells[0]:+.3f})" for m in cells[1:])
              + f" | {closed:.0%} |" + "".join(f" {m:.3f} ({m - cells[0]:+.3f}) |" for m in tuned), flush=True)


if __name__ == "__main__":
    main()
