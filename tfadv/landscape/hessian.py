"""Sharpness as numbers: top Hessian eigenvalues and the Hessian trace.

Everything is built on one compiled Hessian-vector product over N examples,

    H v = ∇_θ ( ∇_θ L(θ) · v ),

computed by double backpropagation (a ``tf.GradientTape`` inside another)
without forming H. L is the mean loss over the examples in inference mode
and θ the trainable variables.

* Top-k eigenvalues by power iteration with deflation: iterate v ← H'v/‖H'v‖
  with H' = H − Σ_j λ_j u_j u_jᵀ over the eigenpairs already found. Power
  iteration converges to the eigenvalue of largest *magnitude* (for a
  trained network, the sharpest positive curvature).
* Trace by Hutchinson's estimator: tr(H) = E[vᵀ H v] for Rademacher v
  (entries ±1), with the standard error of the mean over samples.

References:
    Yao, Gholami, Keutzer, Mahoney. "PyHessian: Neural Networks Through the
    Lens of the Hessian", 2020 (https://arxiv.org/abs/1912.07145).
    Hutchinson. "A stochastic estimator of the trace of the influence matrix
    for Laplacian smoothing splines", 1990.
"""
import numpy as np
import tensorflow as tf

from tfadv.landscape._replicas import ReplicaExamples
from tfadv.landscape.surface import per_example_loss
from tfadv.models.conditioning import call_model


class HessianVectorProduct:
    """``v -> H v`` for the mean loss of ``model`` over ``x, y``.

    Vectors are flat float64 NumPy arrays over the trainable variables
    (concatenated in ``model.trainable_variables`` order); the product runs
    in float32 in one compiled function, sharded over the replicas of the
    active strategy.

    Args:
        model: a Keras model (plain or conditioned).
        x, y: the examples.
        batch_size: examples per double-backprop pass on one replica.
        p: strength bound for conditioned models.
        loss: see :func:`tfadv.landscape.surface.per_example_loss`.
    """

    def __init__(self, model, x, y, batch_size=250, p=0.0, loss="crossentropy", strategy=None):
        self.model = model
        self.variables = list(model.trainable_variables)
        self.shapes = [tuple(v.shape) for v in self.variables]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.size = int(sum(self.sizes))
        self.examples = ReplicaExamples(x, y, batch_size, strategy)
        self.loss_fn, _ = per_example_loss(loss)
        self.p = float(p)
        self._product = tf.function(self._product_graph, autograph=False)  # see ReplicaExamples.sum_over

    def _batch_product(self, vector, x, y):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                logits = tf.cast(call_model(self.model, x, self.p, training=False), tf.float32)
                loss = tf.reduce_sum(self.loss_fn(y, logits))
            gradients = inner.gradient(loss, self.variables,
                                       unconnected_gradients=tf.UnconnectedGradients.ZERO)
            directional = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(gradients, vector)])
        return outer.gradient(directional, self.variables,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)

    def _product_graph(self, vector, x, y):
        zeros = [tf.zeros(s, tf.float32) for s in self.shapes]
        sums = self.examples.sum_over(lambda xb, yb: self._batch_product(vector, xb, yb), zeros, x, y)
        return [s / self.examples.count for s in sums]

    def __call__(self, vector):
        parts = np.split(np.asarray(vector, np.float32), np.cumsum(self.sizes)[:-1])
        parts = [tf.constant(part.reshape(shape)) for part, shape in zip(parts, self.shapes)]
        product = self._product(parts, self.examples.x, self.examples.y)
        return np.concatenate([t.numpy().ravel() for t in product]).astype(np.float64)


