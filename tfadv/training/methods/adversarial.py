"""Adversarial training (Madry et al.), on adversarial images only or a clean mix."""

import keras
import tensorflow as tf

from tfadv.training.methods._common import (
    DEFAULT_ATTACK,
    TrainingMethod,
    craft,
    cross_entropy,
    training_attack,
)


class AdversarialTraining(TrainingMethod):
    """Train on adversarial examples crafted against the current model.

    With ``paired=False`` (the default), each batch of B images, the first
    ``n = round(adversarial_fraction · B)`` (batches are shuffled, so a random
    subset) are replaced by their adversarial versions, and the model takes
    one step on the mixed batch:

        x_adv = attack(f_θ, x[:n], y[:n])
        loss = mean CE(f_θ([x_adv; x[n:]]), y)      (training mode)

    ``adversarial_fraction = 1`` is Madry et al.'s min-max training. Only the
    n attacked images pay for the attack.

    With ``paired=True`` every image of the batch is attacked and the step
    trains on the clean batch *and* its adversarial batch, 2B images:

        loss = mean CE(f_θ([x; attack(f_θ, x, y)]), [y; y])

    This is the online 1:1 clean+adversarial fine-tuning of the
    loss-landscape paper's released code (each step concatenates a clean
    batch with the adversarial versions of the same images);
    ``adversarial_fraction`` must then be 1.

    Metrics: ``loss``; ``robust_accuracy`` on the adversarial part of the
    training forward pass; ``accuracy`` on the clean part. With
    ``adversarial_fraction = 1`` the training pass has no clean image, so the
    training ``accuracy`` would need one extra inference pass over the clean
    batch (about a third of a clean step); it is left out of the training
    logs unless ``train_clean_accuracy=True``. Validation (``test_step``)
    always reports clean accuracy (``val_accuracy``) and attacks with the
    same attack.

    Args:
        inner: a plain (unconditioned) model, images → logits.
        attack: an ``AttackSpec``, or a mapping or ``AttackConfig`` of its
            settings: fgsm, pgd or stadv (default PGD-10 at 8/255).
        adversarial_fraction: share of each batch that is attacked, in (0, 1].
        paired: train on each clean batch together with its adversarial
            versions (2B images per step) instead of replacing images.
        train_clean_accuracy: with ``adversarial_fraction = 1``, also log
            the training clean ``accuracy``, at the cost of one inference
            pass over each clean batch (off by default; the other settings
            get it from the training pass for free).

    Reference:
        Madry et al., "Towards Deep Learning Models Resistant to Adversarial
        Attacks", ICLR 2018.
    """

    def __init__(self, inner, attack=DEFAULT_ATTACK, adversarial_fraction=1.0, paired=False,
                 train_clean_accuracy=False, **kwargs):
        attack = training_attack(attack)
        super().__init__(inner, eval_attack=attack, **kwargs)
        if self.conditioned:
            raise ValueError(
                "Adversarial training needs a plain model; conditioned models train with "
                f"advprop or robmask. Received: inner={inner.name!r}"
            )
        if not 0 < adversarial_fraction <= 1:
            raise ValueError(
                f"adversarial_fraction must be in (0, 1]. Received: adversarial_fraction={adversarial_fraction}"
            )
        if paired and adversarial_fraction != 1:
            raise ValueError("paired=True attacks every image (and keeps its clean copy): "
                             f"adversarial_fraction must be 1. Received: adversarial_fraction={adversarial_fraction}")
        self.attack = attack
        self.adversarial_fraction = float(adversarial_fraction)
        self.paired = bool(paired)
        self.train_clean_accuracy = bool(train_clean_accuracy)

    def _split(self, x):
        """Number of attacked images: a Python int when the batch size is static."""
        batch = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]
        if self.adversarial_fraction == 1.0:
            return batch
        if isinstance(batch, int):
            return int(round(self.adversarial_fraction * batch))
        return tf.cast(tf.round(self.adversarial_fraction * tf.cast(batch, tf.float32)), tf.int32)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self.paired:
            return self._paired_train_step(x, y, sample_weight)
        n = self._split(x)
        all_adversarial = self.adversarial_fraction == 1.0
        x_adv = craft(self.attack, self.inner, x if all_adversarial else x[:n],
                      y if all_adversarial else y[:n], self.next_attack_draw())
        images = x_adv if all_adversarial else tf.concat([x_adv, x[n:]], axis=0)
        clean_pass = all_adversarial and self.train_clean_accuracy
        if clean_pass:  # no clean image in the training pass: measure before the update
            self.accuracy_tracker.update_state(y, self.inner(x, training=False), sample_weight)
        with tf.GradientTape() as tape:
            logits = self.inner(images, training=True)
            loss = cross_entropy(y, logits, sample_weight)
            objective = self.objective(loss)
        self.apply_update(tape, objective)

        weights = sample_weight if sample_weight is not None else tf.ones_like(y, tf.float32)
        adversarial = tf.cast(tf.range(tf.shape(y)[0]) < n, tf.float32)
        self.loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        self.robust_accuracy_tracker.update_state(y, logits, weights * adversarial)
        if not all_adversarial:
            self.accuracy_tracker.update_state(y, logits, weights * (1.0 - adversarial))
        results = self.results()
        if all_adversarial and not clean_pass:
            results.pop(self.accuracy_tracker.name)  # never measured in training
        return results

    def _paired_train_step(self, x, y, sample_weight):
        """One step on ``[x_adv; x]`` with labels ``[y; y]`` (2B images)."""
        x_adv = craft(self.attack, self.inner, x, y, self.next_attack_draw())
        images = tf.concat([x_adv, x], axis=0)
        labels = tf.concat([y, y], axis=0)
        weights = sample_weight if sample_weight is not None else tf.ones_like(y, tf.float32)
        pair_weights = tf.concat([weights, weights], axis=0)
        with tf.GradientTape() as tape:
            logits = self.inner(images, training=True)
            loss = cross_entropy(labels, logits, None if sample_weight is None else pair_weights)
            objective = self.objective(loss)
        self.apply_update(tape, objective)

        batch = tf.shape(x)[0]
        adversarial = tf.cast(tf.range(2 * batch) < batch, tf.float32)
        self.loss_tracker.update_state(loss, sample_weight=2 * batch)
        self.robust_accuracy_tracker.update_state(labels, logits, pair_weights * adversarial)
        self.accuracy_tracker.update_state(labels, logits, pair_weights * (1.0 - adversarial))
        return self.results()
