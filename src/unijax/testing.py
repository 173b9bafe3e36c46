"""Public checking helpers for library and backend authors.

* :func:`check_grads` checks derivatives (``jvp`` and ``vjp``, to any order) against
  central finite differences along random directions;
* :func:`check_vmap` checks ``vmap`` against stacking the function over a Python loop;
* :func:`check_jit` checks ``jit`` against eager evaluation;
* :func:`check_backends` runs a function and its transforms on every installed backend and
  reports the largest disagreement with the NumPy reference;
* :func:`to_numpy` copies an array of any backend to NumPy.

Each check runs on the backend its inputs select (or the active one, see
:func:`unijax.use_backend`) and raises ``AssertionError`` with both values when it fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import unijax
from unijax import jit, jvp, tree_util, vjp, vmap
from unijax._dtypes import dtype_name
from unijax.dispatch.plugins import _get, backend_for_type, get_backend
from unijax.dispatch.selection import backend_scope
from unijax.errors import UnijaxError, message

__all__ = [
    "BackendReport",
    "Disagreement",
    "check_backends",
    "check_grads",
    "check_jit",
    "check_vmap",
    "to_numpy",
]

_DEFAULT_EPS = {"float64": 1e-4, "float32": 1e-2, "float16": 1e-1}
_DEFAULT_TOL = {"float64": 1e-5, "float32": 2e-2, "float16": 1e-1}
# vmap and jit compute the same operations as the eager function, up to reassociation.
_SAME_MATH_TOL = {"float64": 1e-9, "float32": 1e-5, "float16": 1e-2}
_TRANSFORMS = ("value", "grad", "vmap", "jit")


def to_numpy(x: Any) -> Any:
    """A NumPy copy of an array of any backend (for comparisons in tests).

    The backend that owns ``x``'s type says how: its ``extras["to_host"]`` hook when it
    has one (a library whose arrays wrap their data, or live on a device), else DLPack,
    else ``__array__``. Where the hook refuses an array that it would not move between
    backends (Dask: one of unknown shape), DLPack and ``__array__`` are tried next.

    Raises:
        TypeError: ``x`` cannot be copied to NumPy by any of these means (the hook's
            refusal, if any, is the cause).

    Example:
        >>> import numpy as np
        >>> to_numpy(np.arange(3))
        array([0, 1, 2])
    """
    import numpy as np

    if isinstance(x, np.ndarray | np.generic | int | float | complex | bool):
        return np.asarray(x)
    owner = backend_for_type(type(x))
    hook = owner.extras.get("to_host") if owner is not None else None
    refused: Exception | None = None
    if hook is not None:
        try:
            return np.asarray(hook(x))
        except Exception as err:
            refused = err
    if hasattr(x, "__dlpack__"):
        try:
            return np.from_dlpack(x)
        except (BufferError, TypeError, ValueError, RuntimeError):
            pass  # not on the host, or a dtype DLPack cannot carry: try __array__
    if hasattr(x, "__array__"):
        try:
            return np.asarray(x)
        except Exception:
            if refused is None:
                raise
    owner_name = owner.name if owner is not None else "no installed backend"
    got = (f"its to_host hook raised {type(refused).__name__}: {refused}, and neither "
           "__dlpack__ nor __array__ worked" if refused is not None else
           "no extras['to_host'] hook, no working __dlpack__ and no __array__")
    raise TypeError(message(
        f"unijax.testing.to_numpy: cannot copy a {type(x).__module__}."
        f"{type(x).__qualname__} ({owner_name}) to NumPy", got=got,
        fix="Give the backend an extras['to_host'] hook returning a NumPy array "
            "(see the backend authors' guide).")) from refused


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
        x_np, y_np = np.asarray(to_numpy(x)), np.asarray(to_numpy(y))
        total += float(np.sum(np.real(x_np.astype(np.complex128) * y_np)))
    return total


def _scaled_add(xs: Sequence[Any], ts: Sequence[Any], eps: float) -> tuple[Any, ...]:
    return tuple(tree_util.tree_map(lambda a, t: a + eps * t, x, t) for x, t in
                 zip(xs, ts, strict=True))


def _tolerance(leaves: Sequence[Any], table: dict[str, float]) -> float:
    names = [dtype_name(x.dtype) for x in leaves if hasattr(x, "dtype")]
    return max((table.get(n, table["float64"]) for n in names), default=table["float64"])


def _assert_close(got: float, want: float, atol: float, rtol: float, what: str) -> None:
    # Written as "not <=" so that a NaN on either side fails: every comparison with NaN
    # is false.
    if not abs(got - want) <= atol + rtol * abs(want):
        raise AssertionError(
            f"{what}: unijax gives {got!r}, finite differences give {want!r} "
            f"(|difference| {abs(got - want):.3g} > atol {atol:g} + rtol {rtol:g} * |want|)"
        )


def _name(fun: Any) -> str:
    return getattr(fun, "__name__", None) or repr(fun)


def _numbers(x: Any) -> Any:
    """``x`` as a NumPy array of numbers: Autograd's higher derivatives can come back as
    arrays of Python objects, which NumPy's ``isnan`` refuses."""
    import numpy as np

    a = np.asarray(to_numpy(x))
    if a.dtype.kind != "O":
        return a
    try:
        return a.astype(np.float64)
    except TypeError:  # complex elements
        return a.astype(np.complex128)


