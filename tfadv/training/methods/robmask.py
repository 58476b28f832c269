"""RobMask: adversarial training at random strengths with an ε-conditioned BN."""

import keras
import tensorflow as tf

from tfadv import attacks, checks
from tfadv.layers import ConditionedBatchNormalization
from tfadv.training.methods._common import TrainingMethod, cross_entropy
from tfadv.training.methods._strength import uniform_strength

MULTIPLIER_GROUPS = ("basis", "shift", "network")


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


class RobMask(TrainingMethod):
    """Algorithm 1 of the Adversarial Masking paper, one update per mini-batch.

    The inner model is conditioned with ``ConditionedBatchNormalization``
    (``norm="robmask"``): shared statistics, rescaling
    ``gamma_p = u(p) @ W``, ``beta_p = u(p) @ W'``. Each mini-batch:

        p ~ U(0, 1),   ε = p · ε_max
        x_adv = PGD-m(f(·, p), x, y, ε, step = step_fraction · ε, random start)
        loss  = CE(f(x_adv, p), y)                 (training mode)
        W ← W − η1 ∇_W loss,  W' ← W' − η2 ∇_W' loss,  θ ← θ − η3 ∇_θ loss

    where the adversary sees the same masking u(p) it is crafted for. p is
    drawn from a stateless generator seeded by ``(seed, optimizer step)``,
    so every replica of a ``tf.distribute`` strategy uses the same p, runs
    are reproducible and a resumed run continues the same sequence.

    The separate learning rates η1, η2, η3 are the optimizer's learning rate
    times ``learning_rate_multipliers`` ``{"basis": ·, "shift": ·, "network": ·}``
    (default 1), applied by scaling the gradients of each group. That equals
    per-group learning rates for SGD (the paper's optimizer; the decoupled
    weight decay is not scaled); Adam's steps ignore gradient scale, so
    multipliers other than 1 are rejected with Adam.

    Metrics: ``loss``; ``robust_accuracy`` of the training forward pass (at
    the drawn ε and p); ``accuracy`` of one extra inference-mode pass on the
    clean batch at p = 0. Validation: clean accuracy at p = 0 and accuracy
    under PGD-m at ε_max (step ``step_fraction · ε_max``) crafted and
    evaluated at p = 1, the two ends of the trade-off.

    Args:
        inner: a conditioned model (``norm="robmask"``).
        eps_max: ε_max in (0, 1], pixel units (8/255).
        steps: m, the PGD steps (7).
        step_fraction: PGD step as a fraction of ε (1/5).
        random_start: PGD starts from a uniform point of the ε-ball.
        learning_rate_multipliers: ``{"basis", "shift", "network"}`` → factor > 0.
        strength: None draws p ~ U(0, 1) per mini-batch (Algorithm 1); a
            float in [0, 1] fixes p (ablations, tests).
        seed: seed of the p sequence.

    Reference:
        "Adversarial Masking: Towards Understanding Robustness Trade-off for
        Generalization" (RobMask), Algorithm 1.
    """

    def __init__(self, inner, eps_max=8 / 255, steps=7, step_fraction=0.2, random_start=True,
                 learning_rate_multipliers=None, strength=None, seed=0, **kwargs):
        checks.check_in_interval("eps_max", eps_max, low_open=True)
        checks.check_positive("step_fraction", step_fraction)
        checks.check_in_interval("strength", strength, or_none=True)
        multipliers = dict(learning_rate_multipliers or {})
        unknown = sorted(set(multipliers) - set(MULTIPLIER_GROUPS))
        if unknown:
            raise ValueError(
                f"learning_rate_multipliers keys must be among {MULTIPLIER_GROUPS}. "
                f"Received: learning_rate_multipliers={multipliers}"
            )
        for group, factor in multipliers.items():
            if not factor > 0:
                raise ValueError(
                    f"learning_rate_multipliers must be > 0. Received: learning_rate_multipliers={multipliers}")
        eval_attack = attacks.AttackSpec("pgd", eps=eps_max, step_size=step_fraction * eps_max,
                                         steps=steps, random_start=random_start)
        super().__init__(inner, eval_attack=eval_attack, eval_condition=0.0,
                         eval_attack_condition=1.0, **kwargs)
        if not self.conditioned:
            raise ValueError(
                "RobMask needs a conditioned model (models.build(..., norm='robmask')). "
                f"Received: inner={inner.name!r}"
            )
        self.eps_max = float(eps_max)
        self.steps = int(steps)
        self.step_fraction = float(step_fraction)
        self.random_start = bool(random_start)
        self.learning_rate_multipliers = {group: float(multipliers.get(group, 1.0))
                                          for group in MULTIPLIER_GROUPS}
        self.strength = strength
        self.seed = int(seed)
        self._multipliers = None

    # ------------------------------------------------------------- settings

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        optimizer = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        scaled = any(f != 1.0 for f in self.learning_rate_multipliers.values())
        if scaled and not isinstance(optimizer, keras.optimizers.SGD):
            raise ValueError(
                "learning_rate_multipliers scale gradients, which changes the step of SGD only. "
                f"Received: optimizer={type(optimizer).__name__}, "
                f"learning_rate_multipliers={self.learning_rate_multipliers}"
            )

    def gradient_multipliers(self):
        if all(f == 1.0 for f in self.learning_rate_multipliers.values()):
            return None
        if self._multipliers is None:
            groups = {}
            for layer in _all_layers(self.inner):
                if isinstance(layer, ConditionedBatchNormalization):
                    if layer.gamma_basis is not None:
                        groups[id(layer.gamma_basis)] = "basis"
                    if layer.beta_basis is not None:
                        groups[id(layer.beta_basis)] = "shift"
            self._multipliers = [self.learning_rate_multipliers[groups.get(id(v), "network")]
                                 for v in self.trainable_variables]
        return self._multipliers

    def draw_strength(self):
        """p for this mini-batch: fixed, or U(0, 1) from (seed, optimizer step)."""
        if self.strength is not None:
            return tf.constant(self.strength, tf.float32)
        return uniform_strength(self.seed, self.optimizer.iterations)

    # ------------------------------------------------------------- training

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        p = self.draw_strength()
        eps = p * self.eps_max
        x_adv = attacks.pgd(self.model_fn(p), x, y, eps, self.step_fraction * eps, self.steps,
                            random_start=self.random_start, training=False,
                            seed=self.next_attack_draw() + self.seed * attacks.spec.SEED_STRIDE)
        self.accuracy_tracker.update_state(y, self.logits(x, 0.0, training=False), sample_weight)
        with tf.GradientTape() as tape:
            logits = self.logits(x_adv, p, training=True)
            loss = cross_entropy(y, logits, sample_weight)
            objective = self.objective(loss)
        self.apply_update(tape, objective)
        self.loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        self.robust_accuracy_tracker.update_state(y, logits, sample_weight)
        return self.results()
