"""``unijax demo``: train a small MLP with ``jit(value_and_grad)`` on the active backend.

The model is written once against the Array API standard; only the backend changes
(``UNIJAX_BACKEND=jax unijax demo``). Data and initial weights are generated with NumPy
from fixed seeds and converted, so every backend starts from identical numbers and
prints the same losses to within floating-point tolerance.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import unijax
from unijax.testing import to_numpy

__all__ = ["main", "make_data", "train"]


def make_data(n: int = 512, d: int = 8, seed: int = 0) -> tuple[Any, Any]:
    """Two interleaved classes that a linear model cannot separate (NumPy arrays)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    y = ((x @ w) ** 2 > np.median((x @ w) ** 2)).astype(np.int64)
    return x, y


def init_params(d: int, hidden: int, classes: int, seed: int = 1) -> dict[str, Any]:
    """Glorot-scaled initial weights (NumPy arrays)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {
        "w1": rng.standard_normal((d, hidden)) / np.sqrt(d),
        "b1": np.zeros(hidden),
        "w2": rng.standard_normal((hidden, classes)) / np.sqrt(hidden),
        "b2": np.zeros(classes),
    }


def logits(params: dict[str, Any], x: Any) -> Any:
    """A two-layer tanh MLP, in Array API code."""
    from array_api_compat import array_namespace

    xp = array_namespace(x, params["w1"])
    h = xp.tanh(x @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


def loss(params: dict[str, Any], x: Any, onehot: Any) -> Any:
    """Mean softmax cross-entropy."""
    from array_api_compat import array_namespace

    xp = array_namespace(x, params["w1"])
    z = logits(params, x)
    z = z - xp.max(z, axis=1, keepdims=True)
    log_probs = z - xp.log(xp.sum(xp.exp(z), axis=1, keepdims=True))
    return -xp.sum(onehot * log_probs) / x.shape[0]


def train(steps: int = 200, lr: float = 0.5, hidden: int = 32,
          backend: str | None = None) -> tuple[list[float], float]:
    """Full-batch gradient descent; returns the loss per step and the final accuracy."""
    import numpy as np

    x_np, y_np = make_data()
    onehot_np = np.eye(2)[y_np]
    params = {k: unijax.asarray(v, backend=backend) for k, v in
              init_params(x_np.shape[1], hidden, 2).items()}
    x = unijax.asarray(x_np, backend=backend)
    onehot = unijax.asarray(onehot_np, backend=backend)
    # jit on every backend: JAX compiles with XLA, the others with unijax's engine.
    value_and_grad = unijax.jit(unijax.value_and_grad(loss, backend=backend), backend=backend)
    # The update and the predictions run inside unijax too, so they compute in unijax's
    # default float dtype on every backend (JAX without x64 would compute in float32).
    update = unijax.jit(lambda params, grads: unijax.tree.tree_map(
        lambda p, g: p - lr * g, params, grads), backend=backend)
    losses = []
    for _ in range(steps):
        value, grads = value_and_grad(params, x, onehot)
        losses.append(float(value))
        # On a lazy backend (Dask) the new parameters are computed here, so each step's
        # graph starts from them instead of holding every earlier step.
        params = unijax.block_until_ready(update(params, grads))
    predictions = np.argmax(to_numpy(unijax.jit(logits, backend=backend)(params, x)), axis=1)
    return losses, float(np.mean(predictions == y_np))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo and print the loss falling and the final accuracy."""
    parser = argparse.ArgumentParser(prog="unijax demo", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=_positive_int, default=200,
                        help="gradient-descent steps (default 200)")
    parser.add_argument("--backend", default=None, help="override the configured backend")
    args = parser.parse_args(argv)
    why = unijax.explain_backend(backend=args.backend)
    print(f"unijax demo: 2-layer MLP, 512 examples, backend {why.backend!r} ({why.reason})")
    start = time.perf_counter()
    losses, accuracy = train(steps=args.steps, backend=args.backend)
    elapsed = time.perf_counter() - start
    for step in sorted({0, 1, 5, 10, 25, 50, 100, args.steps - 1}):
        if step < len(losses):
            print(f"  step {step:4d}  loss {losses[step]:.6f}")
    print(f"final accuracy {accuracy:.4f} after {args.steps} steps ({elapsed:.2f} s)")
    return 0