def _first(mask: Any) -> tuple[int, ...]:
    """The index of the first true element of a boolean array (``()`` for a 0-d one)."""
    import numpy as np

    return tuple(int(i) for i in np.argwhere(mask)[0])


def _part(kind: str, i: int, count: int) -> str:
    """``" leaf 1"``: which leaf of several a message is about (nothing for one)."""
    return f" {kind} {i}" if count > 1 else ""


def _assert_finite_differences(want: Any, got: Any, where: str) -> None:
    """Fail where the finite differences are NaN or infinite: nothing can be checked there.

    ``got`` is unijax's derivative at the same elements, or None where unijax computes
    another quantity (reverse mode).
    """
    import numpy as np

    bad = ~np.isfinite(want)
    if bad.any():
        at = _first(bad)
        beside = "" if got is None else f" (unijax gives {got[at].item()!r})"
        raise AssertionError(message(
            f"{where}, element {at}: the finite differences are not finite",
            got=f"{want[at].item()!r}{beside}",
            fix="The function is not finite within eps of the point, so its derivative "
                "cannot be checked there: check at another point, or with a smaller eps."))


def _assert_finite_jvp(got: Any, want: Any, where: str) -> None:
    """Fail where unijax's derivative is NaN or infinite and the finite differences not."""
    import numpy as np

    bad = ~np.isfinite(got) & np.isfinite(want)
    if bad.any():
        at = _first(bad)
        raise AssertionError(message(
            f"{where}, element {at}: unijax's derivative is not finite",
            expected=f"about {want[at].item()!r} (finite differences)",
            got=repr(got[at].item())))


def _assert_finite_vjp(got: Any, fd_finite: bool, where: str) -> None:
    """Fail where a cotangent is NaN, or infinite while every finite difference is finite.

    The finite differences are of the outputs along one direction, not of each input
    element, so only "all finite" can be compared with a cotangent's elements.
    """
    import numpy as np

    bad = np.isnan(got) | (np.isinf(got) & fd_finite)
    if bad.any():
        at = _first(bad)
        raise AssertionError(message(
            f"{where}, element {at}: unijax's derivative is not finite",
            expected="a finite value" + (" (the finite differences are finite)"
                                         if fd_finite else ""),
            got=repr(got[at].item())))


