"""An MLP trained with per-example gradient clipping: ``vmap(grad)`` + clip + mean, jitted.

    python examples/mlp_clipped.py
    UNIJAX_BACKEND=autograd python examples/mlp_clipped.py

The clipped gradient (``unijax_examples.models.clipped_mean_grad``) needs each example's
gradient: ``vmap(grad(loss), in_axes=(None, 0, 0))`` computes all of them in one pass, and
``jit`` compiles the whole step on every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import announce, parse, show
from unijax_examples.models import clipped_mean_grad, mlp_logits, mlp_loss
from unijax_examples.optim import Adam

import unijax
import unijax.testing


def make_data(n: int = 96, d: int = 4, classes: int = 3, seed: int = 0) -> tuple[Any, Any]:
    """Points labelled by the sector of the plane of their first two features."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    angle = np.arctan2(x[:, 1], x[:, 0]) + np.pi
    labels = np.minimum((angle / (2 * np.pi) * classes).astype(np.int64), classes - 1)
    return x, np.eye(classes)[labels]


def init_params(d: int, hidden: int, classes: int, seed: int = 1) -> dict[str, Any]:
    """Glorot-scaled weights (NumPy), converted to the configured backend."""
    rng = np.random.default_rng(seed)
    raw = {"w1": rng.standard_normal((d, hidden)) / np.sqrt(d), "b1": np.zeros(hidden),
           "w2": rng.standard_normal((hidden, classes)) / np.sqrt(hidden),
           "b2": np.zeros(classes)}
    return {k: unijax.asarray(v) for k, v in raw.items()}


def train(steps: int = 40, max_norm: float = 1.0) -> dict[str, Any]:
    """Adam on clipped per-example gradients; the loss falls, no example dominates."""
    x_np, onehot_np = make_data()
    x, onehot = unijax.asarray(x_np), unijax.asarray(onehot_np)
    params = init_params(x_np.shape[1], 16, onehot_np.shape[1])
    opt = Adam(learning_rate=0.05)
    state = opt.init(params)
    # max_norm is a Python float that never changes: static, so it is baked into the program.
    step_grad = unijax.jit(clipped_mean_grad, static_argnums=3)
    loss = unijax.jit(mlp_loss)
    losses = []
    for _ in range(steps):
        losses.append(float(loss(params, x, onehot)))
        params, state = opt.update(params, step_grad(params, x, onehot, max_norm), state)
    losses.append(float(loss(params, x, onehot)))
    predicted = np.argmax(unijax.testing.to_numpy(mlp_logits(params, x)), axis=1)
    accuracy = float(np.mean(predicted == np.argmax(onehot_np, axis=1)))
    return {"losses": [losses[i] for i in (0, 10, 20) if i < steps] + [losses[-1]],
            "accuracy": accuracy}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the example (``--backend`` overrides the configuration) and print the results."""
    args = parse(__doc__.splitlines()[0], argv, steps=40)
    if args.backend:
        unijax.set_backend(args.backend)
    announce("MLP with per-example clipping")
    results = train(args.steps)
    show(results)
    return results


if __name__ == "__main__":
    main()
