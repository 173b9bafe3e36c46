"""Structured control flow on every backend: JAX's ``lax`` constructs and ``checkpoint``.

``cond``, ``switch``, ``while_loop``, ``fori_loop``, ``scan`` and ``map`` have
``jax.lax``'s signatures and semantics, pytrees included. Each call picks its backend as
the transforms do (from the operands and the configuration):

* on JAX they are ``jax.lax``'s own (and :func:`checkpoint` is ``jax.checkpoint``);
* on a backend whose transforms trace eagerly (Autograd), they run as Python loops on its
  values, so its native ``grad`` differentiates them;
* everywhere else (NumPy, array-api-strict, CuPy, any plugin), and inside any engine
  transform, each is one engine primitive whose body is staged once: ``jit`` compiles it
  to a loop, so the program does not grow with the trip count.

Misuse raises the same error on every backend: a branch or carry whose types do not
match raises :class:`~unijax.errors.ControlFlowError`; reverse mode through
``while_loop`` raises :class:`~unijax.errors.UnsupportedTransformError`.

Example:
    >>> import numpy as np
    >>> from unijax import lax
    >>> def step(total, x):
    ...     return total + x, total
    >>> total, partial_sums = lax.scan(step, 0.0, np.arange(4.0))
    >>> float(total), partial_sums.tolist()
    (6.0, [0.0, 0.0, 1.0, 3.0])
    >>> float(lax.fori_loop(0, 5, lambda i, x: x * 2.0, np.float64(1.0)))
    32.0
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

from unijax import _bridge  # noqa: F401  (the engine computes with the backends' namespaces)
from unijax._fast_paths import raise_translated
from unijax._python_loops import PythonLoops
from unijax._validate import fun_name, normalize_argnums
from unijax.dispatch.backend import PYTHON_LOOPS
from unijax.dispatch.selection import prepare_call
from unijax.engine import lax as _engine
from unijax.engine.core import Tracer, tracing
from unijax.engine.ir import dtype_kind
from unijax.errors import ArgnumsError, ShapeError, TransformArgumentError, message
from unijax.tree_util import tree_leaves

__all__ = ["checkpoint", "cond", "fori_loop", "map", "remat", "scan", "switch", "while_loop"]

_ENGINE = "engine"
#: The most iterations a loop may be given: the largest int64, as JAX's index type.
_MAX_LENGTH = 2**63 - 1


def _route(operands: tuple[Any, ...], api: str) -> tuple[str, Any, Any, tuple[Any, ...]]:
    """``(kind, implementation, backend, operands)``: who runs this construct, and the
    operands brought to its backend. ``kind`` is ``"engine"``, ``"native"`` or
    ``"python"``."""
    backend, use_engine, operands = prepare_call(operands, None, api)
    if use_engine:
        return _ENGINE, None, backend, operands
    native = backend.native_transforms.lax
    if native is None:
        if tracing():
            return _ENGINE, None, backend, operands
        # Outside every transform the values are concrete: a plain loop computes them, and
        # code that closes over the namespace of a concrete array keeps working.
        native = PYTHON_LOOPS
    if native == PYTHON_LOOPS or (isinstance(native, type) and issubclass(native, PythonLoops)):
        loops = PythonLoops if native == PYTHON_LOOPS else native
        return "python", loops(backend.namespace, backend.extras.get("is_tracer")), backend, \
            operands
    return "native", native, backend, operands


def _native_call(backend: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except Exception as err:
        raise_translated(backend, err)
        raise


def _check_callable(fun: Any, api: str, what: str) -> None:
    if not callable(fun):
        raise TransformArgumentError(message(
            f"{api}: {what} must be a function", got=type(fun).__name__,
            fix=f"Pass a callable as {what}."))


def _check_int(value: Any, what: str, api: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TransformArgumentError(message(
            f"{api}: {what} must be a Python int", got=repr(value),
            fix=f"Pass an int for {what}.")) from None


def _static_int(value: Any) -> int | None:
    """``value`` as a Python int if it is one known now, else ``None``.

    A 0-d integer array is known now unless ``jit`` or ``vmap`` traces it: a value an
    eager transform holds without differentiating it (an argument ``grad`` does not
    differentiate) stays concrete, as in JAX.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    shape = getattr(value, "shape", None)
    if shape is None or tuple(shape) != () or dtype_kind(value.dtype) != "integral":
        return None
    if isinstance(value, Tracer) and value._differentiated():
        return None
    try:
        return operator.index(value)
    except Exception:  # a traced value (each library raises its own error)
        return None


