"""Gaussian-process regression: fit the kernel's hyperparameters with Adam, then predict.

    python examples/gp_regression.py
    UNIJAX_BACKEND=jax python examples/gp_regression.py

The negative log marginal likelihood uses ``xp.linalg.cholesky`` and ``xp.linalg.solve``;
unijax differentiates through both on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import announce, parse, show, to_list
from unijax_examples.models import gp_nll, gp_predict
from unijax_examples.optim import Adam

import unijax


def make_data(n: int = 40, seed: int = 0) -> tuple[Any, Any]:
    """Noisy samples of ``sin(3x)`` on ``[-2, 2]`` (NumPy arrays, ``x`` is ``(n, 1)``)."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-2.0, 2.0, n))[:, None]
    return x, np.sin(3 * x[:, 0]) + 0.1 * rng.standard_normal(n)


def train(steps: int = 60) -> dict[str, Any]:
    """Maximise the marginal likelihood; report it, the hyperparameters and a prediction."""
    x_np, y_np = make_data()
    x, y = unijax.asarray(x_np), unijax.asarray(y_np)
    params = {name: unijax.asarray(value) for name, value in
              {"log_lengthscale": 0.0, "log_variance": 0.0, "log_noise": math.log(0.5)}.items()}
    opt = Adam(learning_rate=0.05)
    state = opt.init(params)
    nll_and_grad = unijax.jit(unijax.value_and_grad(gp_nll))
    nlls = []
    for _ in range(steps):
        nll, grads = nll_and_grad(params, x, y)
        nlls.append(float(nll))
        params, state = opt.update(params, grads, state)
    nlls.append(float(gp_nll(params, x, y)))
    x_new = unijax.asarray(np.linspace(-1.5, 1.5, 5)[:, None])
    mean = to_list(gp_predict(params, x, y, x_new))
    truth = np.sin(3 * np.linspace(-1.5, 1.5, 5))
    return {"nll": [nlls[i] for i in (0, 10, 30) if i < steps] + [nlls[-1]],
            "hyperparameters": [math.exp(float(params[k])) for k in
                                ("log_lengthscale", "log_variance", "log_noise")],
            "prediction": mean, "rmse": float(np.sqrt(np.mean((np.asarray(mean) - truth) ** 2)))}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the example (``--backend`` overrides the configuration) and print the results."""
    args = parse(__doc__.splitlines()[0], argv, steps=60)
    if args.backend:
        unijax.set_backend(args.backend)
    announce("GP regression")
    results = train(args.steps)
    show(results)
    return results


if __name__ == "__main__":
    main()
