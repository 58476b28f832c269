"""Shared machinery of the attacks: model calls, input gradients,
and the per-model cache of compiled attack graphs.

An attack is written once as a *graph body*: a plain Python function
``body(model_call, *tensors, **static)`` of float32 tensors that uses only
TensorFlow ops, its loops written as ``tf.while_loop`` (so the whole
multi-step attack is one graph, and it does not depend on AutoGraph being
on in a caller's ``tf.function``). :func:`run_compiled` then runs it

- eagerly called: through a ``tf.function`` cached per model and per
  static settings, compiled with XLA where XLA pays (see :func:`use_xla`). The cache holds the model
  weakly, so a model that the caller drops is garbage collected with its
  compiled attacks. Tensor arguments (ε, step sizes, step counts, seeds and
  the condition of a conditioned model) are traced as inputs, so changing
  their values never retraces; a new input shape or a new static setting
  traces once more.
- inside another ``tf.function`` (a ``train_step``): inline, as ordinary
  graph code of the caller, which compiles it together with the rest.

:data:`TRACE_COUNTS` counts how many times each attack's Python body was
traced (by :func:`run_compiled`'s ``tf.function``), so tests can check that
repeated calls reuse one graph.
"""

import collections
import functools
import warnings
import weakref

import keras
import numpy as np
import tensorflow as tf

from tfadv import checks
from tfadv.models.conditioning import BoundModel, call_model, is_conditioned

TRACE_COUNTS = collections.Counter()
"""Attack name → number of times its compiled graph was traced."""

# owner (a Keras model, or any callable) -> {static key -> tf.function}.
_COMPILED = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------
# Tensors handed to graph bodies (the checks before them are tfadv.checks').

def as_float(value):
    return tf.cast(tf.convert_to_tensor(value), tf.float32)


def restore_dtype(x_adv, x):
    """``x_adv`` in the dtype of the caller's ``x`` (float32 for Python lists)."""
    dtype = getattr(x, "dtype", None)
    return x_adv if dtype is None else tf.cast(x_adv, tf.as_dtype(dtype))


def per_example(value):
    """A scalar unchanged, a vector ``[B]`` reshaped to ``[B, 1, 1, 1]``: broadcastable over images."""
    return value if value.shape.rank == 0 else tf.reshape(value, [-1, 1, 1, 1])


def seed_tensor(seed):
    """The ``[2]`` int64 seed of the stateless random ops.

    ``None`` draws one from TensorFlow's global generator (reproducible under
    ``keras.utils.set_random_seed``, different on every call); an int fixes it.
    """
    if seed is None:
        return tf.random.uniform([2], 0, np.iinfo(np.int32).max, dtype=tf.int64)
    if tf.is_tensor(seed):  # a counter from a compiled training step: fresh yet reproducible starts
        seed = tf.cast(seed, tf.int64)
        return seed if seed.shape.rank == 1 else tf.stack([seed, tf.constant(0, tf.int64)])
    checks.check_integer("seed", seed, minimum=0)
    return tf.constant([seed, 0], tf.int64)


# --------------------------------------------------------------------------
# Models.


def resolve_model_fn(model_fn):
    """Split ``model_fn`` into what the cache is keyed on and a condition tensor.

    Returns ``(owner, condition)``: for a :class:`~tfadv.models.conditioning.BoundModel`
    its model and its strength p as a float32 tensor (``None`` for a model
    without one), so one compiled graph serves every p; otherwise ``model_fn``
    itself and ``None``.
    """
    if isinstance(model_fn, BoundModel):
        owner, condition = model_fn.model, model_fn.condition
        return owner, None if condition is None else tf.cast(tf.convert_to_tensor(condition), tf.float32)
    if not callable(model_fn):
        raise ValueError(f"model_fn must be a callable images -> logits. Received: model_fn={model_fn!r}")
    if isinstance(model_fn, keras.Model) and is_conditioned(model_fn):
        raise ValueError(
            "model_fn is a conditioned model (inputs 'images' and 'condition'); bind a "
            "strength first with tfadv.models.bind(model, p) (formerly model_fn_for). "
            f"Received: model_fn={model_fn.name!r}"
        )
    return model_fn, None


def model_caller(owner, condition, training):
    """``images (float32) -> logits`` of ``owner`` at ``condition`` (:func:`call_model`).

    Images are cast to a Keras model's compute dtype only here, at the call,
    so all perturbation arithmetic outside stays float32 under mixed
    precision. ``training`` reaches Keras models only.
    """
    if isinstance(owner, keras.Layer):
        compute_dtype = owner.compute_dtype or tf.float32
        return lambda images: call_model(owner, tf.cast(images, compute_dtype), condition, training)
    return lambda images: call_model(owner, images, condition)


