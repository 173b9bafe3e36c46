"""Logistic regression trained with SGD + momentum, on the backend chosen by configuration.

    python examples/logistic_regression.py                  # configured backend (numpy)
    UNIJAX_BACKEND=jax python examples/logistic_regression.py
    python examples/logistic_regression.py --backend array_api_strict

Every backend prints the same numbers: the data come from NumPy with a fixed seed and are
converted with ``unijax.asarray``; the model (``unijax_examples.models``) is Array API code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import announce, parse, show
from unijax_examples.models import logistic_loss
from unijax_examples.optim import SGD

import unijax
import unijax.testing


def make_data(n: int = 200, d: int = 5, seed: int = 0) -> tuple[Any, Any]:
    """Two Gaussian classes with overlapping tails (NumPy arrays)."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < 0.5).astype(np.float64)
    x = rng.standard_normal((n, d)) + np.outer(2 * y - 1, np.linspace(1.0, 0.2, d))
    return x, y


def train(steps: int = 100) -> dict[str, Any]:
    """Fit the classifier; return the loss at a few steps, the weights and the accuracy."""
    x_np, y_np = make_data()
    x, y = unijax.asarray(x_np), unijax.asarray(y_np)
    params = {"w": unijax.asarray(np.zeros(x_np.shape[1])), "b": unijax.asarray(0.0)}
    opt = SGD(learning_rate=0.5, momentum=0.9)
    state = opt.init(params)
    loss_and_grad = unijax.jit(unijax.value_and_grad(logistic_loss))
    losses = []
    for _ in range(steps):
        loss, grads = loss_and_grad(params, x, y)
        losses.append(float(loss))
        params, state = opt.update(params, grads, state)
    w = unijax.testing.to_numpy(params["w"])
    b = float(params["b"])
    accuracy = float(np.mean(((x_np @ w + b) > 0) == (y_np > 0.5)))
    return {"losses": [losses[i] for i in (0, 10, 50) if i < steps] + [losses[-1]],
            "weights": [float(v) for v in w], "bias": b, "accuracy": accuracy}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the example (``--backend`` overrides the configuration) and print the results."""
    args = parse(__doc__.splitlines()[0], argv, steps=100)
    if args.backend:
        unijax.set_backend(args.backend)
    announce("logistic regression")
    results = train(args.steps)
    show(results)
    return results


if __name__ == "__main__":
    main()
