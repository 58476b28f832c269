"""Optimizers and learning-rate schedules from a ``TrainConfig``."""
import math

import keras
from keras import ops

from tfadv.checks import check_choice


@keras.saving.register_keras_serializable(package="tfadv")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``base`` over ``warmup_steps``, then cosine decay to 0.

    lr(t) = base · t / warmup for t < warmup, else
    base · ½ (1 + cos(π (t − warmup) / (total − warmup))).
    """

    def __init__(self, base, total_steps, warmup_steps=0):
        self.base = float(base)
        self.total_steps = int(max(total_steps, 1))
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = self.base * step / max(self.warmup_steps, 1)
        progress = (step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1)
        progress = keras.ops.clip(progress, 0.0, 1.0)
        cosine = self.base * 0.5 * (1.0 + keras.ops.cos(math.pi * progress))
        return keras.ops.where(step < self.warmup_steps, warm, cosine)

    def get_config(self):
        return {"base": self.base, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


def step_schedule(base, milestones, steps_per_epoch, factor=0.1):
    """PyTorch's ``MultiStepLR(milestones, gamma=factor)`` stepped once per epoch, in optimizer steps.

    Epoch ``e`` (counted from 0) trains at ``base · factor^k``, ``k`` the
    number of milestones ``<= e``: with milestones [100, 150] epochs 0-99 run
    at ``base``, 100-149 at ``base/10``, 150 on at ``base/100``. Keras calls the
    schedule with the optimizer's step count before the update (0 for the
    first step) and ``PiecewiseConstantDecay`` keeps a value up to and
    including its boundary, so the boundary of milestone ``m`` is the last
    step of epoch ``m − 1``: ``m · steps_per_epoch − 1``.
    """
    milestones = sorted(int(m) for m in milestones)
    if not milestones:
        return base
    boundaries = [m * steps_per_epoch - 1 for m in milestones]
    values = [base * factor**i for i in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def learning_rate_schedule(train, steps_per_epoch):
    """The schedule a ``TrainConfig`` asks for, in optimizer steps."""
    total = max(train.epochs, 1) * steps_per_epoch
    if train.schedule == "constant":
        return train.learning_rate
    if train.schedule == "cosine":
        return WarmupCosine(train.learning_rate, total, train.warmup_epochs * steps_per_epoch)
    if train.schedule == "step":
        return step_schedule(train.learning_rate, train.step_milestones, steps_per_epoch)
    raise ValueError(f"Unknown schedule {train.schedule!r}; use cosine, constant or step")


WEIGHT_DECAY_MODES = ("coupled", "decoupled")
"""``train.weight_decay_mode``: ``coupled`` (PyTorch's L2, the papers') or ``decoupled`` (Keras, AdamW)."""

TORCH_ADAM_EPSILON = 1e-8
"""``torch.optim.Adam``'s default ε, added to ``sqrt(v̂)`` (Keras adds its 1e-7 to ``sqrt(v)``)."""


class _CoupledWeightDecay:
    """Adds ``weight_decay · w`` to each variable's gradient inside ``update_step``.

    ``update_step`` receives the gradient after everything the caller and
    Keras do first: a training method's per-variable gradient multipliers,
    the ``LossScaleOptimizer``'s unscaling (a skipped non-finite step skips
    the decay too, as PyTorch's ``GradScaler`` skips ``optimizer.step``), the
    all-reduce across the replicas of a ``tf.distribute`` strategy, clipping.
    So the decay is added once, to the unscaled, summed gradient, in float32
    (the variables' dtype under mixed precision).

    Which variables: every variable handed to ``apply_gradients`` (all
    trainable variables: weights, biases, BN γ and β, RobMask's bases), as
    ``torch.optim.SGD(model.parameters(), weight_decay=...)`` decays every
    parameter; BN moving statistics are not trainable and never decayed.
    Keras' own mechanism excludes variables on request:
    ``optimizer.exclude_from_weight_decay(var_list=..., var_names=[...])``
    before the optimizer is built.

    The decay is *not* passed to Keras' base ``Optimizer`` (whose
    ``weight_decay`` is the decoupled form); :meth:`get_config` reports it
    as ``weight_decay`` so the optimizer round-trips through ``keras.saving``.
    """

    def _init_decay(self, weight_decay):
        weight_decay = 0.0 if weight_decay is None else float(weight_decay)
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a number >= 0. Received: weight_decay={weight_decay!r}")
        self.coupled_weight_decay = weight_decay

    def decayed_gradient(self, gradient, variable):
        """``g + wd · w`` (PyTorch's ``weight_decay``), ``g`` for excluded variables."""
        gradient = ops.cast(gradient, variable.dtype)
        if self.coupled_weight_decay and self._use_weight_decay(variable):
            gradient = gradient + ops.cast(self.coupled_weight_decay, variable.dtype) * variable
        return gradient

    def get_config(self):
        return {**super().get_config(), "weight_decay": self.coupled_weight_decay}