def top_eigenvalues(hvp, k=1, max_iterations=50, tolerance=1e-3, seed=0):
    """The k eigenvalues of largest magnitude by power iteration with deflation.

    Args:
        hvp: a :class:`HessianVectorProduct` (or any ``v -> H v`` with a
            ``size`` attribute).
        k: how many eigenvalues.
        max_iterations: Hessian-vector products per eigenvalue at most.
        tolerance: stop when |λ_t − λ_{t−1}| ≤ tolerance · |λ_{t−1}|.
        seed: seeds the random start vectors.

    Returns:
        dict with ``eigenvalues`` (largest magnitude first), ``iterations``
        and ``converged`` (per eigenvalue) and ``eigenvectors`` (``[k, P]``).
    """
    if int(k) < 1:
        raise ValueError(f"k must be a positive integer. Received: k={k!r}")
    rng = np.random.default_rng(seed)
    values, vectors, iterations, converged = [], [], [], []

    def orthogonalize(v):
        for u in vectors:
            v = v - (u @ v) * u
        norm = np.linalg.norm(v)
        return v / norm if norm > 0 else v

    for _ in range(int(k)):
        v = orthogonalize(rng.standard_normal(hvp.size))
        eigenvalue, done = None, False
        for step in range(1, int(max_iterations) + 1):
            product = hvp(v) - sum(lam * (u @ v) * u for lam, u in zip(values, vectors))
            estimate = float(v @ product)
            v = orthogonalize(product)
            if eigenvalue is not None and abs(estimate - eigenvalue) <= tolerance * abs(eigenvalue):
                eigenvalue, done = estimate, True
                break
            eigenvalue = estimate
        values.append(eigenvalue)
        vectors.append(v)
        iterations.append(step)
        converged.append(done)
    return {"eigenvalues": values, "iterations": iterations, "converged": converged,
            "eigenvectors": np.stack(vectors)}


def hutchinson_trace(hvp, samples=10, seed=0):
    """tr(H) ≈ mean over Rademacher v of vᵀHv.

    Returns:
        dict with ``trace`` (the mean), ``standard_error`` (std / √samples,
        0 for one sample) and ``samples``.
    """
    if int(samples) < 1:
        raise ValueError(f"samples must be a positive integer. Received: samples={samples!r}")
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(int(samples)):
        v = rng.choice([-1.0, 1.0], size=hvp.size)
        estimates.append(float(v @ hvp(v)))
    estimates = np.asarray(estimates)
    error = float(estimates.std(ddof=1) / np.sqrt(len(estimates))) if len(estimates) > 1 else 0.0
    return {"trace": float(estimates.mean()), "standard_error": error, "samples": int(samples)}


def sharpness(model, x, y, top_k=1, hutchinson_samples=10, batch_size=250, p=0.0,
              loss="crossentropy", max_iterations=50, tolerance=1e-3, seed=0, strategy=None):
    """Top-k Hessian eigenvalues and Hutchinson trace of the mean loss on ``x, y``.

    Args:
        top_k: eigenvalues to compute (0 skips them).
        hutchinson_samples: Rademacher samples for the trace (0 skips it).
        Others: see :class:`HessianVectorProduct` and :func:`top_eigenvalues`.

    Returns:
        A JSON-serializable dict: ``top_eigenvalues``, ``eigen_iterations``,
        ``eigen_converged``, ``trace``, ``trace_standard_error`` and the
        settings (``examples``, ``parameters``, ...).
    """
    hvp = HessianVectorProduct(model, x, y, batch_size, p, loss, strategy)
    result = {
        "examples": int(len(x)), "parameters": hvp.size, "p": float(p),
        "loss": per_example_loss(loss)[1], "seed": int(seed), "tolerance": float(tolerance),
        "max_iterations": int(max_iterations),
        "top_eigenvalues": [], "eigen_iterations": [], "eigen_converged": [],
        "trace": None, "trace_standard_error": None, "hutchinson_samples": int(hutchinson_samples),
    }
    if top_k:
        eigen = top_eigenvalues(hvp, top_k, max_iterations, tolerance, seed)
        result.update(top_eigenvalues=eigen["eigenvalues"], eigen_iterations=eigen["iterations"],
                      eigen_converged=eigen["converged"])
    if hutchinson_samples:
        trace = hutchinson_trace(hvp, hutchinson_samples, seed + 1)
        result.update(trace=trace["trace"], trace_standard_error=trace["standard_error"])
    return result


def sharpness_table(results):
    """A markdown table of sharpness results, one row per model.

    Args:
        results: ``{model name: sharpness dict}``.
    """
    k = max((len(r.get("top_eigenvalues") or []) for r in results.values()), default=0)
    header = ["model"] + [f"λ{i + 1}" for i in range(k)] + ["trace (Hutchinson)", "examples"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in results.items():
        eigen = list(r.get("top_eigenvalues") or [])
        cells = [name] + [f"{v:.4g}" for v in eigen] + [""] * (k - len(eigen))
        trace = r.get("trace")
        cells.append("" if trace is None else f"{trace:.4g} ± {r.get('trace_standard_error', 0):.2g}")
        cells.append(str(r.get("examples", "")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
