"""Loss surfaces: f(α, β) = L(θ* + αδ + βη) on a grid, resumable in h5.

The sweep moves the weights **in graph**: one compiled ``tf.function`` takes
(α, β) as tensors, assigns θ* + αδ + βη to the model's variables and runs the
cached examples through the model in inference mode, returning the summed
loss and the number of correct predictions. No Python ``set_weights`` per
point, no retracing, and the examples stay on the devices of the active
``tf.distribute`` strategy (see :mod:`tfadv.landscape._replicas`).

The file's layout and its all-or-nothing writes are in
:mod:`tfadv.landscape.surface_file`.

Reference:
    Li et al., "Visualizing the Loss Landscape of Neural Nets", NeurIPS 2018.
"""
import math

import h5py
import keras
import numpy as np
import tensorflow as tf

from tfadv.fingerprints import fingerprint
from tfadv.landscape._replicas import ReplicaExamples
from tfadv.landscape.directions import landscape_variables
from tfadv.landscape.shards import check_shard, shard_points
from tfadv.landscape.surface_file import (  # noqa: F401  (read_surface: part of this module's API)
    open_surface_file,
    read_surface,
    value_keys,
    write_point,
)
from tfadv.models.conditioning import bind, call_model


def parse_grid(spec, name="grid"):
    """Coordinates from ``"min:max:num"``, e.g. ``"-1:1:51"``.

    Returns:
        ``np.linspace(min, max, num)`` (float64).

    Raises:
        ValueError: naming ``name`` and the string, unless it has exactly
            three fields, finite numbers with min < max and an integer
            num ≥ 2.
    """
    fields = str(spec).split(":")
    problem = None
    if len(fields) != 3:
        problem = "it needs three fields 'min:max:num'"
    else:
        try:
            low, high = float(fields[0]), float(fields[1])
            num = float(fields[2])
        except ValueError:
            problem = "min, max and num must be numbers"
        else:
            if not (math.isfinite(low) and math.isfinite(high)):
                problem = "min and max must be finite"
            elif not low < high:
                problem = "min must be smaller than max"
            elif not (num.is_integer() and num >= 2):
                problem = "num must be an integer of at least 2"
    if problem:
        raise ValueError(f"{name} must look like '-1:1:51' ({problem}). Received: {name}={spec!r}")
    return np.linspace(low, high, int(num))


def per_example_loss(loss):
    """``(y, logits) -> [B]`` losses and a name for the settings.

    Args:
        loss: ``"crossentropy"`` (softmax cross-entropy on integer labels),
            ``"mse"`` (mean over classes of (logits − one_hot(y))², the
            reference tool's option) or a callable ``(y, logits) -> [B]``.
    """
    if callable(loss):
        return loss, getattr(loss, "__name__", type(loss).__name__)
    if loss == "crossentropy":
        def crossentropy(y, logits):
            return tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(y, tf.int64), logits)
        return crossentropy, loss
    if loss == "mse":
        def mse(y, logits):
            target = tf.one_hot(tf.cast(y, tf.int64), tf.shape(logits)[-1], dtype=logits.dtype)
            return tf.reduce_mean(tf.square(logits - target), axis=-1)
        return mse, loss
    raise ValueError(f"loss must be 'crossentropy', 'mse' or a callable. Received: loss={loss!r}")


def _surface_attacks():
    """The attacks a surface may use: the cheap L∞ ones that training uses too (FGSM, PGD)."""
    from tfadv.attacks import ATTACKS

    return tuple(name for name, kind in ATTACKS.items() if kind.is_linf and kind.can_train)


# A surface must be deterministic to resume exactly: PGD starts at x, not at a random point.
_SURFACE_DEFAULTS = {"eps": 8 / 255, "random_start": False}


def resolve_attack(attack):
    """``(model_fn, x, y) -> x_adv`` and a JSON-able description, or ``(None, None)``.

    Args:
        attack: ``None``; ``"fgsm"`` / ``"pgd"``; a mapping such as ``{"name":
            "pgd", "eps": 8/255, "step_size": 2/255, "steps": 10}`` read by
            :meth:`tfadv.attacks.AttackSpec.create` (ε defaults to 8/255 and
            PGD to no random start here); or a callable ``(model_fn, x, y) -> x_adv``.
    """
    if attack is None:
        return None, None
    if callable(attack):
        return attack, {"name": getattr(attack, "__name__", type(attack).__name__)}
    from tfadv.attacks import AttackSpec

    options = {"name": attack} if isinstance(attack, str) else dict(attack)
    if options.get("name") not in _surface_attacks():
        raise ValueError(
            f"attack must be one of {list(_surface_attacks())}, a dict with such a 'name', "
            f"or a callable. Received: attack={attack!r}"
        )
    spec = AttackSpec.create({**_SURFACE_DEFAULTS, **options})

    def run_attack(model_fn, x, y):
        return spec.run(model_fn, x, y)

    return run_attack, spec.settings()