def check_grads(f: Callable[..., Any], args: Sequence[Any], order: int = 2,
                modes: Sequence[str] = ("fwd", "rev"), *, atol: float | None = None,
                rtol: float | None = None, eps: float | None = None, seed: int = 0) -> None:
    """Check derivatives of ``f`` at ``args`` against central finite differences.

    For each order up to ``order``, along random directions ``t`` and cotangents ``c``:
    forward mode checks ``jvp(f)(t) ≈ D(eps)``; reverse mode checks
    ``<vjp(f)(c), t> ≈ <c, D(eps)>``, where ``D`` is the central difference
    ``(f(x + epst) - f(x - epst)) / 2eps`` refined by one Richardson step
    (``(4 D(eps/2) - D(eps)) / 3``, error of order ``eps^4``), so that higher derivatives of
    steep functions are not mistaken for errors. Higher orders apply the same checks to
    the directional derivative itself.

    Every element of every computed derivative (each JVP output, each VJP cotangent) must
    be finite where the finite differences are, and the finite differences must be finite:
    a NaN fails the check, naming the output or argument and the element, even where it
    would vanish from the inner product of reverse mode.

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
        AssertionError: a derivative disagrees, with both values in the message; or a
            derivative or a finite difference is NaN or infinite, with the element.
        ValueError: ``modes`` names something else.

    Example:
        >>> import numpy as np
        >>> from unijax.testing import check_grads
        >>> check_grads(lambda x: x ** 3, (np.asarray([0.5, 2.0]),))
        >>> check_grads(lambda x: abs(x), (np.asarray([0.0]),), order=1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        AssertionError: order-1 JVP of <lambda>: ...
    """
    import numpy as np

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

    def central(fun: Callable[..., Any], point: tuple[Any, ...], t: tuple[Any, ...],
                h: float) -> Any:
        plus = fun(*_scaled_add(point, t, h))
        minus = fun(*_scaled_add(point, t, -h))

        def difference(p: Any, m: Any) -> Any:
            # inf - inf is NaN: reported with its element below, not as NumPy's warning.
            with np.errstate(invalid="ignore", over="ignore"):
                return (np.asarray(to_numpy(p)) - np.asarray(to_numpy(m))) / (2 * h)

        return tree_util.tree_map(difference, plus, minus)

    def numerical(fun: Callable[..., Any], point: tuple[Any, ...], t: tuple[Any, ...]) -> Any:
        coarse, fine = central(fun, point, t, eps), central(fun, point, t, eps / 2)
        with np.errstate(invalid="ignore", over="ignore"):
            return tree_util.tree_map(lambda c, f: (4 * f - c) / 3, coarse, fine)

    def check(fun: Callable[..., Any], point: tuple[Any, ...], k: int) -> None:
        t = rand(point)
        fd = numerical(fun, point, t)
        fd_leaves = [_numbers(w) for w in tree_util.tree_leaves(fd)]
        if "fwd" in modes:
            what = f"order-{k} JVP of {_name(fun)}"
            _, t_out = jvp(fun, point, t)
            for i, (got, want_np) in enumerate(zip(tree_util.tree_leaves(t_out), fd_leaves,
                                                   strict=True)):
                got_np = _numbers(got)
                where = f"{what}, output {i}"
                _assert_finite_jvp(got_np, want_np, where)
                _assert_finite_differences(want_np, got_np, where)
                err = np.max(np.abs(got_np - want_np), initial=0.0)
                bound = atol + rtol * np.max(np.abs(want_np), initial=0.0)
                if not err <= bound:  # NaN fails too
                    raise AssertionError(
                        f"{what}: max |unijax - finite differences| "
                        f"= {err:.3g} > {bound:.3g}\nunijax: {got_np}\n"
                        f"finite differences: {want_np}"
                    )
        if "rev" in modes:
            what = f"order-{k} VJP of {_name(fun)}"
            out, pullback = vjp(fun, *point)
            c = rand(out)
            ct = pullback(c)
            # A NaN in one element of the cotangent makes the inner product below NaN,
            # which no tolerance comparison catches reliably: check every element.
            fd_finite = all(bool(np.all(np.isfinite(w))) for w in fd_leaves)
            for a, arg_ct in enumerate(ct):
                ct_leaves = tree_util.tree_leaves(arg_ct)
                for j, leaf in enumerate(ct_leaves):
                    _assert_finite_vjp(_numbers(leaf), fd_finite,
                                       f"{what}, argument {a}{_part('leaf', j, len(ct_leaves))}")
            for i, want_np in enumerate(fd_leaves):
                _assert_finite_differences(want_np, None, f"{what}, output {i}")
            _assert_close(_inner(ct, t), _inner(c, fd), atol, rtol, what)
        if k < order:
            t_next = rand(point)
            if "fwd" in modes:
                check(lambda *p: jvp(fun, p, t_next)[1], point, k + 1)
            if "rev" in modes:
                out, _ = vjp(fun, *point)
                c_next = rand(out)
                check(lambda *p: vjp(fun, *p)[1](c_next), point, k + 1)

    check(f, args, 1)


