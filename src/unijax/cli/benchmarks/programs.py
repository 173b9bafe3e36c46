"""The benchmarked programs, each written once against the Array API standard.

Every function takes its namespace from its arguments (``array_namespace``), so the same
source runs on NumPy, Autograd, JAX, array-api-strict and under every unijax transform.
``jax.numpy`` is itself an Array API namespace, so these functions are also the *native*
JAX programs (``jax.grad(mlp_loss)``): the JAX ratios measure unijax's dispatch and
nothing else.

Autograd users and plain-NumPy users write against a NumPy-like module, not the Array
API, so for them each program has a *twin* (``*_native``) taking that module as its
first argument: ``numpy`` for the plain forward pass, ``autograd.numpy`` for
``autograd.grad``. The twins compute exactly the same mathematics, and the harness checks
that every variant of a workload returns the same numbers before timing it.

A note on ``array_namespace``: the namespace is taken from the *differentiated* argument
(``params``), not from ``array_namespace(x, params)``. Under ``autograd.grad`` the data
``x`` stays a plain NumPy array while ``params`` are ``ArrayBox`` objects, and
``array_api_compat.array_namespace`` refuses that mix.
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace

from unijax import lax
from unijax.lax import checkpoint

__all__ = [
    "LOOP_STEPS",
    "elementwise",
    "elementwise_native",
    "example_loss",
    "example_loss_native",
    "gp_nll",
    "gp_nll_native",
    "log_softmax",
    "loop",
    "loop_native",
    "mlp_logits",
    "mlp_loss",
    "mlp_loss_native",
    "tiny",
    "tiny_native",
]

#: Steps of the per-op-overhead loop.
LOOP_STEPS = 50

# --- MLP softmax cross-entropy ------------------------------------------------------------


def log_softmax(xp: Any, z: Any) -> Any:
    """Numerically stable ``log(softmax(z))`` over the last axis."""
    z = z - xp.max(z, axis=-1, keepdims=True)
    return z - xp.log(xp.sum(xp.exp(z), axis=-1, keepdims=True))


def mlp_logits(params: dict[str, Any], x: Any) -> Any:
    """A one-hidden-layer tanh MLP; ``x`` is one example ``(D,)`` or a batch ``(B, D)``."""
    xp = array_namespace(params["w1"])
    h = xp.tanh(x @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


def mlp_loss(params: dict[str, Any], x: Any, onehot: Any) -> Any:
    """Mean softmax cross-entropy over a batch ``x`` ``(B, D)``, ``onehot`` ``(B, C)``."""
    xp = array_namespace(params["w1"])
    return -xp.sum(onehot * log_softmax(xp, mlp_logits(params, x))) / x.shape[0]


def example_loss(params: dict[str, Any], x: Any, onehot: Any) -> Any:
    """Softmax cross-entropy of one example ``x`` ``(D,)`` (for per-example gradients)."""
    xp = array_namespace(params["w1"])
    return -xp.sum(onehot * log_softmax(xp, mlp_logits(params, x)))


def mlp_loss_native(np: Any, params: dict[str, Any], x: Any, onehot: Any) -> Any:
    """:func:`mlp_loss` for a NumPy-like module ``np`` (``numpy`` or ``autograd.numpy``)."""
    z = np.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]
    z = z - np.max(z, axis=-1, keepdims=True)
    log_probs = z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
    return -np.sum(onehot * log_probs) / x.shape[0]


def example_loss_native(np: Any, params: dict[str, Any], x: Any, onehot: Any) -> Any:
    """:func:`example_loss` for a NumPy-like module."""
    z = np.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]
    z = z - np.max(z, axis=-1, keepdims=True)
    return -np.sum(onehot * (z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))))


# --- per-op overhead: a loop of small elementwise steps ------------------------------------


def loop(x: Any) -> Any:
    """``LOOP_STEPS`` steps of ``sin(x)*0.9 + cos(x)*0.1``, then the sum."""
    xp = array_namespace(x)
    for _ in range(LOOP_STEPS):
        x = xp.sin(x) * 0.9 + xp.cos(x) * 0.1
    return xp.sum(x)


def loop_native(np: Any, x: Any) -> Any:
    """:func:`loop` for a NumPy-like module."""
    for _ in range(LOOP_STEPS):
        x = np.sin(x) * 0.9 + np.cos(x) * 0.1
    return np.sum(x)


# --- Gaussian-process negative log-likelihood --------------------------------------------


def gp_nll(params: dict[str, Any], x: Any, y: Any) -> Any:
    """Negative log marginal likelihood of a GP with an RBF kernel plus noise.

    ``params`` holds 0-d ``log_lengthscale``, ``log_variance`` and ``log_noise`` (logs keep
    them positive during optimisation); ``x`` is ``(N, d)``, ``y`` is ``(N,)``. The
    log-determinant comes from the Cholesky factor; the quadratic term from a solve
    (the standard has no triangular solve).
    """
    xp = array_namespace(params["log_lengthscale"])
    lengthscale = xp.exp(params["log_lengthscale"])
    variance = xp.exp(params["log_variance"])
    noise = xp.exp(params["log_noise"])
    n = x.shape[0]
    sqdist = xp.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    k = variance * xp.exp(-0.5 * sqdist / lengthscale**2) + noise * xp.eye(n, dtype=x.dtype)
    chol = xp.linalg.cholesky(k)
    alpha = xp.linalg.solve(k, y[:, None])[:, 0]
    log_det_half = xp.sum(xp.log(xp.linalg.diagonal(chol)))
    return 0.5 * xp.sum(y * alpha) + log_det_half + 0.5 * n * math.log(2 * math.pi)


def gp_nll_native(np: Any, params: dict[str, Any], x: Any, y: Any) -> Any:
    """:func:`gp_nll` for a NumPy-like module."""
    lengthscale = np.exp(params["log_lengthscale"])
    variance = np.exp(params["log_variance"])
    noise = np.exp(params["log_noise"])
    n = x.shape[0]
    sqdist = np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    k = variance * np.exp(-0.5 * sqdist / lengthscale**2) + noise * np.eye(n)
    chol = np.linalg.cholesky(k)
    alpha = np.linalg.solve(k, y[:, None])[:, 0]
    # axis1=-1, axis2=-2: the only axes autograd differentiates diagonal over (same values).
    log_det_half = np.sum(np.log(np.diagonal(chol, 0, -1, -2)))
    return 0.5 * np.sum(y * alpha) + log_det_half + 0.5 * n * math.log(2 * math.pi)


# --- one large elementwise expression -----------------------------------------------------


def elementwise(x: Any) -> Any:
    """``sum(exp(-x*x)*sin(x) + 0.5*x)``: memory bandwidth, not dispatch, dominates."""
    xp = array_namespace(x)
    return xp.sum(xp.exp(-x * x) * xp.sin(x) + 0.5 * x)


def elementwise_native(np: Any, x: Any) -> Any:
    """:func:`elementwise` for a NumPy-like module."""
    return np.sum(np.exp(-x * x) * np.sin(x) + 0.5 * x)


# --- per-call overhead on a tiny input -----------------------------------------------------


def tiny(x: Any, y: Any) -> Any:
    """``sum(sin(x)*y)`` on a few elements: the transform's own cost per call dominates."""
    xp = array_namespace(x)
    return xp.sum(xp.sin(x) * y)


