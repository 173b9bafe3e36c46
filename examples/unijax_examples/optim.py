"""Optimisers over pytrees of arrays, in the functional style of optax.

An optimiser is a pair of pure functions: ``init(params) -> state`` and
``update(params, grads, state) -> (params, state)``. Parameters may be any pytree
(``dict``, ``list``, dataclass registered with ``unijax.tree``); every leaf is updated with
Array API operations, so the optimiser works on every backend and inside ``unijax.jit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from array_api_compat import array_namespace

import unijax

__all__ = ["SGD", "Adam"]

tree_map = unijax.tree.tree_map


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent with (heavy-ball) momentum.

    Attributes:
        learning_rate: Step size.
        momentum: Fraction of the previous step kept (0 gives plain gradient descent).

    Example:
        >>> import numpy as np
        >>> opt = SGD(learning_rate=0.1, momentum=0.0)
        >>> params = {"w": np.asarray([1.0, 2.0])}
        >>> params, state = opt.update(params, {"w": np.asarray([1.0, 1.0])}, opt.init(params))
        >>> params["w"]
        array([0.9, 1.9])
    """

    learning_rate: float
    momentum: float = 0.9

    def init(self, params: Any) -> Any:
        """The velocity: zeros shaped like ``params``."""
        return tree_map(lambda p: array_namespace(p).zeros_like(p), params)

    def update(self, params: Any, grads: Any, state: Any) -> tuple[Any, Any]:
        """One step: ``v = momentum * v + g``; ``p = p - learning_rate * v``."""
        velocity = tree_map(lambda v, g: self.momentum * v + g, state, grads)
        params = tree_map(lambda p, v: p - self.learning_rate * v, params, velocity)
        return params, velocity


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma and Ba, 2015) with bias correction.

    Attributes:
        learning_rate: Step size.
        b1: Decay of the first-moment estimate.
        b2: Decay of the second-moment estimate.
        eps: Added to the denominator for stability.

    Example:
        >>> import numpy as np
        >>> opt = Adam(learning_rate=0.1)
        >>> params = [np.asarray(1.0)]
        >>> params, state = opt.update(params, [np.asarray(3.0)], opt.init(params))
        >>> round(float(params[0]), 6)  # the first step is learning_rate * sign(grad)
        0.9
    """

    learning_rate: float
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def init(self, params: Any) -> Any:
        """``(step, first moments, second moments)``; the moments start at zero."""
        zeros = tree_map(lambda p: array_namespace(p).zeros_like(p), params)
        return 0, zeros, zeros

    def update(self, params: Any, grads: Any, state: Any) -> tuple[Any, Any]:
        """One Adam step; returns the new parameters and state."""
        step, m, v = state
        step += 1
        m = tree_map(lambda m, g: self.b1 * m + (1 - self.b1) * g, m, grads)
        v = tree_map(lambda v, g: self.b2 * v + (1 - self.b2) * (g * g), v, grads)
        # Bias corrections are Python floats: the step count is not traced.
        c1, c2 = 1 - self.b1**step, 1 - self.b2**step

        def move(p: Any, m: Any, v: Any) -> Any:
            xp = array_namespace(p)
            return p - self.learning_rate * (m / c1) / (xp.sqrt(v / c2) + self.eps)

        return tree_map(move, params, m, v), (step, m, v)
