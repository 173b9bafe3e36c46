"""Models written once against the Array API: each runs and differentiates on any backend.

The namespace always comes from the *parameters* (``array_namespace(params["w"])``): the
parameters are what a transform traces, and taking the namespace from them alone keeps the
code valid when the data are plain arrays of the same library (under ``autograd.grad`` the
data stay NumPy arrays while the parameters are Autograd boxes, and
``array_namespace(x, params)`` would refuse the mix).
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace

import unijax

__all__ = [
    "clipped_mean_grad",
    "gp_nll",
    "gp_predict",
    "log_softmax",
    "logistic_loss",
    "mlp_example_loss",
    "mlp_logits",
    "mlp_loss",
    "per_example_grads",
    "softplus",
]

# --- logistic regression --------------------------------------------------------------------


def softplus(z: Any) -> Any:
    """``log(1 + exp(z))`` without overflow for large ``|z|``."""
    xp = array_namespace(z)
    return xp.log1p(xp.exp(-xp.abs(z))) + (z + xp.abs(z)) / 2


def logistic_loss(params: dict[str, Any], x: Any, y: Any, l2: float = 1e-3) -> Any:
    """Mean binary cross-entropy of a linear classifier plus an L2 penalty.

    Args:
        params: ``{"w": (d,), "b": ()}``.
        x: Features ``(n, d)``.
        y: Labels ``(n,)``, 0.0 or 1.0.
        l2: Weight of the penalty on ``w``.

    Example:
        >>> import numpy as np
        >>> params = {"w": np.zeros(2), "b": np.asarray(0.0)}
        >>> round(float(logistic_loss(params, np.ones((4, 2)), np.ones(4))), 6)  # log 2
        0.693147
    """
    xp = array_namespace(params["w"])
    z = x @ params["w"] + params["b"]
    return xp.mean(softplus(z) - y * z) + l2 * xp.sum(params["w"] ** 2)


# --- an MLP and per-example gradient clipping ----------------------------------------------


def log_softmax(z: Any) -> Any:
    """``log(softmax(z))`` over the last axis, stable for large logits."""
    xp = array_namespace(z)
    z = z - xp.max(z, axis=-1, keepdims=True)
    return z - xp.log(xp.sum(xp.exp(z), axis=-1, keepdims=True))


def mlp_logits(params: dict[str, Any], x: Any) -> Any:
    """A one-hidden-layer tanh MLP; ``x`` is one example ``(d,)`` or a batch ``(n, d)``."""
    xp = array_namespace(params["w1"])
    return xp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def mlp_example_loss(params: dict[str, Any], x: Any, onehot: Any) -> Any:
    """Cross-entropy of one example: ``x`` ``(d,)``, ``onehot`` ``(classes,)``."""
    xp = array_namespace(params["w1"])
    return -xp.sum(onehot * log_softmax(mlp_logits(params, x)))


def mlp_loss(params: dict[str, Any], x: Any, onehot: Any) -> Any:
    """Mean cross-entropy over a batch ``x`` ``(n, d)``, ``onehot`` ``(n, classes)``."""
    xp = array_namespace(params["w1"])
    return -xp.sum(onehot * log_softmax(mlp_logits(params, x))) / x.shape[0]


#: Per-example gradients: the parameters are shared (``None``), examples mapped (``0``).
per_example_grads = unijax.vmap(unijax.grad(mlp_example_loss), in_axes=(None, 0, 0))


def clipped_mean_grad(params: dict[str, Any], x: Any, onehot: Any, max_norm: float) -> Any:
    """The mean over examples of each example's gradient, clipped to norm ``max_norm``.

    This is the gradient of differentially private SGD (before its noise): one example
    cannot move the parameters by more than ``max_norm / n``. It needs per-example
    gradients, which ``vmap(grad(...))`` computes in one vectorised pass.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> params = {"w1": rng.standard_normal((3, 4)), "b1": np.zeros(4),
        ...           "w2": rng.standard_normal((4, 2)), "b2": np.zeros(2)}
        >>> g = clipped_mean_grad(params, rng.standard_normal((5, 3)), np.eye(2)[[0, 1, 0, 1, 1]],
        ...                       max_norm=0.1)
        >>> bool(sum(float(np.sum(v ** 2)) for v in g.values()) <= 0.1 ** 2 + 1e-12)
        True
    """
    grads = per_example_grads(params, x, onehot)
    leaves = unijax.tree.tree_leaves(grads)
    xp = array_namespace(*leaves)
    n = x.shape[0]
    squares = [xp.sum(xp.reshape(g * g, (n, -1)), axis=1) for g in leaves]
    norm = xp.sqrt(sum(squares[1:], squares[0]))
    # max_norm / max(norm, max_norm): 1 for small gradients, and never a division by zero.
    scale = max_norm / xp.maximum(norm, xp.full_like(norm, max_norm))

    def clip_and_average(g: Any) -> Any:
        return xp.mean(g * xp.reshape(scale, (n,) + (1,) * (g.ndim - 1)), axis=0)

    return unijax.tree.tree_map(clip_and_average, grads)


# --- Gaussian-process regression -----------------------------------------------------------


def _rbf(xp: Any, params: dict[str, Any], a: Any, b: Any) -> Any:
    sqdist = xp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
    return xp.exp(params["log_variance"]) * xp.exp(
        -0.5 * sqdist / xp.exp(2 * params["log_lengthscale"]))


def gp_nll(params: dict[str, Any], x: Any, y: Any) -> Any:
    """Negative log marginal likelihood of GP regression with an RBF kernel.

    Args:
        params: 0-d ``log_lengthscale``, ``log_variance``, ``log_noise`` (logs keep the
            hyperparameters positive while an optimiser moves them freely).
        x: Inputs ``(n, d)``.
        y: Targets ``(n,)``.

    The log-determinant comes from the Cholesky factor, the data fit from a solve.
    """
    xp = array_namespace(params["log_lengthscale"])
    n = x.shape[0]
    k = _rbf(xp, params, x, x) + xp.exp(params["log_noise"]) * xp.eye(n, dtype=x.dtype)
    chol = xp.linalg.cholesky(k)
    alpha = xp.linalg.solve(k, y[:, None])[:, 0]
    half_log_det = xp.sum(xp.log(xp.linalg.diagonal(chol)))
    return 0.5 * xp.sum(y * alpha) + half_log_det + 0.5 * n * math.log(2 * math.pi)


def gp_predict(params: dict[str, Any], x: Any, y: Any, x_new: Any) -> Any:
    """Posterior mean of the GP at ``x_new`` ``(m, d)``, given data ``(x, y)``."""
    xp = array_namespace(params["log_lengthscale"])
    k = _rbf(xp, params, x, x) + xp.exp(params["log_noise"]) * xp.eye(x.shape[0],
                                                                      dtype=x.dtype)
    alpha = xp.linalg.solve(k, y[:, None])
    return (_rbf(xp, params, x_new, x) @ alpha)[:, 0]
