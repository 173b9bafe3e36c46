"""A variational autoencoder with dropout, trained with unijax.random on any backend.

    python examples/vae_dropout.py                      # configured backend (numpy)
    python examples/vae_dropout.py --backend torch
    UNIJAX_BACKEND=jax JAX_ENABLE_X64=1 python examples/vae_dropout.py

The model is written once against the Array API. Its randomness (the initial weights, a
dropout mask per step and the reparameterised noise ``z = mu + sigma * eps``) comes from
``unijax.random`` keys: a new key per step by ``fold_in``, split once per use. The keys
are JAX's Threefry keys on every backend, so NumPy, PyTorch and JAX draw the same numbers
from the same seed and print the same losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import announce, parse, show
from array_api_compat import array_namespace

import unijax
from unijax import random

DATA, HIDDEN, LATENT = 6, 16, 2
KEEP = 0.8  # dropout keeps each hidden unit with this probability


def init(key: Any) -> dict[str, Any]:
    """Weights drawn with ``normal`` scaled by 1/sqrt(fan-in); zero biases."""
    sizes = {"enc": (DATA, HIDDEN), "mu": (HIDDEN, LATENT), "logvar": (HIDDEN, LATENT),
             "dec1": (LATENT, HIDDEN), "dec2": (HIDDEN, DATA)}
    keys = random.split(key, len(sizes))
    params = {}
    for i, (name, (fan_in, fan_out)) in enumerate(sizes.items()):
        w = random.normal(keys[i, ...], (fan_in, fan_out)) / float(np.sqrt(fan_in))
        xp = array_namespace(w)
        params[name] = {"w": w, "b": xp.zeros((fan_out,), dtype=w.dtype)}
    return params


def dropout(key: Any, h: Any, keep: float) -> Any:
    """Inverted dropout: zero each unit with probability ``1 - keep``, rescale the rest."""
    xp = array_namespace(h)
    mask = random.bernoulli(key, keep, tuple(h.shape))
    return xp.where(mask, h / keep, xp.zeros_like(h))


def step_keys(key: Any) -> tuple[Any, Any]:
    """A step's key split once per use: ``(dropout key, noise key)``."""
    keys = random.split(key)
    return keys[0, ...], keys[1, ...]  # ``...``: the standard asks for every axis indexed


def kept_count(key: Any, n: int) -> int:
    """How many of ``n * HIDDEN`` hidden activations the dropout mask of step ``key`` keeps."""
    mask = random.bernoulli(step_keys(key)[0], KEEP, (n, HIDDEN))
    return int(array_namespace(mask).count_nonzero(mask))


def loss(params: dict[str, Any], x: Any, key: Any) -> Any:
    """The negative evidence lower bound (Gaussian decoder with unit variance), averaged."""
    xp = array_namespace(x)
    k_drop, k_eps = step_keys(key)

    def dense(name: str, h: Any) -> Any:
        return h @ params[name]["w"] + params[name]["b"]

    h = dropout(k_drop, xp.tanh(dense("enc", x)), KEEP)
    mu, logvar = dense("mu", h), dense("logvar", h)
    eps = random.normal(k_eps, tuple(mu.shape))
    z = mu + xp.exp(0.5 * logvar) * eps  # the reparameterisation trick
    x_hat = dense("dec2", xp.tanh(dense("dec1", z)))
    reconstruction = 0.5 * xp.sum((x - x_hat) ** 2, axis=1)
    kl = 0.5 * xp.sum(mu * mu + xp.exp(logvar) - 1.0 - logvar, axis=1)
    return xp.mean(reconstruction + kl)


def make_data(key: Any, n: int = 128) -> Any:
    """Points near a curve in the data space: two latent factors and a little noise."""
    keys = random.split(key)
    t = random.uniform(keys[0, ...], (n, LATENT), minval=-1.0, maxval=1.0)
    xp = array_namespace(t)
    basis = unijax.asarray(np.linspace(-1.0, 1.0, LATENT * DATA).reshape(LATENT, DATA))
    return xp.sin(3.0 * (t @ basis)) + 0.05 * random.normal(keys[1, ...], (n, DATA))


def train(steps: int = 60, seed: int = 0, learning_rate: float = 0.05) -> dict[str, Any]:
    """Train with SGD, a fresh key per step; report the losses and what the first step drew.

    ``losses`` are the training losses at a few steps (each under its own dropout mask and
    noise); ``eval_loss`` is the loss before and after training under one fixed key, so
    only the parameters differ; ``kept`` counts the hidden activations the first step's
    dropout mask keeps (of ``n * HIDDEN``): random bits, so every backend counts the same.
    """
    root = random.key(seed)
    # Each set-up function under jit is one program, compiled once; eager JAX would compile
    # every draw for its own shape.
    x = unijax.jit(make_data)(random.fold_in(root, 0))
    params = unijax.jit(init)(random.fold_in(root, 1))
    eval_key = random.fold_in(root, 2)

    def step_key(step: int) -> Any:
        return random.fold_in(root, 3 + step)

    @unijax.jit
    def sgd_step(params: dict[str, Any], x: Any, key: Any) -> tuple[Any, dict[str, Any]]:
        """The loss under ``key``, and the parameters one step down its gradient."""
        value, grads = unijax.value_and_grad(loss)(params, x, key)
        return value, unijax.tree_util.tree_map(lambda p, g: p - learning_rate * g,
                                                params, grads)

    # The evaluations reuse the training step's program (its update unused): one compilation.
    eval_before = float(sgd_step(params, x, eval_key)[0])
    losses = []
    for step in range(steps):
        value, params = sgd_step(params, x, step_key(step))
        losses.append(float(value))
    eval_after = float(sgd_step(params, x, eval_key)[0])
    picks = sorted({0, steps // 2, steps - 1})
    return {"losses": [losses[i] for i in picks], "eval_loss": [eval_before, eval_after],
            "kept": kept_count(step_key(0), x.shape[0])}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the example (``--backend`` overrides the configuration) and print the results."""
    args = parse(__doc__.splitlines()[0], argv, steps=60)
    if args.backend:
        unijax.set_backend(args.backend)
    announce("VAE with dropout")
    results = train(args.steps)
    show(results)
    return results


if __name__ == "__main__":
    main()
