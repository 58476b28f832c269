"""What every training method shares: its attack and the base model.

A training method is a ``keras.Model`` wrapping an *inner* model (the one that
is saved, evaluated and exported). Its ``train_step`` composes an attack, the
inner model and the cross-entropy; ``fit`` (one device) or
:func:`tfadv.training.loop.fit_distributed` (``strategy.run(train_step)``
under a ``tf.distribute`` strategy) compiles the step into one
``tf.function`` (XLA with ``compile(jit_compile=True)``), and the attacks
inline into it.
"""

from collections.abc import Mapping

import keras
import tensorflow as tf

from tfadv.attacks import AttackSpec
from tfadv.attacks.spec import ATTACKS
from tfadv.models.conditioning import IMAGES, bind, call_model, condition_inputs, is_conditioned

DEFAULT_ATTACK = AttackSpec("pgd", eps=8 / 255)
"""The methods' default attack: PGD-10 at 8/255, step ε/4, random start (Madry et al.)."""


def training_attack(attack):
    """``AttackSpec.create(attack)`` for training: an attack that ``can_train``, with one start.

    Raises:
        ValueError: an evaluation-only attack, restarts, or anything ``create`` refuses.
    """
    # The name is checked before create(), which accepts every attack.
    name = attack.get("name") if isinstance(attack, Mapping) else getattr(attack, "name", attack)
    if isinstance(name, str) and not (name in ATTACKS and ATTACKS[name].can_train):
        trainable = [kind for kind, row in ATTACKS.items() if row.can_train]
        raise ValueError(f"attack must be one of {', '.join(trainable)} for training. "
                         f"Received: attack={name!r}")
    spec = AttackSpec.create(attack)
    if spec.restarts not in (None, 1):
        raise ValueError(f"Training attacks run one start. Received: restarts={spec.restarts}")
    return spec


def craft(attack, model_fn, x, y, draw=None):
    """``attack``'s adversarial batch inside a compiled train or test step.

    ``draw`` (:meth:`TrainingMethod.next_attack_draw`) numbers the call, so
    every step gets fresh random starts that a resumed run reproduces; the
    spec's Python seed alone would repeat one start at every step of the
    compiled loop. ``None`` uses TensorFlow's global generator.
    """
    return attack.run(model_fn, x, y, batch_index=draw)


def cross_entropy(y, logits, sample_weight=None):
    """Mean softmax cross-entropy of a replica's batch (float32)."""
    per_example = keras.losses.sparse_categorical_crossentropy(
        y, tf.cast(logits, tf.float32), from_logits=True)
    if sample_weight is not None:
        per_example = per_example * tf.cast(sample_weight, tf.float32)
    return tf.reduce_mean(per_example)


def _replicas_in_sync():
    return tf.distribute.get_strategy().num_replicas_in_sync


class TrainingMethod(keras.Model):
    """Base of the training methods: metrics, inner-model calls, the update.

    Subclasses implement ``train_step``; ``test_step`` here reports

    - ``loss``: cross-entropy on the clean images,
    - ``accuracy``: accuracy on the clean images,
    - ``robust_accuracy``: accuracy on ``eval_attack``'s adversarial images,

    for conditioned models at strength ``eval_condition`` (clean) and
    ``eval_attack_condition`` (attacked; default the same).

    The loss is the papers' softmax cross-entropy, computed here: the
    ``loss`` and ``metrics`` arguments of ``compile`` are not used, pass the
    optimizer (and ``jit_compile``) only. Regularization losses of the inner
    model are added once. Under ``mixed_float16`` ``compile`` wraps the
    optimizer in a ``LossScaleOptimizer`` and the step scales the loss
    through ``optimizer.scale_loss``.

    The inner model is the one to save (``method.inner.save(...)``).
    """

    def __init__(self, inner, eval_attack, eval_condition=0.0, eval_attack_condition=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(inner, keras.Model):
            raise ValueError(f"inner must be a keras.Model. Received: inner={inner!r}")
        self.inner = inner
        self.eval_attack = training_attack(eval_attack)
        self.eval_condition = float(eval_condition)
        self.eval_attack_condition = float(
            eval_condition if eval_attack_condition is None else eval_attack_condition)
        self.conditioned = is_conditioned(inner)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.robust_accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="robust_accuracy")
        # Numbers every attack call of the train and test steps; checkpointed with the model, so
        # a resumed run draws the same random starts as an uninterrupted one.
        self.attack_draws = tf.Variable(0, dtype=tf.int64, trainable=False, name="attack_draws",
                                        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.built = True  # the inner model is built; the wrapper has no weights of its own

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker, self.robust_accuracy_tracker]

    # ---------------------------------------------------------------- calls

    def call(self, inputs, training=None):
        """Logits of the inner model; conditioned models at ``eval_condition``
        unless ``inputs`` carries its own ``condition``."""
        if isinstance(inputs, dict) and not (self.conditioned and "condition" in inputs):
            inputs = inputs[IMAGES]
        if self.conditioned and not isinstance(inputs, dict):
            inputs = condition_inputs(inputs, self.eval_condition)
        return self.inner(inputs, training=training)

    def logits(self, images, condition=None, training=False):
        """The inner model's logits; ``condition`` (p) only for conditioned models."""
        return call_model(self.inner, images, condition, training=training)

    def model_fn(self, condition=None):
        """``images -> logits`` for the attacks: ``tfadv.models.bind(inner, condition)``."""
        return bind(self.inner, condition)

    # ---------------------------------------------------------------- update

    def next_attack_draw(self):
        """The next attack call's number (an int64 tensor), the seed of its random start."""
        return self.attack_draws.assign_add(1)

    def objective(self, loss):
        """What the optimizer differentiates: the replica's share of the loss
        plus the regularization losses, loss-scaled. Call inside the tape."""
        if self.inner.losses:
            loss = loss + tf.add_n([tf.cast(l, tf.float32) for l in self.inner.losses])
        return self.optimizer.scale_loss(loss / _replicas_in_sync())

    def gradient_multipliers(self):
        """Per-variable gradient factors (one per trainable variable), or None."""
        return None

    def apply_update(self, tape, objective):
        variables = self.trainable_variables
        gradients = tape.gradient(objective, variables)
        multipliers = self.gradient_multipliers()
        if multipliers is not None:
            gradients = [g if m == 1.0 or g is None else g * m for g, m in zip(gradients, multipliers)]
        self.optimizer.apply_gradients(zip(gradients, variables))

    def results(self):
        return {m.name: m.result() for m in self.metrics}

    # ---------------------------------------------------------------- eval

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(x, dict):
            x = x[IMAGES]
        clean_logits = self.logits(x, self.eval_condition)
        x_adv = craft(self.eval_attack, self.model_fn(self.eval_attack_condition), x, y,
                      self.next_attack_draw())
        adversarial_logits = self.logits(x_adv, self.eval_attack_condition)
        self.loss_tracker.update_state(cross_entropy(y, clean_logits, sample_weight),
                                       sample_weight=tf.shape(x)[0])
        self.accuracy_tracker.update_state(y, clean_logits, sample_weight)
        self.robust_accuracy_tracker.update_state(y, adversarial_logits, sample_weight)
        return self.results()


def __getattr__(name):  # former names: tfadv._deprecated, with a DeprecationWarning
    from tfadv import _deprecated

    return _deprecated.former_name(__name__, name)