def loss_and_input_gradient(model_call, images, loss_fn):
    """Per-example loss and its gradient with respect to the images, both float32.

    ``loss_fn(logits) -> [B]`` sees float32 logits. The returned gradient is
    ``∂ loss_b / ∂ images_b`` for every example b (the gradient of the sum).

    Under mixed precision the backward pass through the model runs in
    float16, whose smallest subnormal is 6e-8: the gradient of a confident
    example's loss (softmax − one-hot ≈ 1e-7) times small weights rounds to
    zero and the attack stalls. So the gradient at the logits, computed in
    float32, is divided per example by its largest magnitude before entering
    the model (values of order 1 survive float16), and the input gradient is
    multiplied back in float32. A positive per-example factor is exact in real
    arithmetic, so the result is the true float32 gradient wherever float16
    can represent the intermediate values, and the same path serves float32
    models at the cost of one [B, K] reduction.
    """
    with tf.GradientTape() as model_tape:
        model_tape.watch(images)
        logits = model_call(images)
    logits32 = tf.cast(logits, tf.float32)
    with tf.GradientTape() as loss_tape:
        loss_tape.watch(logits32)
        loss = loss_fn(logits32)
    logit_grad = loss_tape.gradient(loss, logits32)
    scale = tf.reduce_max(tf.abs(logit_grad), axis=-1, keepdims=True)
    scale = tf.where(scale > 0, scale, tf.ones_like(scale))
    unit_grad = tf.cast(logit_grad / scale, logits.dtype)
    image_grad = model_tape.gradient(logits, images, output_gradients=unit_grad)
    return loss, tf.cast(image_grad, tf.float32) * tf.reshape(scale, [-1, 1, 1, 1])


def model_loss(model_call, images, loss_fn):
    """Per-example float32 loss, forward only."""
    return loss_fn(tf.cast(model_call(images), tf.float32))


# --------------------------------------------------------------------------
# Compilation.


@functools.cache
def _has_accelerator():
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def use_xla(jit_compile=None):
    """Resolve an attack's ``jit_compile`` argument: ``True``/``False`` as given, ``None`` → automatic.

    Automatic means XLA on a GPU or TPU and plain graph mode on CPU. On CPU
    (TF 2.21, CIFAR ResNet-20, batch 128, 2 cores, ``tfadv.bench.attacks``)
    XLA made one input-gradient pass 1.6× slower than TensorFlow's oneDNN
    kernels (512 ms vs 327 ms) and a PGD step inside the compiled
    ``tf.while_loop`` 17× slower (5.2 s vs 0.31 s), so XLA is not the
    default there; the attack is still one graph, loop included.
    """
    return _has_accelerator() if jit_compile is None else bool(jit_compile)



def run_compiled(name, body, model_fn, tensors, static, training=False, jit_compile=None):
    """Run ``body(model_call, *tensors, **static)`` as a cached compiled graph.

    Args:
        name: the attack's name, the key of :data:`TRACE_COUNTS`.
        body: the graph body; must be a module-level function (it is part of
            the cache key).
        model_fn: a Keras model, a ``BoundModel`` (``tfadv.models.bind``), or any
            callable images -> logits. Reuse the same object to reuse the
            compiled graph: a fresh lambda per call compiles per call.
        tensors: tuple of tensors, the images first. Their values may change
            between calls without retracing.
        static: dict of hashable Python settings (e.g. ``targeted``); each new
            combination is a new graph.
        training: the mode the model runs in while the attack is crafted.
        jit_compile: compile with XLA: ``True``, ``False`` or ``None``
            (automatic, :func:`use_xla`). If XLA rejects the model, the
            attack warns once and falls back to a plain ``tf.function``.
    """
    owner, condition = resolve_model_fn(model_fn)
    if tf.inside_function():
        return body(model_caller(owner, condition, training), *tensors, **static)
    key = (name, body, tuple(sorted(static.items())), bool(training), condition is not None)
    jit_compile = use_xla(jit_compile)
    function = _compiled_function(owner, key, jit_compile)
    try:
        return function(tensors, condition)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
        if not jit_compile:
            raise
        # Some ops have no XLA kernel; compile this model without XLA from now on.
        fallback = _compiled_function(owner, key, jit_compile=False)
        result = fallback(tensors, condition)
        warnings.warn(
            f"{name}: XLA could not compile the attack for this model, running without "
            f"jit_compile ({error.message.splitlines()[0]})"
        )
        _store(owner, key + (True,), fallback)
        return result


def _store(owner, key, function):
    try:
        _COMPILED.setdefault(owner, {})[key] = function
    except TypeError:  # not weakly referenceable: compile per call
        pass


def _compiled_function(owner, key, jit_compile):
    try:
        cached = _COMPILED.get(owner, {}).get(key + (jit_compile,))
    except TypeError:
        cached = None
    if cached is not None:
        return cached
    name, body, static, training, _ = key
    static = dict(static)
    # The graph must not hold the owner strongly, or the weak cache entry
    # would keep its own key alive; it holds only the model's variables.
    try:
        owner_ref = weakref.ref(owner)
    except TypeError:
        owner_ref = lambda: owner  # noqa: E731

    def traced(tensors, condition):
        TRACE_COUNTS[name] += 1
        return body(model_caller(owner_ref(), condition, training), *tensors, **static)

    traced.__name__ = f"{name}_graph"
    function = tf.function(traced, jit_compile=jit_compile, autograph=False)
    _store(owner, key + (jit_compile,), function)
    return function


def __getattr__(name):  # former names: tfadv._deprecated, with a DeprecationWarning
    from tfadv import _deprecated

    return _deprecated.former_name(__name__, name)