def tiny_native(np: Any, x: Any, y: Any) -> Any:
    """:func:`tiny` for a NumPy-like module."""
    return np.sum(np.sin(x) * y)


# --- a recurrence under unijax.lax.scan ------------------------------------------------------


def rnn_scan(params: dict[str, Any], h0: Any, xs: Any) -> Any:
    """``h = tanh(w @ h + x)`` over the rows of ``xs`` with ``unijax.lax.scan``; ``sum(h*h)``."""
    xp = array_namespace(h0)
    w = params["w"]

    def step(h: Any, x: Any) -> Any:
        return xp.tanh(w @ h + x), None

    h, _ = lax.scan(step, h0, xs)
    return xp.sum(h * h)


def rnn_loop_native(np: Any, params: dict[str, Any], h0: Any, xs: Any) -> Any:
    """:func:`rnn_scan` as a Python loop for a NumPy-like module."""
    h = h0
    for t in range(xs.shape[0]):
        h = np.tanh(np.dot(params["w"], h) + xs[t])
    return np.sum(h * h)


def chain(x: Any, segments: int, steps: int, checkpointed: bool) -> Any:
    """``segments`` x ``steps`` elementwise steps; with ``checkpointed``, each segment is a
    ``unijax.checkpoint`` call, so reverse mode keeps one segment's intermediates at a time."""
    def segment(h: Any) -> Any:
        xp = array_namespace(h)
        for _ in range(steps):
            h = xp.tanh(h * 1.01 + 0.1)
        return h

    seg = checkpoint(segment) if checkpointed else segment
    for _ in range(segments):
        x = seg(x)
    return array_namespace(x).sum(x)
