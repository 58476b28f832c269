"""What every training method shares: the attack settings and the base model.

A training method is a ``keras.Model`` wrapping an *inner* model (the one that
is saved, evaluated and exported). Its ``train_step`` composes an attack, the
inner model and the cross-entropy; ``fit`` compiles the step into one
``tf.function`` (XLA with ``compile(jit_compile=True)``) under the active
``tf.distribute`` strategy, and the attacks inline into it.
"""

import dataclasses
from typing import Optional

import keras
import tensorflow as tf

from tfadv import attacks
from tfadv.models.conditioning import IMAGES, bind_condition, condition_inputs, is_conditioned

TRAINING_ATTACKS = ("fgsm", "pgd", "stadv")


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """The settings of one training attack, validated once.

    Adversarial examples are crafted with the model in inference mode
    (moving BN statistics): crafting in training mode would average the m
    intermediate iterates of every step into the moving statistics, and the
    batch statistics would couple the examples of a batch, so one example's
    perturbation would depend on its neighbours. Inference mode is also how
    the model is attacked at evaluation.

    Args:
        name: ``fgsm``, ``pgd`` or ``stadv``.
        eps: L∞ radius in pixel units of [0, 1] (``8/255``); fgsm and pgd.
        step_size: pgd step α; default ``eps / 4``.
        steps: pgd iterations or stadv Adam steps.
        random_start: pgd starts from a uniform point of the ε-ball.
        tau, learning_rate, kappa, flow_bound: stadv's flow-loss weight,
            Adam step (pixels), margin and optional flow bound.
    """

    name: str = "pgd"
    eps: float = 8 / 255
    step_size: Optional[float] = None
    steps: int = 10
    random_start: bool = True
    tau: float = 0.05
    learning_rate: float = 0.01
    kappa: float = 0.0
    flow_bound: Optional[float] = None

    def __post_init__(self):
        if self.name not in TRAINING_ATTACKS:
            raise ValueError(
                f"attack must be one of {', '.join(TRAINING_ATTACKS)} for training. "
                f"Received: attack={self.name!r}"
            )
        if self.name in ("fgsm", "pgd") and not 0 < self.eps <= 1:
            raise ValueError(f"eps must be in (0, 1]. Received: eps={self.eps}")
        if self.step_size is not None and not self.step_size > 0:
            raise ValueError(f"step_size must be > 0. Received: step_size={self.step_size}")
        if isinstance(self.steps, bool) or int(self.steps) != self.steps or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1. Received: steps={self.steps}")

    @classmethod
    def create(cls, attack):
        """An ``AttackSpec`` from a spec, a name, a mapping or an ``AttackConfig``."""
        if isinstance(attack, cls):
            return attack
        if isinstance(attack, str):
            return cls(name=attack)
        if dataclasses.is_dataclass(attack):
            attack = dataclasses.asdict(attack)
        if not isinstance(attack, dict):
            raise ValueError(f"attack must be a name, a mapping or an AttackSpec. Received: attack={attack!r}")
        # AttackConfig's evaluation-only keys: refuse values that would be ignored.
        if attack.get("targeted", False) or attack.get("restarts", 1) != 1:
            raise ValueError(
                "Training attacks are untargeted with one start. Received: "
                f"targeted={attack.get('targeted', False)}, restarts={attack.get('restarts', 1)}"
            )
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(attack) - fields - {"targeted", "restarts"})
        if unknown:
            raise ValueError(f"Unknown attack setting(s) {unknown}. Available: {sorted(fields)}")
        # Unset (None) keys keep the spec's defaults, e.g. each attack's own step count.
        return cls(**{key: value for key, value in attack.items() if key in fields and value is not None})

    def as_dict(self):
        return dataclasses.asdict(self)

    def __call__(self, model_fn, x, y, eps=None, jit_compile=None):
        """The adversarial batch of ``x`` against ``model_fn`` (inference mode).

        ``eps`` overrides the radius (a tensor is fine). Inside a
        ``train_step`` the attack inlines into the step's graph;
        ``jit_compile`` matters only for eager calls (see ``tfadv.attacks``).
        """
        common = {"training": False, "jit_compile": jit_compile}
        if self.name == "stadv":
            return attacks.stadv(model_fn, x, y, tau=self.tau, steps=self.steps,
                                 learning_rate=self.learning_rate, kappa=self.kappa,
                                 flow_bound=self.flow_bound, **common)
        eps = self.eps if eps is None else eps
        if self.name == "fgsm":
            return attacks.fgsm(model_fn, x, y, eps, **common)
        step_size = self.step_size if self.step_size is not None else eps / 4
        return attacks.pgd(model_fn, x, y, eps, step_size, self.steps,
                           random_start=self.random_start, **common)

    def describe(self):
        """A short human name, e.g. ``pgd(eps=0.0314, steps=10)``."""
        if self.name == "stadv":
            return f"stadv(tau={self.tau}, steps={self.steps})"
        if self.name == "fgsm":
            return f"fgsm(eps={self.eps:.4g})"
        return f"pgd(eps={self.eps:.4g}, steps={self.steps})"


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
        self.eval_attack = AttackSpec.create(eval_attack)
        self.eval_condition = float(eval_condition)
        self.eval_attack_condition = float(
            eval_condition if eval_attack_condition is None else eval_attack_condition)
        self.conditioned = is_conditioned(inner)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.robust_accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="robust_accuracy")
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
        if self.conditioned:
            return self.inner(condition_inputs(images, condition), training=training)
        return self.inner(images, training=training)

    def model_fn(self, condition=None):
        """``images -> logits`` for the attacks (bound to p for conditioned models)."""
        return bind_condition(self.inner, condition) if self.conditioned else self.inner

    # ---------------------------------------------------------------- update

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
        x_adv = self.eval_attack(self.model_fn(self.eval_attack_condition), x, y)
        adversarial_logits = self.logits(x_adv, self.eval_attack_condition)
        self.loss_tracker.update_state(cross_entropy(y, clean_logits, sample_weight),
                                       sample_weight=tf.shape(x)[0])
        self.accuracy_tracker.update_state(y, clean_logits, sample_weight)
        self.robust_accuracy_tracker.update_state(y, adversarial_logits, sample_weight)
        return self.results()
