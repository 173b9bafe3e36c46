"""Public checking helpers for library and backend authors.

:func:`check_grads` checks a function's derivatives, computed by unijax on whatever
backend its inputs select, against central finite differences along random directions,
to any order, in forward and reverse mode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from unijax import tree_util
from unijax._dtypes import dtype_name

__all__ = ["check_grads", "to_numpy"]

_DEFAULT_EPS = {"float64": 1e-4, "float32": 1e-2, "float16": 1e-1}
_DEFAULT_TOL = {"float64": 1e-5, "float32": 2e-2, "float16": 1e-1}


def to_numpy(x: Any) -> Any:
    """A NumPy copy of an array of any backend (for comparisons in tests)."""
    import numpy as np

    if type(x).__module__.partition(".")[0] == "cupy":
        return x.get()
    try:
        return np.asarray(x)
    except (TypeError, ValueError, RuntimeError):
        return np.from_dlpack(x)


def _namespace(leaves: Sequence[Any]) -> Any:
    from array_api_compat import array_namespace

    return array_namespace(*[x for x in leaves if hasattr(x, "shape")])


def _random_like(x: Any, rng: Any, xp: Any) -> Any:
    import numpy as np

    values = rng.standard_normal(tuple(x.shape))
    return xp.asarray(np.asarray(values, dtype=dtype_name(x.dtype)), device=_device(x))


def _device(x: Any) -> Any:
    from array_api_compat import device

    return device(x)


def _inner(xs: Any, ys: Any) -> float:
    import numpy as np

    total = 0.0
    for x, y in zip(tree_util.tree_leaves(xs), tree_util.tree_leaves(ys), strict=True):
        total += float(np.sum(to_numpy(x).astype(np.float64) * to_numpy(y).astype(np.float64)))
    return total


def _scaled_add(xs: Sequence[Any], ts: Sequence[Any], eps: float) -> tuple[Any, ...]:
    return tuple(tree_util.tree_map(lambda a, t: a + eps * t, x, t) for x, t in
                 zip(xs, ts, strict=True))


def _tolerance(leaves: Sequence[Any], table: dict[str, float]) -> float:
    names = [dtype_name(x.dtype) for x in leaves if hasattr(x, "dtype")]
    return max((table.get(n, table["float64"]) for n in names), default=table["float64"])


def _assert_close(got: float, want: float, atol: float, rtol: float, what: str) -> None:
    if abs(got - want) > atol + rtol * abs(want):
        raise AssertionError(
            f"{what}: unijax gives {got!r}, finite differences give {want!r} "
            f"(|difference| {abs(got - want):.3g} > atol {atol:g} + rtol {rtol:g} * |want|)"
        )


def check_grads(f: Callable[..., Any], args: Sequence[Any], order: int = 2,
                modes: Sequence[str] = ("fwd", "rev"), *, atol: float | None = None,
                rtol: float | None = None, eps: float | None = None, seed: int = 0) -> None:
    """Check derivatives of ``f`` at ``args`` against central finite differences.

    For each order up to ``order``, along random directions ``t`` and cotangents ``c``:
    forward mode checks ``jvp(f)(t) ≈ (f(x + εt) − f(x − εt)) / 2ε``; reverse mode checks
    ``⟨vjp(f)(c), t⟩ ≈ ⟨c, (f(x + εt) − f(x − εt)) / 2ε⟩``. Higher orders apply the same
    checks to the directional derivative itself.

    Args:
        f: The function, taking ``len(args)`` positional array arguments (pytrees allowed).
        args: The point to check at; arrays of any backend.
        order: Highest derivative order to check.
        modes: Any of ``"fwd"`` and ``"rev"``.
        atol: Absolute tolerance (default from the inputs' dtype).
        rtol: Relative tolerance (default from the inputs' dtype).
        eps: Finite-difference step (default from the inputs' dtype).
        seed: Seed of the random directions.

    Raises:
        AssertionError: a derivative disagrees, with both values in the message.

    Example:
        >>> import numpy as np
        >>> from unijax.testing import check_grads
        >>> check_grads(lambda x: x ** 3, (np.asarray([0.5, 2.0]),))
    """
    import numpy as np

    from unijax import jvp, vjp

    unknown = set(modes) - {"fwd", "rev"}
    if unknown:
        raise ValueError(f"check_grads: unknown modes {sorted(unknown)}; use 'fwd' and 'rev'")
    args = tuple(args)
    leaves = tree_util.tree_leaves(args)
    xp = _namespace(leaves)
    rng = np.random.default_rng(seed)
    eps = eps if eps is not None else _tolerance(leaves, _DEFAULT_EPS)
    atol = atol if atol is not None else _tolerance(leaves, _DEFAULT_TOL)
    rtol = rtol if rtol is not None else _tolerance(leaves, _DEFAULT_TOL)

    def rand(tree: Any) -> Any:
        return tree_util.tree_map(lambda x: _random_like(x, rng, xp), tree)

    def numerical(fun: Callable[..., Any], point: tuple[Any, ...], t: tuple[Any, ...]) -> Any:
        plus = fun(*_scaled_add(point, t, eps))
        minus = fun(*_scaled_add(point, t, -eps))
        return tree_util.tree_map(lambda p, m: (to_numpy(p) - to_numpy(m)) / (2 * eps),
                                  plus, minus)

    def check(fun: Callable[..., Any], point: tuple[Any, ...], k: int) -> None:
        t = rand(point)
        fd = numerical(fun, point, t)
        if "fwd" in modes:
            _, t_out = jvp(fun, point, t)
            for got, want in zip(tree_util.tree_leaves(t_out), tree_util.tree_leaves(fd),
                                 strict=True):
                got_np, want_np = to_numpy(got), np.asarray(want)
                err = np.max(np.abs(got_np - want_np), initial=0.0)
                bound = atol + rtol * np.max(np.abs(want_np), initial=0.0)
                if err > bound:
                    raise AssertionError(
                        f"order-{k} JVP of {getattr(fun, '__name__', fun)}: max |unijax − "
                        f"finite differences| = {err:.3g} > {bound:.3g}\nunijax: {got_np}\n"
                        f"finite differences: {want_np}"
                    )
        if "rev" in modes:
            out, pullback = vjp(fun, *point)
            c = rand(out)
            _assert_close(_inner(pullback(c), t), _inner(c, fd), atol, rtol,
                          f"order-{k} VJP of {getattr(fun, '__name__', fun)}")
        if k < order:
            t_next = rand(point)
            if "fwd" in modes:
                check(lambda *p: jvp(fun, p, t_next)[1], point, k + 1)
            if "rev" in modes:
                out, _ = vjp(fun, *point)
                c_next = rand(out)
                check(lambda *p: vjp(fun, *p)[1](c_next), point, k + 1)

    check(f, args, 1)
