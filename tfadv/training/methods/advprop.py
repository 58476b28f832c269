"""AdvProp: clean and adversarial batches through separate batch normalizations."""

import keras
import tensorflow as tf

from tfadv.training.methods._common import (
    DEFAULT_ATTACK,
    TrainingMethod,
    craft,
    cross_entropy,
    training_attack,
)

MAIN = 0.0
AUXILIARY = 1.0


class AdvProp(TrainingMethod):
    """Adversarial examples as a separate, auxiliary distribution (Xie et al., 2020).

    The inner model is conditioned (``norm="dual_bn"``): condition 0 routes
    through the main BNs, 1 through the auxiliary BNs. Each step, with one
    backward pass over both terms:

        x_adv = attack(f_θ(·, aux), x, y)                (crafted through the auxiliary BNs)
        loss  = CE(f_θ(x, main), y) + CE(f_θ(x_adv, aux), y)   (training mode, two forward passes)

    so the clean batch normalizes with its own statistics in the main BNs and
    the adversarial batch with its own in the auxiliary BNs; the convolution
    weights see both. Inference uses the main BNs (condition 0).

    Metrics: ``loss`` (the sum above); ``accuracy`` of the clean (main)
    forward pass; ``robust_accuracy`` of the adversarial (auxiliary) forward
    pass. Validation measures the deployed main route: clean accuracy and
    accuracy under the same attack crafted through the main BNs.

    Args:
        inner: a conditioned model (``norm="dual_bn"``).
        attack: an ``AttackSpec``, or a mapping or ``AttackConfig`` of its
            settings: fgsm, pgd or stadv (default PGD-10 at 8/255).

    Reference:
        Xie, Tan, Gong, Wang, Yuille & Le, "Adversarial Examples Improve Image
        Recognition", CVPR 2020 (arXiv:1911.09665).
    """

    def __init__(self, inner, attack=DEFAULT_ATTACK, **kwargs):
        attack = training_attack(attack)
        super().__init__(inner, eval_attack=attack, eval_condition=MAIN, **kwargs)
        if not self.conditioned:
            raise ValueError(
                "AdvProp needs a conditioned model with main and auxiliary BNs "
                f"(models.build(..., norm='dual_bn')). Received: inner={inner.name!r}"
            )
        self.attack = attack

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x_adv = craft(self.attack, self.model_fn(AUXILIARY), x, y, self.next_attack_draw())
        with tf.GradientTape() as tape:
            clean_logits = self.logits(x, MAIN, training=True)
            adversarial_logits = self.logits(x_adv, AUXILIARY, training=True)
            loss = (cross_entropy(y, clean_logits, sample_weight)
                    + cross_entropy(y, adversarial_logits, sample_weight))
            objective = self.objective(loss)
        self.apply_update(tape, objective)
        self.loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        self.accuracy_tracker.update_state(y, clean_logits, sample_weight)
        self.robust_accuracy_tracker.update_state(y, adversarial_logits, sample_weight)
        return self.results()