# --- vmap and jit -----------------------------------------------------------------------------


def _assert_trees_close(got: Any, want: Any, rtol: float, atol: float, what: str) -> None:
    import numpy as np

    got_leaves, got_def = tree_util.tree_flatten(got)
    want_leaves, want_def = tree_util.tree_flatten(want)
    if got_def != want_def:
        raise AssertionError(f"{what}: output structure {got_def}, expected {want_def}")
    for i, (g, w) in enumerate(zip(got_leaves, want_leaves, strict=True)):
        np.testing.assert_allclose(np.asarray(to_numpy(g)), np.asarray(to_numpy(w)),
                                   rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=f"{what}, output leaf {i}")


def _axis_of(axis: int | None, ndim: int) -> int | None:
    return None if axis is None else axis % ndim if ndim else 0


def _take(x: Any, axis: int, i: int) -> Any:
    # A trailing Ellipsis: the standard requires every axis to be indexed otherwise.
    return x[(slice(None),) * axis + (i, ...)]


def check_vmap(fn: Callable[..., Any], args: Sequence[Any], in_axes: Any = 0,
               out_axes: Any = 0, *, rtol: float | None = None, atol: float | None = None,
               axis_size: int | None = None) -> None:
    """Check that ``vmap(fn, in_axes, out_axes)`` equals stacking ``fn`` over a Python loop.

    Example ``i`` of the loop indexes every mapped argument at ``i`` along its axis in
    ``in_axes``; the results are stacked along their ``out_axes`` (an output with
    ``out_axes=None`` must be the same for every example).

    Args:
        fn: The function to map.
        args: The batched arguments (pytrees), arrays of any backend.
        in_axes: As in :func:`unijax.vmap`: an int, None or a pytree prefix of ``args``.
        out_axes: As in :func:`unijax.vmap`.
        rtol: Relative tolerance (default from the inputs' dtype).
        atol: Absolute tolerance (default from the inputs' dtype).
        axis_size: The batch size when no argument is mapped.

    Raises:
        AssertionError: The batched result differs from the loop.

    Example:
        >>> import numpy as np
        >>> from unijax.testing import check_vmap
        >>> check_vmap(lambda x, w: x @ w, (np.ones((4, 3)), np.ones((3, 2))), (0, None))
        >>> check_vmap(lambda x: x.T, (np.ones((2, 3, 5)),), in_axes=2, out_axes=1)
    """
    import numpy as np

    args = tuple(args)
    axes_spec = tuple(in_axes) if isinstance(in_axes, list) else in_axes
    if not isinstance(axes_spec, tuple):
        axes_spec = (axes_spec,) * len(args)
    leaves, treedef = tree_util.tree_flatten(args)
    axes = tree_util.broadcast_prefix(axes_spec, args, is_leaf=lambda x: x is None)
    axes = [_axis_of(a, len(x.shape)) if hasattr(x, "shape") else None
            for a, x in zip(axes, leaves, strict=True)]
    sizes = {x.shape[a] for a, x in zip(axes, leaves, strict=True) if a is not None}
    size = axis_size if not sizes else sizes.pop()
    if size is None:
        raise ValueError("check_vmap: no argument is mapped; pass axis_size")
    rtol = rtol if rtol is not None else _tolerance(leaves, _SAME_MATH_TOL)
    atol = atol if atol is not None else _tolerance(leaves, _SAME_MATH_TOL)

    got = vmap(fn, in_axes=in_axes, out_axes=out_axes, axis_size=axis_size)(*args)
    examples = []
    for i in range(size):
        sliced = [x if a is None else _take(x, a, i) for a, x in zip(axes, leaves, strict=True)]
        examples.append(fn(*tree_util.tree_unflatten(treedef, sliced)))
    out_def = tree_util.tree_structure(examples[0])
    per_leaf = tree_util.broadcast_prefix(out_axes, examples[0], is_leaf=lambda x: x is None)
    columns = zip(*(tree_util.tree_leaves(e) for e in examples), strict=True)
    stacked = []
    for axis, column in zip(per_leaf, columns, strict=True):
        values = [np.asarray(to_numpy(v)) for v in column]
        if axis is None:
            for v in values[1:]:
                _assert_trees_close(v, values[0], rtol, atol,
                                    f"check_vmap({_name(fn)}): an out_axes=None output varies")
            stacked.append(values[0])
        else:
            stacked.append(np.stack(values, axis=axis % (values[0].ndim + 1)))
    want = tree_util.tree_unflatten(out_def, stacked)
    _assert_trees_close(got, want, rtol, atol,
                        f"vmap({_name(fn)}, in_axes={in_axes!r}, out_axes={out_axes!r}) "
                        "against a Python loop")


