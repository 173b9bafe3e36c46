"""``stop_gradient``: the identity whose derivative is zero."""

from __future__ import annotations

from typing import Any

from unijax.engine.core import Primitive
from unijax.engine.registry import def_batch, def_nondifferentiable

stop_gradient_p = Primitive("stop_gradient", impl=lambda xp, x: x)
def_nondifferentiable(stop_gradient_p)


@def_batch(stop_gradient_p)
def _stop_gradient_batch(args: tuple[Any, ...], bdims: tuple[Any, ...]) -> Any:
    return stop_gradient_p.bind(args[0]), bdims[0]
