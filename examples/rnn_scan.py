"""A recurrent network trained with ``unijax.lax.scan`` inside ``jit(value_and_grad)``.

    python examples/rnn_scan.py                      # configured backend (numpy)
    UNIJAX_BACKEND=torch python examples/rnn_scan.py
    python examples/rnn_scan.py --backend jax

An Elman RNN reads noisy sine waves one step at a time and predicts each next value.
The time loop is ``lax.scan``: under ``jit`` it is one loop in the compiled program, so
the program does not grow with the sequence length, and reverse mode keeps one hidden
state per step. After training, a second ``scan`` (no inputs, a fixed ``length``) runs
the network on its own predictions to forecast the continuation of one wave.

The data come from NumPy with a fixed seed and every function is Array API code, so every
backend prints the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import announce, parse, show, to_list
from array_api_compat import array_namespace
from unijax_examples.optim import Adam

import unijax
from unijax import lax

HIDDEN = 8


def make_data(batch: int = 16, steps: int = 24, seed: int = 0) -> tuple[Any, Any]:
    """``(inputs, targets)`` of shape ``(steps, batch, 1)``: sine waves of random phase and
    frequency with a little noise, and the next (clean) value of each (NumPy arrays).

    Time is the leading axis because ``scan`` loops over the leading axis.
    """
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0.0, 2 * np.pi, batch)
    freq = rng.uniform(0.3, 0.6, batch)
    t = np.arange(steps + 1)[:, None]
    clean = np.sin(freq * t + phase)
    noisy = clean[:-1] + 0.05 * rng.standard_normal((steps, batch))
    return noisy[..., None], clean[1:, :, None]


def init_params(hidden: int = HIDDEN, seed: int = 1) -> dict[str, Any]:
    """Small random weights (NumPy), converted to the configured backend."""
    rng = np.random.default_rng(seed)
    raw = {"w_in": 0.5 * rng.standard_normal((1, hidden)),
           "w_rec": 0.3 * rng.standard_normal((hidden, hidden)) / np.sqrt(hidden),
           "b": np.zeros(hidden),
           "w_out": rng.standard_normal((hidden, 1)) / np.sqrt(hidden),
           "b_out": np.zeros(1)}
    return {k: unijax.asarray(v) for k, v in raw.items()}


def cell(params: dict[str, Any], h: Any, x: Any) -> tuple[Any, Any]:
    """One step: the new hidden state and the prediction read from it."""
    xp = array_namespace(h)
    h = xp.tanh(x @ params["w_in"] + h @ params["w_rec"] + params["b"])
    return h, h @ params["w_out"] + params["b_out"]


def sequence_loss(params: dict[str, Any], inputs: Any, targets: Any) -> Any:
    """Mean squared error of the one-step-ahead predictions over the whole sequence."""
    xp = array_namespace(inputs)
    h0 = xp.zeros((inputs.shape[1], HIDDEN), dtype=inputs.dtype)

    def step(h: Any, x: Any) -> tuple[Any, Any]:
        return cell(params, h, x)

    _, predictions = lax.scan(step, h0, inputs)
    return xp.mean((predictions - targets) ** 2)


def forecast(params: dict[str, Any], inputs: Any, horizon: int) -> Any:
    """Read ``inputs`` (one wave, ``(steps, 1, 1)``), then feed each prediction back in for
    ``horizon`` more steps; returns the ``horizon`` predicted values."""
    xp = array_namespace(inputs)
    h0 = xp.zeros((1, HIDDEN), dtype=inputs.dtype)

    def read(h: Any, x: Any) -> tuple[Any, Any]:
        return cell(params, h, x)

    h, predictions = lax.scan(read, h0, inputs)

    def generate(carry: tuple[Any, Any], _: None) -> tuple[tuple[Any, Any], Any]:
        h, y = carry  # y: the prediction for this step, also the next step's input
        return cell(params, h, y), y[0, 0]

    _, future = lax.scan(generate, (h, predictions[-1, ...]), None, length=horizon)
    return future


def train(steps: int = 80, horizon: int = 6) -> dict[str, Any]:
    """Fit the RNN with Adam; report the loss at a few steps and a short forecast."""
    inputs_np, targets_np = make_data()
    inputs, targets = unijax.asarray(inputs_np), unijax.asarray(targets_np)
    params = init_params()
    opt = Adam(learning_rate=0.05)
    state = opt.init(params)
    loss_and_grad = unijax.jit(unijax.value_and_grad(sequence_loss))
    losses = []
    for _ in range(steps):
        loss, grads = loss_and_grad(params, inputs, targets)
        losses.append(float(loss))
        params, state = opt.update(params, grads, state)
    losses.append(float(unijax.jit(sequence_loss)(params, inputs, targets)))
    # The first wave of the batch, read clean, then continued by the network alone; the
    # same seed draws the same waves, so a longer sequence holds what comes next.
    seen = inputs_np.shape[0]
    _, long_targets = make_data(steps=seen + horizon)
    future = unijax.jit(forecast, static_argnums=2)(
        params, unijax.asarray(targets_np[:, :1, :]), horizon)
    truth = long_targets[seen:, 0, 0]
    return {"losses": [losses[i] for i in (0, 10, 40) if i < steps] + [losses[-1]],
            "forecast": to_list(future), "truth": [float(v) for v in truth]}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the example (``--backend`` overrides the configuration) and print the results."""
    args = parse(__doc__.splitlines()[0], argv, steps=80)
    if args.backend:
        unijax.set_backend(args.backend)
    announce("RNN with lax.scan")
    results = train(args.steps)
    show(results)
    return results


if __name__ == "__main__":
    main()
