"""custom_vjp and custom_jvp: the custom rule is used by grad, jvp, vmap and jit.

The rules below are deliberately *not* the true derivative (``bwd`` scales by 2, the JVP
by 3), so a backend that differentiates the primal function instead of calling the rule
is caught.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax_conformance._support import assert_trees_close

X = np.array([0.3, -1.2, 2.0])
XS = np.array([[0.3, -1.2, 2.0], [1.1, 0.5, -0.7]])
TOL = {"rtol": 1e-10, "atol": 1e-12}


@unijax.custom_vjp
def sin_twice_grad(x: Any) -> Any:
    """``sin(x)``, whose VJP is ``2 * ct`` (not ``cos(x) * ct``)."""
    return array_namespace(x).sin(x)


def _fwd(x: Any) -> Any:
    return sin_twice_grad(x), x


def _bwd(residual: Any, ct: Any) -> Any:
    return (2.0 * ct,)


sin_twice_grad.defvjp(_fwd, _bwd)


@unijax.custom_jvp
def softplus_thrice(x: Any) -> Any:
    """``log(1 + exp(x))``, whose JVP is ``3 * t`` (not ``sigmoid(x) * t``)."""
    xp = array_namespace(x)
    return xp.log(1.0 + xp.exp(x))


@softplus_thrice.defjvp
def _softplus_jvp(primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    return softplus_thrice(x), 3.0 * t


def _total(f: Any) -> Any:
    return lambda x: array_namespace(x).sum(f(x))


CASES: dict[str, tuple[Callable[..., Any], Callable[..., Any], float]] = {
    "custom_vjp": (sin_twice_grad, np.sin, 2.0),
    "custom_jvp": (softplus_thrice, lambda x: np.log1p(np.exp(x)), 3.0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_custom_rule_values(unijax_selected: Any, case: str) -> None:
    b = unijax_selected
    f, ref, _ = CASES[case]
    assert_trees_close(f(b.asarray(X)), ref(X), **TOL, what=f"{case} value on {b.name}")
    assert_trees_close(unijax.jit(f)(b.asarray(X)), ref(X), **TOL,
                       what=f"jit({case}) value on {b.name}")
    assert_trees_close(unijax.vmap(f)(b.asarray(XS)), ref(XS), **TOL,
                       what=f"vmap({case}) value on {b.name}")


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("wrap", ["grad", "jit(grad)", "grad(jit)", "vmap(grad)",
                                  "jit(vmap(grad))"])
def test_custom_rule_gradients(unijax_selected: Any, case: str, wrap: str) -> None:
    b = unijax_selected
    f, _, scale = CASES[case]
    g = unijax.grad(_total(f)) if wrap != "grad(jit)" else unijax.grad(_total(unijax.jit(f)))
    if wrap == "jit(grad)":
        g = unijax.jit(g)
    if wrap in ("vmap(grad)", "jit(vmap(grad))"):
        g = unijax.vmap(g)
    if wrap == "jit(vmap(grad))":
        g = unijax.jit(g)
    x = XS if wrap.startswith(("vmap", "jit(vmap")) else X
    assert_trees_close(g(b.asarray(x)), np.full(x.shape, scale), **TOL,
                       what=f"{wrap} of {case} on {b.name}: the custom rule was not used")


def test_custom_jvp_forward_mode(unijax_selected: Any) -> None:
    b = unijax_selected
    t = np.array([1.0, -2.0, 0.5])
    out, t_out = unijax.jvp(softplus_thrice, (b.asarray(X),), (b.asarray(t),))
    assert_trees_close((out, t_out), (np.log1p(np.exp(X)), 3.0 * t), **TOL,
                       what=f"jvp of custom_jvp on {b.name}")
    batched = unijax.vmap(lambda x, v: unijax.jvp(softplus_thrice, (x,), (v,))[1])
    assert_trees_close(batched(b.asarray(XS), b.asarray(XS)), 3.0 * XS, **TOL,
                       what=f"vmap of jvp of custom_jvp on {b.name}")


def test_custom_vjp_pullback(unijax_selected: Any) -> None:
    b = unijax_selected
    out, pullback = unijax.vjp(sin_twice_grad, b.asarray(X))
    (ct,) = pullback(b.asarray(np.array([1.0, 10.0, -1.0])))
    assert_trees_close((out, ct), (np.sin(X), np.array([2.0, 20.0, -2.0])), **TOL,
                       what=f"vjp of custom_vjp on {b.name}")