def check_jit(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any] | None = None,
              *, static_argnums: int | Sequence[int] | None = None,
              static_argnames: str | Sequence[str] | None = None, rtol: float | None = None,
              atol: float | None = None, calls: int = 2) -> None:
    """Check that ``jit(fn)`` equals ``fn`` evaluated eagerly.

    The compiled function is called ``calls`` times, so both the call that traces and
    compiles and the calls that reuse the compiled program are compared.

    Args:
        fn: The function.
        args: Positional arguments (pytrees), arrays of any backend.
        kwargs: Keyword arguments.
        static_argnums: As in :func:`unijax.jit`.
        static_argnames: As in :func:`unijax.jit`.
        rtol: Relative tolerance (default from the inputs' dtype).
        atol: Absolute tolerance (default from the inputs' dtype).
        calls: How often the compiled function is called.

    Raises:
        AssertionError: A compiled result differs from the eager one.

    Example:
        >>> import numpy as np
        >>> from unijax.testing import check_jit
        >>> check_jit(lambda x, n: x ** n + 1.0, (np.arange(3.0), 2), static_argnums=1)
    """
    kwargs = dict(kwargs or {})
    leaves = tree_util.tree_leaves((args, kwargs))
    rtol = rtol if rtol is not None else _tolerance(leaves, _SAME_MATH_TOL)
    atol = atol if atol is not None else _tolerance(leaves, _SAME_MATH_TOL)
    want = fn(*args, **kwargs)
    jitted = jit(fn, static_argnums=static_argnums, static_argnames=static_argnames)
    for call in range(1, calls + 1):
        _assert_trees_close(jitted(*args, **kwargs), want, rtol, atol,
                            f"jit({_name(fn)}) call {call} against eager evaluation")


