"""Transforms compose: every two-level nest of grad, vmap and jit, and jit(vmap(grad)).

Each nest is checked against a closed form computed with NumPy, so a nest that silently
drops a level (or applies one twice) fails. Also ``jvp``, ``vjp``, ``value_and_grad``,
``jacfwd``, ``jacrev`` and ``hessian`` against their closed forms.
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
XS = np.array([[0.3, -1.2, 2.0], [1.1, 0.5, -0.7], [-2.0, 0.9, 0.05], [0.0, 1.5, -1.4]])
TOL = {"rtol": 1e-10, "atol": 1e-12}


def s(x: Any) -> Any:
    """``sin(x) * x``, elementwise."""
    xp = array_namespace(x)
    return xp.sin(x) * x


def h(x: Any) -> Any:
    """``sum(sin(x) * x)``, a scalar."""
    return array_namespace(x).sum(s(x))


def ds(x: np.ndarray) -> np.ndarray:
    return np.cos(x) * x + np.sin(x)


def d2s(x: np.ndarray) -> np.ndarray:
    return -np.sin(x) * x + 2 * np.cos(x)


def _sum_of(f: Callable[..., Any]) -> Callable[..., Any]:
    return lambda x: array_namespace(x).sum(f(x))


G, V, J = unijax.grad, unijax.vmap, unijax.jit

# name -> (transformed function, input, expected)
NESTS: dict[str, tuple[Callable[..., Any], np.ndarray, np.ndarray]] = {
    "grad(grad)": (G(G(lambda x: s(x))), np.asarray(0.7), d2s(np.asarray(0.7))),
    "grad(vmap)": (G(_sum_of(V(h))), XS, ds(XS)),
    "grad(jit)": (G(J(h)), X, ds(X)),
    "vmap(grad)": (V(G(h)), XS, ds(XS)),
    "vmap(vmap)": (V(V(s)), XS, np.sin(XS) * XS),
    "vmap(jit)": (V(J(h)), XS, (np.sin(XS) * XS).sum(axis=1)),
    "jit(grad)": (J(G(h)), X, ds(X)),
    "jit(vmap)": (J(V(h)), XS, (np.sin(XS) * XS).sum(axis=1)),
    "jit(jit)": (J(J(h)), X, (np.sin(X) * X).sum()),
    "jit(vmap(grad))": (J(V(G(h))), XS, ds(XS)),
    "grad(grad) of vmap": (G(_sum_of(G(_sum_of(V(s))))), X, d2s(X)),
}


@pytest.mark.parametrize("nest", list(NESTS))
def test_nest_matches_closed_form(unijax_selected: Any, nest: str) -> None:
    b = unijax_selected
    fn, x, want = NESTS[nest]
    got = fn(b.asarray(x))
    assert b.owns(got), f"{nest} on {b.name} returned a {type(got).__name__}"
    assert_trees_close(got, want, **TOL, what=f"{nest} on {b.name}")


def test_jvp_and_vjp_match_closed_form(unijax_selected: Any) -> None:
    b = unijax_selected
    x, t = b.asarray(X), b.asarray(np.array([1.0, -2.0, 0.5]))
    out, t_out = unijax.jvp(s, (x,), (t,))
    assert_trees_close(out, np.sin(X) * X, **TOL, what=f"jvp primal on {b.name}")
    assert_trees_close(t_out, ds(X) * np.array([1.0, -2.0, 0.5]), **TOL,
                       what=f"jvp tangent on {b.name}")
    out, pullback = unijax.vjp(s, x)
    (ct,) = pullback(t)
    assert_trees_close(ct, ds(X) * np.array([1.0, -2.0, 0.5]), **TOL,
                       what=f"vjp cotangent on {b.name}")


def test_value_and_grad_matches_closed_form(unijax_selected: Any) -> None:
    b = unijax_selected
    value, g = unijax.value_and_grad(h)(b.asarray(X))
    assert_trees_close(value, (np.sin(X) * X).sum(), **TOL, what=f"value on {b.name}")
    assert_trees_close(g, ds(X), **TOL, what=f"gradient on {b.name}")


@pytest.mark.parametrize("kind", ["jacfwd", "jacrev", "hessian"])
def test_jacobians_match_closed_form(unijax_selected: Any, kind: str) -> None:
    b = unijax_selected
    x = b.asarray(X)
    if kind == "hessian":
        got, want = unijax.hessian(h)(x), np.diag(d2s(X))
    else:
        got, want = getattr(unijax, kind)(s)(x), np.diag(ds(X))
    assert_trees_close(got, want, **TOL, what=f"{kind} on {b.name}")


def test_argnums_forms(unijax_selected: Any) -> None:
    b = unijax_selected

    def f(x: Any, y: Any, z: Any) -> Any:
        xp = array_namespace(x, y, z)
        return xp.sum(x * y * z**2)

    xs = [np.array([1.0, 2.0]), np.array([-0.5, 3.0]), np.array([1.5, -1.0])]
    x, y, z = xs
    args = [b.asarray(v) for v in xs]
    expected = {0: y * z**2, 1: x * z**2, 2: 2 * x * y * z}
    cases: list[tuple[Any, Any]] = [
        (0, expected[0]), (2, expected[2]), (-1, expected[2]), (-3, expected[0]),
        ((0, 2), (expected[0], expected[2])), ((1,), (expected[1],)),
        ((-1, 0), (expected[2], expected[0])),
    ]
    for argnums, want in cases:
        got = unijax.grad(f, argnums=argnums)(*args)
        assert isinstance(got, tuple) == isinstance(want, tuple), (
            f"grad(argnums={argnums!r}) returned a {type(got).__name__}")
        assert_trees_close(got, want, **TOL, what=f"grad(argnums={argnums!r}) on {b.name}")


def test_has_aux(unijax_selected: Any) -> None:
    b = unijax_selected

    def f(x: Any) -> Any:
        xp = array_namespace(x)
        return xp.sum(x**2), {"double": 2 * x}

    x = b.asarray(X)
    g, aux = unijax.grad(f, has_aux=True)(x)
    assert_trees_close(g, 2 * X, **TOL, what=f"grad(has_aux=True) on {b.name}")
    assert_trees_close(aux["double"], 2 * X, **TOL, what=f"aux on {b.name}")
    assert b.owns(aux["double"]), f"aux is a {type(aux['double']).__name__}, not a tracer"
    (value, aux2), g2 = unijax.value_and_grad(f, has_aux=True)(x)
    assert_trees_close((value, aux2["double"], g2), ((X**2).sum(), 2 * X, 2 * X), **TOL,
                       what=f"value_and_grad(has_aux=True) on {b.name}")
    out, t_out, aux3 = unijax.jvp(f, (x,), (x,), has_aux=True)
    assert_trees_close((out, t_out, aux3["double"]), ((X**2).sum(), 2 * X @ X, 2 * X),
                       **TOL, what=f"jvp(has_aux=True) on {b.name}")


def test_stop_gradient(unijax_selected: Any) -> None:
    b = unijax_selected

    def f(x: Any) -> Any:
        xp = array_namespace(x)
        return xp.sum(x * unijax.stop_gradient(x))

    x, xs = b.asarray(X), b.asarray(XS)
    assert_trees_close(unijax.stop_gradient(x), X, **TOL, what="stop_gradient value")
    for name, got, want in [
        ("grad", unijax.grad(f)(x), X),
        ("jit(grad)", unijax.jit(unijax.grad(f))(x), X),
        ("vmap(grad)", unijax.vmap(unijax.grad(f))(xs), XS),
        ("grad(grad)", unijax.grad(lambda v: unijax.grad(f)(v) @ v)(x), X),
    ]:
        assert_trees_close(got, want, **TOL, what=f"{name} through stop_gradient on {b.name}")