@keras.saving.register_keras_serializable(package="tfadv")
class CoupledSGD(_CoupledWeightDecay, keras.optimizers.SGD):
    """SGD with momentum and L2 weight decay exactly as ``torch.optim.SGD`` computes them.

    With momentum μ, weight decay λ, learning rate η_t (dampening 0)::

        g ← g + λ·w                                  (coupled: before momentum)
        b ← μ·b + g                                  (b = g at the first step)
        w ← w − η_t·b              or, Nesterov:  w ← w − η_t·(g + μ·b)

    Two differences from ``keras.optimizers.SGD(weight_decay=λ)``: the decay
    enters the momentum buffer, so at μ = 0.9 it acts about 1/(1 − μ) = 10×
    as strongly (Keras: ``w ← w − η·λ·w`` after the step, "decoupled"); and
    the buffer holds gradients, not learning-rate-scaled steps, so a
    changing η_t scales the whole buffer as in PyTorch (Keras keeps
    ``v ← μ·v − η_t·g``; the two agree for a constant η).

    The momentum slots keep Keras' name (``momentum``), so optimizer
    checkpoints have the same layout; they hold PyTorch's buffer b.

    Gradient multipliers m applied by a training method before
    ``apply_gradients`` (RobMask's η1–η3) scale the loss gradient, not the
    decay: the update equals PyTorch parameter groups with learning rate
    m·η and weight decay λ/m (identical for the papers' m = 1).

    Args:
        learning_rate: η, a float or a ``LearningRateSchedule``.
        momentum: μ in [0, 1].
        nesterov: Nesterov momentum (PyTorch's ``nesterov=True``).
        weight_decay: λ >= 0, coupled (added to the gradient).
        **kwargs: Keras' optimizer arguments (``name``, ``clipnorm``, ...).
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=float(momentum), nesterov=nesterov,
                         weight_decay=None, **kwargs)
        self._init_decay(weight_decay)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = self.decayed_gradient(gradient, variable)
        if self.momentum != 0:
            momentum = ops.cast(self.momentum, variable.dtype)
            buffer = self.momentums[self._get_variable_index(variable)]
            self.assign(buffer, momentum * buffer + gradient)
            gradient = gradient + momentum * buffer if self.nesterov else buffer
        self.assign_sub(variable, learning_rate * gradient)


@keras.saving.register_keras_serializable(package="tfadv")
class CoupledAdam(_CoupledWeightDecay, keras.optimizers.Adam):
    """Adam with L2 weight decay exactly as ``torch.optim.Adam(weight_decay=λ)`` computes it.

    At step t (from 1), learning rate η_t::

        g ← g + λ·w                                  (coupled: before the moments)
        m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
        w ← w − η_t · (m / (1 − β1^t)) / (sqrt(v / (1 − β2^t)) + ε)

    with PyTorch's ε = 1e-8 added to the bias-corrected ``sqrt(v̂)`` (Keras'
    Adam adds its ε to the uncorrected ``sqrt(v)``). Adam divides the decay
    by the same √v̂ as the gradient, so a coupled λ is not AdamW's λ; the
    decoupled form is ``keras.optimizers.AdamW`` (``weight_decay_mode:
    decoupled``). No AMSGrad.

    Args:
        learning_rate: η, a float or a ``LearningRateSchedule``.
        beta_1, beta_2: the moment decay rates (0.9, 0.999).
        epsilon: ε (PyTorch's 1e-8).
        weight_decay: λ >= 0, coupled (added to the gradient).
        **kwargs: Keras' optimizer arguments.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=TORCH_ADAM_EPSILON,
                 weight_decay=0.0, **kwargs):
        if kwargs.pop("amsgrad", False):
            raise ValueError("CoupledAdam has no AMSGrad. Received: amsgrad=True")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=False, weight_decay=None, **kwargs)
        self._init_decay(weight_decay)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = self.decayed_gradient(gradient, variable)
        step = ops.cast(self.iterations + 1, dtype)
        beta_1 = ops.cast(self.beta_1, dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign(m, beta_1 * m + (1 - beta_1) * gradient)
        self.assign(v, beta_2 * v + (1 - beta_2) * ops.square(gradient))
        m_hat = m / (1 - ops.power(beta_1, step))
        v_hat = v / (1 - ops.power(beta_2, step))
        self.assign_sub(variable, learning_rate * m_hat / (ops.sqrt(v_hat) + ops.cast(self.epsilon, dtype)))


def make_optimizer(train, steps_per_epoch):
    """SGD with momentum (the papers' choice) or Adam, with weight decay and the schedule.

    ``train.weight_decay`` λ means what ``train.weight_decay_mode`` says:

    - ``coupled`` (default; the papers' PyTorch ``SGD(..., weight_decay=λ)``
      and ``Adam(..., weight_decay=λ)``): L2, ``g ← g + λ·w`` before the
      momentum / moment estimates, :class:`CoupledSGD`, :class:`CoupledAdam`
      (PyTorch's update rules exactly).
    - ``decoupled`` (Keras' built-in): ``w ← w − η·λ·w`` beside the step,
      ``keras.optimizers.SGD(weight_decay=λ)`` or ``keras.optimizers.AdamW``.
      At momentum 0.9 the same λ decays about 10× less than coupled.

    Every trainable variable is decayed, as ``torch.optim.SGD(model.parameters())``
    does (biases and BN γ, β included).
    """
    lr = learning_rate_schedule(train, steps_per_epoch)
    mode = getattr(train, "weight_decay_mode", "coupled")
    check_choice("weight_decay_mode", mode, WEIGHT_DECAY_MODES)
    decay = float(train.weight_decay or 0.0)
    if train.optimizer == "sgd":
        if mode == "coupled":
            return CoupledSGD(lr, momentum=train.momentum, nesterov=train.nesterov, weight_decay=decay)
        return keras.optimizers.SGD(lr, momentum=train.momentum, nesterov=train.nesterov,
                                    weight_decay=decay or None)
    if train.optimizer == "adam":
        if mode == "coupled":
            return CoupledAdam(lr, weight_decay=decay)
        return keras.optimizers.AdamW(lr, weight_decay=decay) if decay else keras.optimizers.Adam(lr)
    raise ValueError(f"Unknown optimizer {train.optimizer!r}; use sgd or adam")
