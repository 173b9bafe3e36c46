"""Control flow: ``unijax.lax`` and ``checkpoint`` under every transform, and their errors.

Each construct is a scalar function of a float64[3] parameter, written once against the
Array API with the control-flow module as an argument. The reference runs the same source
with plain Python loops over NumPy (:class:`_LoopsOnNumPy`); gradients are checked against
central finite differences of the reference, ``vmap`` against a loop, ``jit`` against the
eager value. The misuses (branches whose outputs differ, a carry that changes type,
reverse mode through ``while_loop``) must raise the same ``unijax.errors`` class on every
backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax import errors, lax
from unijax_conformance._support import assert_trees_close

P = np.array([0.4, -0.8, 1.3])
PS = np.stack([P, 0.5 * P - 0.25, -P])
X = np.array([[0.3, -1.2, 2.0], [1.1, 0.5, -0.7], [-2.0, 0.9, 0.05], [0.0, 1.5, -1.4]])
M = np.array([[0.3, -0.2, 0.1], [0.05, 0.4, -0.3], [-0.1, 0.2, 0.25]])
TOL = {"rtol": 1e-9, "atol": 1e-11}
FD_TOL = {"rtol": 1e-6, "atol": 1e-7}


class _LoopsOnNumPy:
    """The reference: each construct as the Python loop its definition states."""

    @staticmethod
    def scan(f: Callable[..., Any], init: Any, xs: Any, length: int | None = None,
             reverse: bool = False) -> Any:
        rows = [] if xs is None else list(zip(*(xs if isinstance(xs, tuple) else (xs,)),
                                              strict=True))
        n = length if xs is None else len(rows)
        order = range(n - 1, -1, -1) if reverse else range(n)
        ys: list[Any] = [None] * n
        carry = init
        for i in order:
            row = None if xs is None else rows[i] if isinstance(xs, tuple) else rows[i][0]
            carry, ys[i] = f(carry, row)
        return carry, (None if ys[0] is None else np.stack(ys))

    @staticmethod
    def fori_loop(lower: int, upper: int, body: Callable[..., Any], value: Any) -> Any:
        for i in range(lower, upper):
            value = body(np.asarray(i), value)
        return value

    @staticmethod
    def while_loop(going: Callable[..., Any], body: Callable[..., Any], value: Any) -> Any:
        while going(value):
            value = body(value)
        return value

    @staticmethod
    def cond(pred: Any, true_fun: Callable[..., Any], false_fun: Callable[..., Any],
             *operands: Any) -> Any:
        return true_fun(*operands) if pred else false_fun(*operands)

    @staticmethod
    def switch(index: Any, branches: Sequence[Callable[..., Any]], *operands: Any) -> Any:
        return branches[min(max(int(index), 0), len(branches) - 1)](*operands)

    @staticmethod
    def map(f: Callable[..., Any], xs: Any) -> Any:
        return np.stack([f(x) for x in xs])


def _programs(L: Any, checkpoint: Callable[..., Any], asarray: Callable[[Any], Any]
              ) -> dict[str, Callable[[Any], Any]]:
    x, m = asarray(X), asarray(M)

    def scan(p: Any) -> Any:
        xp = array_namespace(p)

        def step(h: Any, row: Any) -> Any:
            h = xp.tanh(xp.matmul(m, h) * p + row)
            return h, xp.sum(h * h)

        h, ys = L.scan(step, p, x)
        return xp.sum(h) + xp.sum(ys)

    def scan_reverse_pytree(p: Any) -> Any:
        xp = array_namespace(p)

        def step(c: Any, rows: Any) -> Any:
            a, b = rows
            h = xp.sin(c["h"] * a) + b * p
            return {"h": h, "s": c["s"] + xp.sum(h)}, h * c["h"]

        c, ys = L.scan(step, {"h": p, "s": xp.sum(p)}, (x, 2.0 * x), reverse=True)
        return c["s"] + xp.sum(ys)

    def fori(p: Any) -> Any:
        xp = array_namespace(p)
        return xp.sum(L.fori_loop(0, 4, lambda i, c: c * xp.cos(p) + xp.astype(i, p.dtype), p))

    def cond(p: Any) -> Any:
        xp = array_namespace(p)
        out = L.cond(xp.sum(p) > 0, lambda q: xp.sin(q) * 2.0, lambda q: xp.cos(q) * q, p)
        return xp.sum(out * p)

    def switch(p: Any) -> Any:
        xp = array_namespace(p)
        index = xp.sum(xp.astype(p > 0, xp.int32))
        return xp.sum(L.switch(index, [lambda q: q * q, xp.exp, lambda q: xp.sin(q) * q], p))

    def map_rows(p: Any) -> Any:
        xp = array_namespace(p)
        return xp.sum(L.map(lambda row: xp.sum(xp.tanh(row * p)), x))

    def nested(p: Any) -> Any:
        xp = array_namespace(p)

        def step(h: Any, row: Any) -> Any:
            h = L.cond(xp.sum(row) > 0, lambda v: v * xp.cos(p), lambda v: v + row * p, h)
            return L.fori_loop(0, 2, lambda i, v: xp.sin(v) + p, h), xp.sum(h)

        h, ys = L.scan(step, p, x)
        return xp.sum(h * h) + xp.sum(ys)

    def remat(p: Any) -> Any:
        xp = array_namespace(p)

        def segment(h: Any) -> Any:
            return xp.tanh(xp.matmul(m, xp.tanh(xp.matmul(m, h) + p)) + p)

        h = p
        for _ in range(3):
            h = checkpoint(segment)(h)
        return xp.sum(h * h)

    def while_fixed_point(p: Any) -> Any:
        xp = array_namespace(p)

        def going(c: Any) -> Any:
            k, v, prev = c
            return (k < 60) & (xp.max(xp.abs(v - prev)) > 1e-9)

        def advance(c: Any) -> Any:
            k, v, _ = c
            return k + 1, xp.cos(p * v), v

        return xp.sum(L.while_loop(going, advance, (xp.asarray(0), p * 0.0 + 1.0, p * 0.0))[1])

    return {f.__name__: f for f in (scan, scan_reverse_pytree, fori, cond, switch, map_rows,
                                    nested, remat, while_fixed_point)}


REFERENCE = _programs(_LoopsOnNumPy, lambda f: f, np.asarray)
TRANSFORMS = ("eager", "grad", "jacfwd", "vmap", "jit", "jit(grad)", "vmap(grad)")


def _applied(transform: str, f: Callable[..., Any]) -> Callable[..., Any]:
    return {
        "eager": f, "grad": unijax.grad(f), "jacfwd": unijax.jacfwd(f), "vmap": unijax.vmap(f),
        "jit": unijax.jit(f), "jit(grad)": unijax.jit(unijax.grad(f)),
        "vmap(grad)": unijax.vmap(unijax.grad(f)),
    }[transform]


def _finite_difference(f: Callable[[np.ndarray], Any], p: np.ndarray) -> np.ndarray:
    eps = 1e-6
    return np.array([(float(f(p + eps * e)) - float(f(p - eps * e))) / (2 * eps)
                     for e in np.eye(p.size)])


def _expected(name: str, transform: str) -> tuple[np.ndarray, dict[str, float]]:
    f = REFERENCE[name]
    if transform in ("eager", "jit"):
        return np.asarray(f(P)), TOL
    if transform == "vmap":
        return np.array([f(p) for p in PS]), TOL
    if transform in ("grad", "jacfwd", "jit(grad)"):
        return _finite_difference(f, P), FD_TOL
    return np.stack([_finite_difference(f, p) for p in PS]), FD_TOL


def _cases() -> list[Any]:
    return [pytest.param(name, t, id=f"{name}-{t}") for name in REFERENCE for t in TRANSFORMS
            if not (name == "while_fixed_point" and "grad" in t)]


@pytest.mark.parametrize(("name", "transform"), _cases())
def test_construct_under_transform(unijax_selected: Any, name: str, transform: str) -> None:
    b = unijax_selected
    f = _programs(lax, unijax.checkpoint, b.asarray)[name]
    arg = PS if "vmap" in transform else P
    got = _applied(transform, f)(b.asarray(arg))
    assert b.owns(got), f"{name} under {transform} on {b.name} returned {type(got).__name__}"
    want, tol = _expected(name, transform)
    assert_trees_close(got, want, **tol, what=f"{name} under {transform} on {b.name}")


def test_checkpoint_keeps_values_and_gradients(unijax_selected: Any) -> None:
    b = unijax_selected
    f = _programs(lax, unijax.checkpoint, b.asarray)["remat"]
    plain = _programs(lax, lambda g: g, b.asarray)["remat"]
    assert_trees_close(unijax.grad(f)(b.asarray(P)), unijax.grad(plain)(b.asarray(P)), **TOL,
                       what=f"checkpoint's gradient on {b.name}")


# --- errors -----------------------------------------------------------------------------------


def _branch_mismatch(b: Any) -> Any:
    p = b.asarray(P)
    return lax.cond(array_namespace(p).sum(p) > 0, lambda v: v, lambda v: (v, v), p)


def _branch_shape_mismatch_under_jit(b: Any) -> Any:
    return unijax.jit(lambda v: lax.switch(1, [lambda u: u, lambda u: u[:2]], v))(b.asarray(P))


def _carry_changes_shape(b: Any) -> Any:
    xp = b.xp
    return lax.scan(lambda c, r: (xp.concat([c, c]), r), b.asarray(P), b.asarray(X))


def _carry_changes_dtype_under_grad(b: Any) -> Any:
    def f(p: Any) -> Any:
        ns = array_namespace(p)
        return ns.sum(lax.fori_loop(0, 2, lambda i, c: ns.astype(c, ns.float32), p))

    return unijax.grad(f)(b.asarray(P))


def _grad_through_while_loop(b: Any) -> Any:
    def f(p: Any) -> Any:
        ns = array_namespace(p)
        return ns.sum(lax.while_loop(lambda c: ns.sum(c) < 10.0, lambda c: c * 2.0, p))

    return unijax.grad(f)(b.asarray(np.abs(P)))


MISUSES: dict[str, tuple[type[Exception], Callable[[Any], Any]]] = {
    "branch_output_structure": (errors.ControlFlowError, _branch_mismatch),
    "branch_output_shape_under_jit": (errors.ControlFlowError,
                                      _branch_shape_mismatch_under_jit),
    "carry_shape_changes": (errors.ControlFlowError, _carry_changes_shape),
    "carry_dtype_changes_under_grad": (errors.ControlFlowError,
                                       _carry_changes_dtype_under_grad),
    "grad_through_while_loop": (errors.UnsupportedTransformError, _grad_through_while_loop),
}


@pytest.mark.parametrize("misuse", list(MISUSES))
def test_misuse_raises_the_same_error(unijax_selected: Any, misuse: str) -> None:
    expected, make = MISUSES[misuse]
    with pytest.raises(expected) as info:
        make(unijax_selected)
    # The message says how to fix it, in the same words on every backend.
    assert any(word in str(info.value) for word in ("Return", "Make", "Use")), info.value