def _check_length(value: int, what: str, api: str) -> int:
    if not 0 <= value <= _MAX_LENGTH:
        raise TransformArgumentError(message(
            f"{api}: {what} must be a number of iterations between 0 and 2**63 - 1",
            got=repr(value), fix=f"Pass a non-negative {what} that fits in an int64."))
    return value


# --- scan and map -----------------------------------------------------------------------------


def scan(f: Callable[[Any, Any], tuple[Any, Any]], init: Any, xs: Any = None,
         length: int | None = None, reverse: bool = False, unroll: int | bool = 1) -> Any:
    """Loop ``f`` over the leading axis of ``xs``, carrying state: ``jax.lax.scan``.

    Semantically ``carry = init; for x in xs: carry, y = f(carry, x)``, returning the final
    carry and the ``y``\\ s stacked along a new leading axis.

    Args:
        f: ``f(carry, x) -> (carry, y)``; the carry keeps its structure, shapes and dtypes.
        init: The initial carry (a pytree).
        xs: A pytree of arrays scanned along their leading axis, or ``None``.
        length: The number of iterations; required when ``xs`` is ``None``.
        reverse: Run from the last element to the first (``ys`` keep ``xs``' order).
        unroll: Accepted for JAX compatibility; it never changes a result.

    Returns:
        ``(final_carry, stacked_ys)``.

    Raises:
        TransformArgumentError: ``f`` is not callable, ``xs`` leaves disagree on their
            length or ``length`` is missing, inconsistent, negative or beyond
            ``2**63 - 1``.
        ControlFlowError: The carry ``f`` returns differs in structure, shape or dtype.

    Example:
        >>> import numpy as np
        >>> from unijax import lax
        >>> final, ys = lax.scan(lambda c, x: (c * x, c), 1.0, np.asarray([2.0, 3.0, 4.0]))
        >>> float(final), ys.tolist()
        (24.0, [1.0, 2.0, 6.0])
    """
    _check_callable(f, "scan", "f")
    api = f"scan({fun_name(f)})"
    n = _scan_length(xs, length, api)
    if not isinstance(unroll, bool):
        _check_int(unroll, "unroll", api)
    kind, impl, backend, (init, xs) = _route((init, xs), api)
    if kind == "native":
        return _native_call(backend, impl.scan, f, init, xs, length=length,
                            reverse=bool(reverse), unroll=unroll)
    if kind == "python" and (n or backend.native_transforms.lax is not None):
        return impl.scan(f, init, xs, n, bool(reverse))
    # (A loop of no iterations stages its body to learn the shapes of what it stacks.)
    return _engine.scan(f, init, xs, n, bool(reverse))


def _scan_length(xs: Any, length: int | None, api: str) -> int:
    lengths = set()
    for leaf in tree_leaves(xs):
        shape = getattr(leaf, "shape", None)
        if shape is None or len(shape) == 0:
            raise TransformArgumentError(message(
                f"{api}: every leaf of xs must be an array with a leading axis to scan over",
                got=f"a {type(leaf).__name__} of shape {shape}" if shape is not None
                else type(leaf).__name__,
                fix="Pass arrays of rank >= 1, or close over constants instead."))
        if shape[0] != shape[0]:  # nan: dask's unknown chunk sizes (after x[mask])
            raise ShapeError(message(
                f"{api}: a leaf of xs has an unknown leading size (shape {tuple(shape)}), "
                "as boolean masking or another data-dependent operation leaves it; the "
                "number of iterations must be known before the loop runs",
                fix="Compute the sizes first (dask: x.compute_chunk_sizes()), or keep "
                    "shapes static: xp.where(mask, x, 0) instead of x[mask]."))
        lengths.add(int(shape[0]))
    if length is not None:
        length = _check_length(_check_int(length, "length", api), "length", api)
        lengths.add(length)
    if len(lengths) > 1:
        raise TransformArgumentError(message(
            f"{api}: the leaves of xs (and length) disagree on the number of iterations",
            got=f"leading sizes {sorted(lengths)}",
            fix="Give every leaf of xs the same leading size."))
    if not lengths:
        raise TransformArgumentError(message(
            f"{api}: with xs=None, the number of iterations must be given",
            fix="Pass length=N."))
    return lengths.pop()