# --- every backend ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Disagreement:
    """How far one transform on one backend is from the NumPy reference.

    Attributes:
        backend: The backend's name.
        transform: ``"value"``, ``"grad"``, ``"vmap"`` or ``"jit"``.
        max_abs: The largest absolute difference over every output element.
        max_rel: The largest difference relative to the reference's magnitude.
        ok: Whether every element is within ``atol + rtol * |reference|``.
        error: The exception the backend raised (``"TypeError: ..."``), or None.
    """

    backend: str
    transform: str
    max_abs: float = 0.0
    max_rel: float = 0.0
    ok: bool = True
    error: str | None = None

    def cell(self) -> str:
        """The table cell: the largest absolute difference, or the error."""
        if self.error is not None:
            return f"error: {self.error}"
        return f"{self.max_abs:.2g}" + ("" if self.ok else " (too large)")


@dataclass
class BackendReport:
    """What :func:`check_backends` found: one :class:`Disagreement` per backend x transform.

    Attributes:
        function: The checked function's name.
        reference: The reference backend (``"numpy"``).
        rows: The disagreements, by backend then transform.
        skipped: Backends that could not run here, with the reason.
        rtol: The relative tolerance used.
        atol: The absolute tolerance used.
    """

    function: str
    reference: str
    rows: list[Disagreement] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    rtol: float = 0.0
    atol: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every backend agrees with the reference on every transform."""
        return all(row.ok for row in self.rows)

    def worst(self) -> Disagreement | None:
        """The failing entry with the largest difference (errors first), or None."""
        failing = [row for row in self.rows if not row.ok]
        return max(failing, key=lambda r: (r.error is not None, r.max_abs), default=None)

    def __str__(self) -> str:
        transforms = [t for t in _TRANSFORMS if any(r.transform == t for r in self.rows)]
        backends = list(dict.fromkeys(r.backend for r in self.rows))
        cells = {(r.backend, r.transform): r.cell() for r in self.rows}
        header = ["backend", *transforms]
        table = [header] + [[b, *(cells.get((b, t), "-") for t in transforms)]
                            for b in backends]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        lines = [f"check_backends({self.function}): largest |difference| from "
                 f"{self.reference} (rtol={self.rtol:g}, atol={self.atol:g})"]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                  for row in table]
        lines += [f"{name}: skipped ({why})" for name, why in self.skipped.items()]
        lines.append("all agree" if self.ok else "DISAGREEMENT: see the cells marked above")
        return "\n".join(lines)


def _run(fn: Callable[..., Any], args: tuple[Any, ...], transform: str, backend: str,
         argnums: int | Sequence[int]) -> Any:
    converted = unijax.to_backend(args, backend)
    if transform == "value":
        # The plain call runs as unijax's own calls do on that backend: under the dtype
        # policy's scope (JAX without x64 would otherwise compute float64 data in float32).
        with unijax.use_backend(backend), backend_scope(get_backend(backend)):
            return fn(*converted)
    if transform == "grad":
        return unijax.grad(fn, argnums=argnums, backend=backend)(*converted)
    if transform == "vmap":
        return unijax.vmap(fn, backend=backend)(*converted)
    return unijax.jit(fn, backend=backend)(*converted)


def _compare(got: Any, want: Any, rtol: float, atol: float) -> tuple[float, float, bool]:
    import numpy as np

    got_leaves, got_def = tree_util.tree_flatten(got)
    want_leaves, want_def = tree_util.tree_flatten(want)
    if got_def != want_def:
        return math.inf, math.inf, False
    worst_abs = worst_rel = 0.0
    ok = True
    for g, w in zip(got_leaves, want_leaves, strict=True):
        g_np = np.asarray(to_numpy(g)).astype(np.complex128)
        w_np = np.asarray(to_numpy(w)).astype(np.complex128)
        if g_np.shape != w_np.shape:
            return math.inf, math.inf, False
        # Equal values agree (NaN with NaN, an infinity with the same one); any other pair
        # holding a NaN or an infinity is infinitely far apart. Left as NaN, the difference
        # would compare false with the bound and vanish from the maximum; an infinite
        # reference would make the bound infinite and accept any value.
        same = (g_np == w_np) | (np.isnan(g_np) & np.isnan(w_np))
        finite = np.isfinite(g_np) & np.isfinite(w_np)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.where(same, 0.0, np.where(finite, np.abs(g_np - w_np), np.inf))
            scale = np.where(finite, np.abs(w_np), 0.0)
            if diff.size:
                worst_abs = max(worst_abs, float(np.max(diff)))
                tiny = np.finfo(np.float64).tiny
                worst_rel = max(worst_rel, float(np.max(diff / np.maximum(scale, tiny))))
                ok = ok and bool(np.all(diff <= atol + rtol * scale))
    return worst_abs, worst_rel, ok


def check_backends(fn: Callable[..., Any], *args: Any,
                   transforms: Sequence[str] = ("value", "grad"),
                   backends: Sequence[str] | None = None, rtol: float = 1e-7,
                   atol: float = 1e-9, argnums: int | Sequence[int] = 0) -> BackendReport:
    """Run ``fn`` and its transforms on every backend and compare with NumPy.

    ``args`` (NumPy arrays, Python scalars, pytrees of them) are converted to each backend
    with :func:`unijax.to_backend`. The transforms are ``"value"`` (``fn`` itself),
    ``"grad"`` (``grad(fn, argnums)``: ``fn`` must return a scalar), ``"vmap"``
    (``vmap(fn)`` over axis 0 of every argument) and ``"jit"``. The reference is the
    same transform on the ``numpy`` backend. Errors are recorded, not raised, so one
    broken backend does not hide the others.

    Args:
        fn: The function, written against the Array API (``array_namespace(x)``).
        *args: Its arguments, as NumPy data.
        transforms: Which of ``"value"``, ``"grad"``, ``"vmap"``, ``"jit"`` to run.
        backends: The backends to compare (default: every installed, available one).
        rtol: Relative tolerance of an agreement.
        atol: Absolute tolerance of an agreement.
        argnums: Differentiated argument(s) for ``"grad"``.

    Returns:
        A :class:`BackendReport`; ``report.ok`` says whether all agree, ``print(report)``
        shows the table.

    Raises:
        ValueError: An unknown transform name.

    Example:
        >>> import numpy as np
        >>> from array_api_compat import array_namespace
        >>> from unijax.testing import check_backends
        >>> def loss(w):
        ...     xp = array_namespace(w)
        ...     return xp.sum(xp.tanh(w) ** 2)
        >>> report = check_backends(loss, np.linspace(-1.0, 1.0, 5), backends=["numpy"])
        >>> report.ok
        True
        >>> print(report)
        check_backends(loss): largest |difference| from numpy (rtol=1e-07, atol=1e-09)
        backend  value  grad
        numpy    0      0
        all agree
    """
    unknown = [t for t in transforms if t not in _TRANSFORMS]
    if unknown:
        raise ValueError(f"check_backends: unknown transforms {unknown}; use any of "
                         f"{', '.join(_TRANSFORMS)}")

    reference = "numpy"
    report = BackendReport(_name(fn), reference, rtol=rtol, atol=atol)
    names = list(backends) if backends is not None else _get().installed()
    for name in list(names):
        try:
            get_backend(name)
        except UnijaxError as err:
            report.skipped[name] = f"{type(err).__name__}: {err}"
            names.remove(name)
    for transform in transforms:
        want = _run(fn, args, transform, reference, argnums)
        for name in names:
            try:
                got = _run(fn, args, transform, name, argnums)
            except Exception as err:  # recorded per cell: one backend must not hide others
                report.rows.append(Disagreement(name, transform, math.inf, math.inf, False,
                                                f"{type(err).__name__}: {err}"))
                continue
            report.rows.append(Disagreement(name, transform, *_compare(got, want, rtol, atol)))
    report.rows.sort(key=lambda r: (names.index(r.backend), _TRANSFORMS.index(r.transform)))
    return report
