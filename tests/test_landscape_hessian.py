"""Hessian-vector products, top eigenvalues and Hutchinson trace against exact Hessians."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv.landscape.hessian import (
    HessianVectorProduct,
    hutchinson_trace,
    sharpness,
    sharpness_table,
    top_eigenvalues,
)


def regression_problem():
    """½(w·x + b − t)²: the Hessian over [w, b] is X̃ᵀX̃/N with X̃ = [X, 1]."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((40, 5)) * [3.0, 2.0, 1.5, 1.0, 0.5]).astype("float32")
    t = rng.standard_normal(40).astype("float32")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    augmented = np.concatenate([x, np.ones((40, 1))], axis=1).astype(np.float64)
    return model, x, t, augmented.T @ augmented / len(x)


def half_squared_error(target, predictions):
    return 0.5 * tf.square(predictions[:, 0] - target)


def softmax_regression_hessian(model, x, y):
    """Exact Hessian of the mean cross-entropy of a Dense softmax layer over
    [kernel (row-major), bias]: (1/N) Σ_n (x̃x̃ᵀ) ⊗ (diag(p) − ppᵀ)."""
    kernel, bias = (v.numpy().astype(np.float64) for v in model.trainable_variables)
    logits = x @ kernel + bias
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    augmented = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    return sum(np.kron(np.outer(a, a), np.diag(p) - np.outer(p, p))
               for a, p in zip(augmented, probabilities)) / len(x)


def test_hessian_vector_product_matches_the_exact_cross_entropy_hessian():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((11, 4)).astype("float32")
    y = rng.integers(0, 3, 11)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    hessian = softmax_regression_hessian(model, x.astype(np.float64), y)
    hvp = HessianVectorProduct(model, x, y, batch_size=4)  # three batches, the last one short
    assert hvp.size == 15
    for _ in range(3):
        v = rng.standard_normal(hvp.size)
        np.testing.assert_allclose(hvp(v), hessian @ v, rtol=1e-4, atol=1e-6)


def test_hessian_vector_product_is_the_same_on_two_replicas(two_cpu_strategy):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((9, 4)).astype("float32")
    y = rng.integers(0, 3, 9)
    with two_cpu_strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        hvp = HessianVectorProduct(model, x, y, batch_size=2)
    hessian = softmax_regression_hessian(model, x.astype(np.float64), y)
    v = rng.standard_normal(hvp.size)
    np.testing.assert_allclose(hvp(v), hessian @ v, rtol=1e-4, atol=1e-6)


def test_top_eigenvalues_of_a_quadratic_loss_match_eigvalsh():
    model, x, t, hessian = regression_problem()
    hvp = HessianVectorProduct(model, x, t, batch_size=16, loss=half_squared_error)
    np.testing.assert_allclose(hvp(np.eye(6)[0]), hessian[:, 0], rtol=1e-5)
    expected = np.linalg.eigvalsh(hessian)[::-1][:3]
    found = top_eigenvalues(hvp, k=3, max_iterations=500, tolerance=1e-7, seed=0)
    np.testing.assert_allclose(found["eigenvalues"], expected, rtol=1e-4)
    assert all(found["converged"])
    vectors = found["eigenvectors"]
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(3), atol=1e-6)
    with pytest.raises(ValueError, match="k must be"):
        top_eigenvalues(hvp, k=0)


def test_hutchinson_trace_is_within_its_standard_error_of_the_exact_trace():
    model, x, t, hessian = regression_problem()
    hvp = HessianVectorProduct(model, x, t, batch_size=40, loss=half_squared_error)
    samples = 200
    estimate = hutchinson_trace(hvp, samples=samples, seed=0)
    # Var(vᵀHv) for Rademacher v is 2(‖H‖²_F − Σ H_ii²).
    exact_error = np.sqrt(2 * (np.sum(hessian**2) - np.sum(np.diag(hessian) ** 2)) / samples)
    assert abs(estimate["trace"] - np.trace(hessian)) < 4 * exact_error
    assert estimate["standard_error"] == pytest.approx(exact_error, rel=0.3)


def test_sharpness_result_is_json_and_a_table():
    model, x, t, hessian = regression_problem()
    result = sharpness(model, x, t, top_k=2, hutchinson_samples=3, loss=half_squared_error,
                       max_iterations=300, tolerance=1e-7)
    json.dumps(result)
    np.testing.assert_allclose(result["top_eigenvalues"], np.linalg.eigvalsh(hessian)[::-1][:2], rtol=1e-4)
    assert result["examples"] == 40 and result["parameters"] == 6
    table = sharpness_table({"regression": result, "other": {"top_eigenvalues": [1.0], "trace": None}})
    lines = table.strip().splitlines()
    assert lines[0] == "| model | λ1 | λ2 | trace (Hutchinson) | examples |"
    assert lines[2].startswith(f"| regression | {result['top_eigenvalues'][0]:.4g} |")
    assert lines[3] == "| other | 1 |  |  |  |"
