"""BN-only fine-tuning: learn a new masking (BN gamma, beta) for a trained network."""

import keras
import tensorflow as tf

from tfadv.training.methods._common import DEFAULT_ATTACK, TrainingMethod, craft, cross_entropy


class BNFineTuning(TrainingMethod):
    """Fine-tune only the BN affine parameters (γ, β) of a trained plain model.

    Sec. 3.2 of the Adversarial Masking paper: start from an adversarially
    trained model and fine-tune it on clean data with every weight frozen but
    the BNs' γ and β, giving a "clean masking" of the same robust features.

    Every non-BN layer is set ``trainable = False``, and the model runs in
    inference mode during fine-tuning (``training=False``): the BNs normalize
    with their *frozen* moving statistics and do not update them, while γ
    and β still receive gradients. Why frozen statistics: the two models
    must differ in γ, β only, so that one ``ConditionedBatchNormalization``
    with a single, shared set of statistics (:func:`interpolation_model`)
    reproduces both, and so that a masking means a rescaling of the same
    normalized features. Were the statistics re-estimated on clean data, the
    clean model would normalize differently and p = 0 could not reproduce it.

    Each step: ``loss = mean CE(f(x), y)`` on the clean batch (inference-mode
    forward, gradients for γ, β only). Metrics: ``loss``, ``accuracy`` of
    that forward pass, ``robust_accuracy`` under ``attack`` (crafted on the
    current model; an extra attack per batch, for monitoring only).

    Args:
        inner: the trained plain model (BN layers ``keras.layers.BatchNormalization``).
        attack: the attack ``robust_accuracy`` is measured with (an
            ``AttackSpec`` or its settings; default PGD-10 at 8/255).
    """

    def __init__(self, inner, attack=DEFAULT_ATTACK, **kwargs):
        super().__init__(inner, eval_attack=attack, **kwargs)
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
        with tf.GradientTape() as tape:
            logits = self.inner(x, training=False)  # frozen statistics, trainable γ, β
            loss = cross_entropy(y, logits, sample_weight)
            objective = self.objective(loss)
        self.apply_update(tape, objective)
        self.loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        self.accuracy_tracker.update_state(y, logits, sample_weight)
        self.robust_accuracy_tracker.update_state(y, self.inner(x_adv, training=False), sample_weight)
        return self.results()