class SurfaceEvaluator:
    """Loss and accuracy at θ* + αδ + βη, with the weights moved in graph.

    Use as a context manager: the model's variables are restored bit-exactly
    to θ* on exit, also when an exception escapes::

        with SurfaceEvaluator(model, directions, x, y) as evaluate:
            loss, acc = evaluate(0.5, -0.25)

    Args:
        model: a Keras model (plain or conditioned) at θ*.
        directions: :class:`~tfadv.landscape.directions.Directions`.
        x, y: the examples (images in [0, 1], integer labels).
        batch_size: examples per forward pass on one replica.
        p: masking strength bound for conditioned models (ignored otherwise).
        loss: see :func:`per_example_loss`.
        attack: see :func:`resolve_attack`; the loss at each point is then
            the loss on adversarial examples crafted against the moved model.
        strategy: the ``tf.distribute`` strategy (default: the active one);
            the model must have been built in its scope.
    """

    def __init__(self, model, directions, x, y, batch_size=500, p=0.0, loss="crossentropy",
                 attack=None, strategy=None):
        directions.check_fits(model)
        self.model = model
        self.directions = directions
        self.variables = landscape_variables(model, directions.settings.get("mode", "weights"))
        self.theta = [np.array(v.numpy()) for v in self.variables]
        self.examples = ReplicaExamples(x, y, batch_size, strategy)
        self.loss_fn, self.loss_name = per_example_loss(loss)
        self.attack_fn, self.attack_spec = resolve_attack(attack)
        self.p = float(p)
        # Eager tensors captured by the tf.function are fed, not baked into the graph.
        self._theta = [tf.constant(w) for w in self.theta]
        self._dx = [tf.constant(d) for d in directions.x]
        self._dy = [tf.constant(d) for d in directions.y] if directions.y is not None else None
        self._zeros = (tf.zeros([], tf.float64), tf.zeros([], tf.float64))
        # No AutoGraph: the graphs are plain code (ReplicaExamples.sum_over writes its
        # while-loop), and converting them was most of a shard's fixed cost.
        self._evaluate = tf.function(self._evaluate_graph, autograph=False)
        self._forward = tf.function(self._forward_graph, autograph=False)

    def _batch_sums(self, x, y):
        if self.attack_fn is not None:
            x = tf.stop_gradient(self.attack_fn(bind(self.model, self.p), x, y))
        logits = tf.cast(call_model(self.model, x, self.p, training=False), tf.float32)
        losses = tf.cast(self.loss_fn(y, logits), tf.float64)
        correct = tf.equal(tf.argmax(logits, axis=-1), tf.cast(y, tf.int64))
        return tf.reduce_sum(losses), tf.reduce_sum(tf.cast(correct, tf.float64))

    def _forward_graph(self, x, y):
        return self.examples.sum_over(self._batch_sums, self._zeros, x, y)

    def _evaluate_graph(self, alpha, beta, x, y):
        for i, variable in enumerate(self.variables):
            value = self._theta[i] + alpha * self._dx[i]
            if self._dy is not None:
                value += beta * self._dy[i]
            variable.assign(value)
        return self._forward_graph(x, y)

    def __call__(self, alpha, beta=0.0):
        """Mean loss and accuracy at θ* + αδ + βη (the weights stay moved)."""
        sums = self._evaluate(tf.constant(alpha, tf.float32), tf.constant(beta, tf.float32),
                              self.examples.x, self.examples.y)
        return self._means(sums)

    def forward(self):
        """Mean loss and accuracy at the current weights, without moving them.

        The same compiled forward pass a grid point runs, minus the weight
        update: the benchmark's reference cost.
        """
        return self._means(self._forward(self.examples.x, self.examples.y))

    def _means(self, sums):
        loss_sum, correct = (float(t.numpy()) for t in sums)
        return loss_sum / self.examples.count, correct / self.examples.count

    def restore(self):
        """Put θ* back into the model's variables, bit for bit."""
        for variable, value in zip(self.variables, self.theta):
            variable.assign(value)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.restore()
        return False


