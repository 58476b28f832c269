"""BN-only fine-tuning: learn a new masking (BN gamma, beta) for a trained network."""

import keras
import tensorflow as tf

from tfadv.checks import check_choice
from tfadv.training.methods._common import DEFAULT_ATTACK, TrainingMethod, craft, cross_entropy

TRAIN_ON = ("clean", "adversarial")
"""What BN-only fine-tuning trains on (``BNFineTuning(train_on=...)``, ``method.train_on``)."""


class BNFineTuning(TrainingMethod):
    """Fine-tune only the BN affine parameters (γ, β) of a trained plain model.

    Sec. 3.2 of the Adversarial Masking paper: start from an adversarially
    trained model and fine-tune it on clean data with every weight frozen but
    the BNs' γ and β, giving a "clean masking" of the same robust features.
    Table 1's other block goes the other way: a standard model fine-tuned
    BN-only on adversarial examples (``train_on="adversarial"``), giving a
    "robust masking" of the standard features.

    Every non-BN layer is set ``trainable = False``; only γ and β receive
    gradients. The moving statistics:

    - ``freeze_statistics=False`` (default, the paper's fine-tuning): the
      model runs in training mode, as a PyTorch ``model.train()`` loop whose
      optimizer holds the BN parameters only: BN normalizes with the batch's
      statistics and updates its moving mean and variance (momentum of each
      layer). The paper *measures* that they barely move: "The batch
      statistics with and without further standard finetuning of BN (under
      the setting in the 2nd block of Table 1) are nearly identical across
      all the dimensions" (Sec. 3.1; Figure 1: "The running mean µ and
      variance σ, as well as the rescaling shift parameter β are almost the
      same"). Dropout, if the model has any, is active too.
    - ``freeze_statistics=True``: the model runs in inference mode
      (``training=False``): BN normalizes with the frozen moving statistics
      and never updates them, so the fine-tuned model differs from its
      source in γ, β only, by construction.

    The two models are combined by :func:`interpolation_model`, which needs
    shared statistics or an explicit choice (its ``statistics`` argument)
    when the statistics were updated.

    Each step: ``x_adv = attack(f, x, y)`` (crafted on the current model in
    inference mode), then ``loss = mean CE(f(x), y)`` on the clean batch
    (``train_on="clean"``) or ``mean CE(f(x_adv), y)`` on the adversarial
    batch (``train_on="adversarial"``), gradients for γ, β only. Metrics:
    ``loss``; the training forward pass (batch statistics unless frozen)
    gives ``accuracy`` (clean) or ``robust_accuracy`` (adversarial); the
    other one is an extra inference-mode forward pass.

    Args:
        inner: the trained plain model (BN layers ``keras.layers.BatchNormalization``).
        attack: the attack ``robust_accuracy`` is measured with (an
            ``AttackSpec`` or its settings; default PGD-10 at 8/255).
        freeze_statistics: keep the moving statistics fixed (inference-mode
            forward pass) instead of updating them (default False).
        train_on: ``"clean"`` (default: Sec. 3.2's clean fine-tuning of a
            robust model) or ``"adversarial"`` (Table 1's BN-only
            adversarial fine-tuning of a standard model, on ``attack``'s
            examples).
    """

    def __init__(self, inner, attack=DEFAULT_ATTACK, freeze_statistics=False, train_on="clean", **kwargs):
        super().__init__(inner, eval_attack=attack, **kwargs)
        if not isinstance(freeze_statistics, bool):
            raise ValueError(f"freeze_statistics must be True or False. Received: freeze_statistics={freeze_statistics!r}")
        check_choice("train_on", train_on, TRAIN_ON)
        self.freeze_statistics = freeze_statistics
        self.train_on = train_on
        if self.conditioned:
            raise ValueError(f"BN-only fine-tuning needs a plain model. Received: inner={inner.name!r}")
        batch_norms = [layer for layer in inner.layers
                       if isinstance(layer, keras.layers.BatchNormalization)]
        if not batch_norms:
            raise ValueError(f"inner has no BatchNormalization layer to fine-tune. Received: inner={inner.name!r}")
        for layer in inner.layers:
            layer.trainable = isinstance(layer, keras.layers.BatchNormalization)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x_adv = craft(self.eval_attack, self.inner, x, y, self.next_attack_draw())
        adversarial = self.train_on == "adversarial"
        with tf.GradientTape() as tape:
            # Training mode: batch statistics, moving statistics updated; γ, β trainable either way.
            logits = self.inner(x_adv if adversarial else x, training=not self.freeze_statistics)
            loss = cross_entropy(y, logits, sample_weight)
            objective = self.objective(loss)
        self.apply_update(tape, objective)
        self.loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        if adversarial:
            self.robust_accuracy_tracker.update_state(y, logits, sample_weight)
            self.accuracy_tracker.update_state(y, self.inner(x, training=False), sample_weight)
        else:
            self.accuracy_tracker.update_state(y, logits, sample_weight)
            self.robust_accuracy_tracker.update_state(y, self.inner(x_adv, training=False), sample_weight)
        return self.results()