def map(f: Callable[[Any], Any], xs: Any, *, batch_size: int | None = None) -> Any:
    """Apply ``f`` to each slice of ``xs`` along its leading axis: ``jax.lax.map``.

    A ``scan`` with no carry; ``batch_size`` is accepted for JAX compatibility.

    Example:
        >>> import numpy as np
        >>> from unijax import lax
        >>> lax.map(lambda row: row @ row, np.arange(6.0).reshape(3, 2)).tolist()
        [1.0, 13.0, 41.0]
    """
    _check_callable(f, "map", "f")
    if batch_size is not None:
        _check_int(batch_size, "batch_size", f"map({fun_name(f)})")

    def step(carry: None, x: Any) -> tuple[None, Any]:
        return None, f(x)

    functools.update_wrapper(step, f, updated=())
    return scan(step, None, xs)[1]


# --- loops ------------------------------------------------------------------------------------


def while_loop(cond_fun: Callable[[Any], Any], body_fun: Callable[[Any], Any],
               init_val: Any) -> Any:
    """Repeat ``body_fun`` while ``cond_fun`` holds: ``jax.lax.while_loop``.

    Forward mode (``jvp``, ``jacfwd``) and ``vmap`` work through it; reverse mode does
    not (use :func:`fori_loop` with int bounds, or :func:`scan`). Under ``vmap`` with a
    predicate that differs between examples, the loop runs until every example is done
    and each example keeps its carry once its own predicate is false.

    Example:
        >>> import numpy as np
        >>> from unijax import lax
        >>> int(lax.while_loop(lambda x: x < 100, lambda x: x * 3, np.int64(1)))
        243
    """
    _check_callable(cond_fun, "while_loop", "cond_fun")
    _check_callable(body_fun, "while_loop", "body_fun")
    api = f"while_loop({fun_name(body_fun)})"
    kind, impl, backend, (init_val,) = _route((init_val,), api)
    if kind == "native":
        return _native_call(backend, impl.while_loop, cond_fun, body_fun, init_val)
    if kind == "python":
        return impl.while_loop(cond_fun, body_fun, init_val)
    return _engine.while_loop(cond_fun, body_fun, init_val)


def fori_loop(lower: Any, upper: Any, body_fun: Callable[[Any, Any], Any], init_val: Any,
              *, unroll: int | bool | None = None) -> Any:
    """``for i in range(lower, upper): val = body_fun(i, val)``: ``jax.lax.fori_loop``.

    With bounds known when it is called (Python ints, or 0-d integer arrays that no
    ``jit`` or ``vmap`` traces) it is a :func:`scan` (so reverse mode works); with traced
    bounds, a :func:`while_loop`. A Python scalar in ``init_val`` is weakly typed, as in
    JAX: an ``int`` stays an integer unless the body returns a float for it.

    Example:
        >>> import numpy as np
        >>> from unijax import lax
        >>> float(lax.fori_loop(1, 5, lambda i, acc: acc * i, np.float64(1.0)))
        24.0
    """
    _check_callable(body_fun, "fori_loop", "body_fun")
    api = f"fori_loop({fun_name(body_fun)})"
    start, stop = _static_int(lower), _static_int(upper)
    static = start is not None and stop is not None
    if start is not None and stop is not None:
        _check_length(max(stop - start, 0), "upper - lower", api)
        if not (-_MAX_LENGTH - 1 <= start <= _MAX_LENGTH and
                -_MAX_LENGTH - 1 <= stop <= _MAX_LENGTH):
            raise TransformArgumentError(message(
                f"{api}: the bounds must fit in an int64 (the loop index's dtype)",
                got=f"lower={start!r}, upper={stop!r}", fix="Pass smaller bounds."))
    kind, impl, backend, (lower, upper, init_val) = _route((lower, upper, init_val), api)
    if kind == "native":
        extra = {} if unroll is None else {"unroll": unroll}
        return _native_call(backend, impl.fori_loop, lower, upper, body_fun, init_val, **extra)
    if static:
        # Known now (even as an argument grad does not differentiate): the loop is a scan
        # of fixed length, as in JAX, so reverse mode goes through it.
        lower, upper = start, stop
    if kind == "python":
        return impl.fori_loop(lower, upper, body_fun, init_val, static)
    return _engine.fori_loop(lower, upper, body_fun, init_val, static)