def surface_settings(model, directions, x, y, p=0.0, loss="crossentropy", attack=None,
                     split="train", batch_size=500, strategy=None):
    """The settings stored with (and checked against) a surface file."""
    strategy = strategy or tf.distribute.get_strategy()
    _, attack_spec = resolve_attack(attack)
    return {
        "directions": directions.settings,
        "directions_sha256": directions.fingerprint(),
        "weights_sha256": fingerprint(v.numpy() for v in model.weights),
        "data_sha256": fingerprint([np.asarray(x), np.asarray(y)]),
        "examples": int(len(x)),
        "loss": per_example_loss(loss)[1],
        "p": float(p),
        "attack": attack_spec,
        "split": split,
        "batch_size": int(batch_size),
        "replicas": int(strategy.num_replicas_in_sync),
        "model": model.name,
    }


def sweep_surface(model, directions, x, y, path, xcoordinates, ycoordinates=None, batch_size=500,
                  p=0.0, loss="crossentropy", attack=None, split="train", strategy=None,
                  progress=True, max_points=None, callback=None, shard=None):
    """Evaluate the loss surface on a grid, resuming ``path`` if it exists.

    Points still NaN in the file are computed in row-major order and written
    one by one, each write all-or-nothing (a copy renamed over the file), so a
    killed sweep loses at most one point and a re-run finishes with exactly
    the array an uninterrupted sweep gives. A damaged file (truncated by a
    full disk, say) is recomputed from scratch with a warning. The
    model's weights are restored bit-exactly afterwards, also on error.

    Args:
        model: Keras model at θ* (built in ``strategy``'s scope).
        directions: :class:`~tfadv.landscape.directions.Directions`; 2-D
            directions need ``ycoordinates``.
        x, y: the examples, all of which are used.
        path: the h5 surface file.
        xcoordinates, ycoordinates: α and β values (see :func:`parse_grid`).
        batch_size, p, loss, attack, strategy: see :class:`SurfaceEvaluator`.
        split: prefix of the datasets (``"train"`` → ``train_loss``).
        progress: show a progress bar (points done, time left).
        max_points: stop after computing this many points (for tests and
            for splitting a sweep over several jobs).
        callback: called as ``callback(index, alpha, beta, loss, acc)``
            after each point, with the flat index into the surface.
        shard: ``(I, N)`` (or ``"I/N"``): compute only the points whose flat
            index ``i`` has ``i % N == I``; the file keeps NaN elsewhere and
            names the shard in its settings (see :mod:`tfadv.landscape.shards`).

    Returns:
        dict with ``path``, ``loss``, ``acc`` (arrays, NaN where not done),
        ``computed`` (points computed by this call) and ``complete`` (all
        points of the shard, or of the grid, are done).
    """
    shard = check_shard(shard)
    xcoordinates = np.asarray(xcoordinates, np.float64)
    if (ycoordinates is None) != (directions.dim == 1):
        raise ValueError(
            "ycoordinates must be given exactly when the directions are 2-D. Received: "
            f"directions.dim={directions.dim}, ycoordinates={'None' if ycoordinates is None else 'given'}"
        )
    ycoordinates = None if ycoordinates is None else np.asarray(ycoordinates, np.float64)
    strategy = strategy or tf.distribute.get_strategy()
    settings = surface_settings(model, directions, x, y, p, loss, attack, split, batch_size, strategy)
    if shard is not None:
        settings["shard"] = list(shard)
    open_surface_file(path, settings, xcoordinates, ycoordinates)
    loss_key, acc_key = value_keys(split)
    with h5py.File(path, "r") as f:
        mine = np.arange(f[acc_key].size) if shard is None else shard_points(f[acc_key].shape, *shard)
        todo = mine[np.isnan(f[acc_key][()].ravel()[mine])]
    if max_points is not None:
        todo = todo[: int(max_points)]

    computed = 0
    if len(todo):
        bar = keras.utils.Progbar(len(todo), verbose=1 if progress else 0, unit_name="point",
                                  stateful_metrics=["loss", "acc"])
        shape = (len(xcoordinates),) if ycoordinates is None else (len(ycoordinates), len(xcoordinates))
        with SurfaceEvaluator(model, directions, x, y, batch_size, p, loss, attack, strategy) as evaluate:
            for index in todo:
                position = np.unravel_index(index, shape)
                alpha = xcoordinates[position[-1]]
                beta = ycoordinates[position[0]] if ycoordinates is not None else 0.0
                point_loss, point_acc = evaluate(alpha, beta)
                write_point(path, position, {loss_key: point_loss, acc_key: point_acc})
                computed += 1
                bar.update(computed, [("loss", point_loss), ("acc", point_acc)])
                if callback is not None:
                    callback(int(index), float(alpha), float(beta), point_loss, point_acc)
    surface = read_surface(path, split)
    return {"path": path, "loss": surface["loss"], "acc": surface["acc"], "computed": computed,
            "complete": not np.isnan(surface["acc"].ravel()[mine]).any()}