# --- branches ---------------------------------------------------------------------------------


def switch(index: Any, branches: Sequence[Callable[..., Any]], *operands: Any) -> Any:
    """Apply ``branches[index]`` to ``operands``: ``jax.lax.switch``.

    ``index`` is clamped to ``[0, len(branches) - 1]``. Every branch must return the same
    structure, shapes and dtypes. Under ``vmap`` with an index that differs between
    examples, every branch runs and each example takes its own branch's result.

    Example:
        >>> import numpy as np
        >>> from unijax import lax
        >>> float(lax.switch(1, [lambda x: x + 1, lambda x: x * 10], np.float64(2.0)))
        20.0
    """
    branches = list(branches) if isinstance(branches, Sequence) else branches
    if not isinstance(branches, list) or not branches:
        raise TransformArgumentError(message(
            "switch: branches must be a non-empty sequence of functions",
            got=type(branches).__name__, fix="Pass a list of callables."))
    for k, branch in enumerate(branches):
        _check_callable(branch, "switch", f"branches[{k}]")
    _check_scalar_index(index, "switch", integer=True)
    if isinstance(index, int):  # clamped now: no backend need hold a huge Python int
        index = min(max(index, 0), len(branches) - 1)
    return _branch(index, branches, operands, "switch")


def cond(pred: Any, true_fun: Callable[..., Any], false_fun: Callable[..., Any],
         *operands: Any) -> Any:
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``: ``jax.lax.cond``.

    Both functions must return the same structure, shapes and dtypes; only one runs. As
    in JAX (and Python's truthiness), any nonzero ``pred`` takes ``true_fun``: ``-1`` and
    ``0.5`` included.

    Example:
        >>> import numpy as np
        >>> from unijax import lax
        >>> float(lax.cond(np.asarray(3.0) > 0, lambda x: x, lambda x: -x, np.float64(-2.0)))
        -2.0
    """
    _check_callable(true_fun, "cond", "true_fun")
    _check_callable(false_fun, "cond", "false_fun")
    _check_scalar_index(pred, "cond", integer=False)
    if isinstance(pred, bool | int):
        pred = int(bool(pred))
    return _branch(pred, [false_fun, true_fun], operands, "cond")


def _check_scalar_index(index: Any, api: str, *, integer: bool) -> None:
    shape = getattr(index, "shape", ())
    what = "index" if integer else "pred"
    if isinstance(index, float | complex) or tuple(shape) != ():
        raise TransformArgumentError(message(
            f"{api}: {what} must be a scalar {'integer' if integer else 'boolean'}",
            got=repr(index) if not hasattr(index, "shape") else f"an array of shape {shape}",
            fix=f"Pass a 0-d array or a Python {'int' if integer else 'bool'}."))
    dtype = getattr(index, "dtype", None)
    if dtype is None:
        return
    kind = dtype_kind(dtype)
    # As in JAX: a switch index is an integer; a pred is a boolean or a real number.
    refused = ("real floating", "complex floating") if integer else ("complex floating",)
    if kind in refused:
        raise TransformArgumentError(message(
            f"{api}: {what} must be {'an integer' if integer else 'a boolean or real'} "
            "scalar", got=f"a 0-d array of dtype {dtype}",
            fix="Cast it (xp.astype(index, xp.int32))" if integer
            else "Compare it (x != 0, x > 0) to make a boolean."))


def _branch(index: Any, branches: list[Callable[..., Any]], operands: tuple[Any, ...],
            api: str) -> Any:
    kind, impl, backend, (index, operands) = _route((index, operands), api)
    if kind == "native":
        if api == "cond":
            return _native_call(backend, impl.cond, index, branches[1], branches[0], *operands)
        return _native_call(backend, impl.switch, index, branches, *operands)
    if api == "cond" and hasattr(index, "shape"):
        index = _as_int_index(index, backend.namespace)
    if kind == "python":
        return impl.switch(index, branches, operands, api)
    return _engine.switch(index, branches, operands, api)


def _as_int_index(pred: Any, xp: Any) -> Any:
    """A 0-d array ``pred`` as the branch index ``cond`` takes: 1 where it is nonzero."""
    if isinstance(pred, Tracer):
        xp = pred.__array_namespace__()
    truth = pred if dtype_kind(pred.dtype) == "bool" else pred != 0
    return xp.astype(truth, xp.int32)


# --- checkpoint -------------------------------------------------------------------------------


def checkpoint(fun: Callable[..., Any], *, prevent_cse: bool = True, policy: Any = None,
               static_argnums: int | Sequence[int] = ()) -> Callable[..., Any]:
    """``fun``, recomputed in reverse mode instead of stored: ``jax.checkpoint``.

    Values and derivatives are unchanged. Under ``grad``, the tape keeps only the inputs
    of a checkpointed call, and its intermediates are recomputed during the backward
    pass: a chain of checkpointed segments holds one segment's intermediates at a time.

    Args:
        fun: The function.
        prevent_cse: Accepted for JAX compatibility (the engine never merges the
            recomputation with the forward pass).
        policy: JAX's saving policy; on JAX it is passed through, elsewhere only ``None``.
        static_argnums: Positional arguments that are not arrays (passed as they are).
            Every other argument leaf must be an array or a Python scalar, as in JAX.

    Raises:
        ArgnumsError: ``static_argnums`` is not an int or ints, or names a position the
            function (or, at the call, the call) does not have.
        TransformArgumentError: A call passes a leaf that is neither an array nor a
            Python scalar outside ``static_argnums``.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> f = unijax.checkpoint(lambda x: x * x * x)
        >>> float(unijax.grad(f)(np.float64(2.0)))
        12.0
    """
    _check_callable(fun, "checkpoint", "fun")
    api = f"checkpoint({fun_name(fun)})"
    # Checked now against the signature (as jit's are), and at each call against the call.
    statics = normalize_argnums(static_argnums, api, fun, name="static_argnums")
    natives: dict[str, Callable[..., Any]] = {}

    @functools.wraps(fun)
    def checkpointed(*args: Any, **kwargs: Any) -> Any:
        n = len(args)
        if any(i >= n for i in statics):
            raise ArgnumsError(message(
                f"{api}: static_argnums {statics!r} is out of range for this call",
                expected=f"indices below {n} (the call passed {n} positional arguments)",
                got=repr(static_argnums), fix="Pass the static arguments positionally."))
        positions = tuple(sorted(statics))
        dynamic = tuple(a for i, a in enumerate(args) if i not in positions)
        _check_array_leaves(dynamic, kwargs, positions, api)
        kind, _, backend, (dynamic, kwargs) = _route((dynamic, kwargs), api)
        it = iter(dynamic)
        args = tuple(args[i] if i in positions else next(it) for i in range(n))
        native = backend.native_transforms.checkpoint if kind != _ENGINE else None
        if native is not None:
            wrapped = natives.get(backend.name)
            if wrapped is None:
                options = {"policy": policy} if policy is not None else {}
                if kind == "native":
                    options.update(prevent_cse=prevent_cse, static_argnums=positions)
                wrapped = natives[backend.name] = native(fun, **options)
            return _native_call(backend, wrapped, *args, **kwargs)
        if policy is not None:
            raise TransformArgumentError(message(
                f"{api}: a saving policy is a JAX feature; this backend keeps nothing of a "
                "checkpointed call but its inputs",
                got=repr(policy), fix="Pass policy=None, or use the jax backend."))
        if kind == "python":  # no recomputation on this backend: just the call
            return fun(*args, **kwargs)
        return _engine.checkpoint(fun, args, kwargs, positions)

    return checkpointed


def _check_array_leaves(dynamic: tuple[Any, ...], kwargs: dict[str, Any],
                        positions: tuple[int, ...], api: str) -> None:
    """Every leaf a checkpointed function is differentiated through is an array or a
    Python scalar (as ``jax.checkpoint`` requires): anything else is a static argument."""
    for leaf in tree_leaves((dynamic, kwargs)):
        if isinstance(leaf, bool | int | float | complex) or (
                hasattr(leaf, "shape") and hasattr(leaf, "dtype")):
            continue
        raise TransformArgumentError(message(
            f"{api}: every argument leaf must be an array or a Python scalar, but got a "
            f"value of type {type(leaf).__module__}.{type(leaf).__qualname__}",
            fix="Pass it as a static argument (checkpoint(f, static_argnums=...)), or "
                "convert it to an array."))


#: JAX's other name for :func:`checkpoint`.
remat = checkpoint

