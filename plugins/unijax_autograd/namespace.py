"""An Array API namespace whose functions go through ``autograd.numpy``.

Autograd differentiates by boxing arrays (``ArrayBox``) and recording calls to the
functions of ``autograd.numpy``; a plain NumPy function applied to a box either fails or
silently drops the gradient. This module maps the standard's names and conventions onto
``autograd.numpy`` (``acos`` -> ``arccos``, ``concat`` -> ``concatenate``,
``std(correction=)`` -> ``std(ddof=)``, ...), so Array-API code is differentiable by
``autograd.grad``.

Three kinds of functions:

* differentiable ones, written with ``autograd.numpy``;
* ones whose outputs carry no derivative (comparisons, ``argsort``, ``floor``, creation
  functions): boxes are unwrapped and ``array_api_compat.numpy`` computes the result,
  which is a constant box when computed from boxes of this plugin's traces, so that
  ``array_namespace(x > 0, x)`` is this namespace (boxes' comparison operators do the
  same);
* float functions autograd has no derivative for go through ``autograd.numpy`` too, so
  that differentiating them raises autograd's "VJP ... not defined" instead of giving a
  silently wrong gradient.

The ``special`` extension holds unijax's special functions (``erf``, ``gammaln``, ...),
which SciPy finds there with ``SCIPY_ARRAY_API=1``.

Importing this module completes autograd's ``ArrayBox`` as an Array API array, once
(:func:`_install`, see the comments there): ``__array_namespace__`` returns this module
(autograd's own returns ``autograd.numpy``, not an Array API namespace), boxes report their
``device``, and ``box[key] = value`` is a functional update that re-points the box.

While a trace started by this plugin's transforms is running, the creation functions
(``zeros``, ``asarray`` of Python data, ...) return floating arrays as constant boxes on
that trace, so that writing a box into them is recorded; outside any trace they return
plain ndarrays.
"""

from __future__ import annotations

import builtins
import functools
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import array_api_compat.numpy as _compat_numpy
import autograd.numpy as anp
import numpy as _np
from autograd.core import VJPNode
from autograd.extend import defjvp, defvjp, primitive, vspace
from autograd.numpy.numpy_boxes import ArrayBox
from autograd.tracer import (
    box_type_mappings,
    getval,
    isbox,
    new_box,
    notrace_primitives,
    trace_stack,
)

from unijax.errors import UnsupportedTransformError, message
from unijax.extend import special_functions

_cnp: Any = _compat_numpy  # re-exports NumPy with `import *`, which type checkers miss

__array_api_version__ = "2024.12"
__array_namespace_info__ = _cnp.__array_namespace_info__

# dtypes and constants are NumPy's own
bool = _cnp.bool
int8, int16, int32, int64 = _cnp.int8, _cnp.int16, _cnp.int32, _cnp.int64
uint8, uint16, uint32, uint64 = _cnp.uint8, _cnp.uint16, _cnp.uint32, _cnp.uint64
float32, float64 = _cnp.float32, _cnp.float64
complex64, complex128 = _cnp.complex64, _cnp.complex128
e, inf, nan, newaxis, pi = _cnp.e, _cnp.inf, _cnp.nan, _cnp.newaxis, _cnp.pi


def _unboxed(fn: Callable[..., Any], created: builtins.bool = False) -> Callable[..., Any]:
    """``fn`` on the values under any boxes: its output carries no derivative.

    A result computed from boxes is a constant box (:func:`_derived`). ``created``: ``fn``
    makes a new array, returned as a constant box on the running trace of this plugin
    (:func:`_constant`), if any, so that boxes of that trace can be written into it.
    """

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        out = fn(*(_unbox_seq(a) for a in args), **{k: getval(v) for k, v in kwargs.items()})
        if created:
            out = _constant(out)
        return out if isbox(out) else _derived(out, (*args, *kwargs.values()))

    return call


def _unbox_seq(a: Any) -> Any:
    if isinstance(a, list | tuple):
        return type(a)(getval(v) for v in a)
    return getval(a)


def _derived(out: Any, inputs: Sequence[Any]) -> Any:
    """``out``, computed without derivative from ``inputs``, boxed as a constant on the
    innermost trace of the boxes among them if this plugin's transforms started it.

    A mask ``x > 0`` or an index ``argmax(x)`` returned as a plain ndarray or NumPy scalar
    would sit beside the boxes it came from, and ``array_namespace(x > 0, x)`` would see two
    namespaces (array_api_compat maps every ndarray and NumPy scalar to its NumPy wrapper,
    whatever is next to it). A constant box has this plugin's namespace, carries no
    derivative, and behaves as an integer or boolean array (see :func:`_install`). Under a
    trace started elsewhere (autograd's own ``grad``, whose backward pass would take a
    constant root for the input) the value stays plain.
    """
    trace = -1
    for a in inputs:
        for v in (a if isinstance(a, list | tuple) else (a,)):
            if isbox(v) and v._trace > trace:
                trace = v._trace
    if trace < 0 or trace not in _traces:
        return out
    return _box_constants(out, trace)


def _box_constants(out: Any, trace: int) -> Any:
    if isinstance(out, _np.ndarray | _np.generic):
        if type(out) not in box_type_mappings:  # strings, datetimes: no box type
            return out
        return new_box(out, trace, _ConstantAwareVJPNode.new_root(constant=True))
    if isinstance(out, tuple):  # nonzero, unique_all, ... (named tuples keep their type)
        items = [_box_constants(v, trace) for v in out]
        return type(out)(*items) if hasattr(out, "_fields") else tuple(items)
    return out  # dtypes, finfo, Python scalars


# --- constants on the running trace ---------------------------------------------------------

#: Ids of the autograd traces started by this plugin's transforms (``_make_vjp``, ``grad``),
#: innermost last. They are reverse-mode (VJP) traces, on which a constant box is a root
#: node marked constant; the node type of a trace started elsewhere (autograd's own
#: ``make_jvp``, say) is unknown, so creation functions return plain arrays under it.
_traces: list[int] = []


class _ConstantAwareVJPNode(VJPNode):
    """autograd's ``VJPNode``, recording no edge towards values computed from constants.

    Constants are boxed as roots marked ``constant`` (the other arrays of a call, see
    ``transforms._call_with_constants``, and new arrays from the creation functions):
    boxing them keeps one ``array_namespace`` and lets boxes be written into them, but it
    would otherwise make every VJP rule compute their cotangents too, to be discarded: in
    ``x @ w`` with constant data ``x``, a second matrix product per step. A value
    computed from constants only is itself a constant root (no VJP closure is built).
    """

    __slots__ = ("constant",)

    def __init__(self, value: Any, fun: Any, args: Any, kwargs: Any,
                 parent_argnums: tuple[int, ...], parents: tuple[Any, ...]) -> None:
        keep = [i for i, p in enumerate(parents) if not getattr(p, "constant", False)]
        if not keep:  # computed from constants only: no cotangent flows through it
            self.initialize_root(constant=True)
            return
        if len(keep) < len(parents):
            parent_argnums = tuple(parent_argnums[i] for i in keep)
            parents = tuple(parents[i] for i in keep)
        self.constant = False
        super().__init__(value, fun, args, kwargs, parent_argnums, parents)

    def initialize_root(self, constant: builtins.bool = False) -> None:
        super().initialize_root()
        self.constant = constant


def _constant(out: Any) -> Any:
    """A new floating array ``out``, boxed as a constant if a trace of this plugin runs.

    Library code writes into the arrays it creates (``y = xp.zeros(n); y[0] = x[0]``). A
    plain ndarray cannot hold a box (NumPy: "setting an array element with a sequence"); a
    constant box on the innermost trace can, by :func:`_box_setitem`, and the derivative
    flows through the written entries. Integer and boolean arrays (indices, masks) stay
    plain: nothing differentiable is written into them.
    """
    if _traces and _traces[-1] == trace_stack.top and out.dtype.kind in "fc":
        return new_box(out, trace_stack.top, _ConstantAwareVJPNode.new_root(constant=True))
    return out


# --- no derivative: computed by array_api_compat.numpy on plain values ---------------------

_NONDIFF = (
    "all any argmax argmin argsort bitwise_and bitwise_invert bitwise_left_shift "
    "bitwise_or bitwise_right_shift bitwise_xor can_cast ceil count_nonzero "
    "equal finfo floor floor_divide from_dlpack greater greater_equal iinfo "
    "isdtype isfinite isinf isnan less less_equal logical_and logical_not logical_or "
    "logical_xor nonzero not_equal result_type round searchsorted "
    "sign signbit trunc unique_all unique_counts unique_inverse unique_values"
).split()
globals().update({name: _unboxed(getattr(_cnp, name)) for name in _NONDIFF})
# new arrays: constant boxes while a trace of this plugin runs
_CREATED = "arange empty empty_like eye ones ones_like zeros zeros_like".split()
globals().update({name: _unboxed(getattr(_cnp, name), created=True) for name in _CREATED})

# --- differentiable: same name, same meaning in autograd.numpy -----------------------------

_SAME = (
    "abs add conj cos cosh divide exp expm1 hypot imag log log1p log2 log10 logaddexp "
    "matmul maximum minimum multiply negative real reciprocal remainder sin sinh sqrt "
    "square subtract tan tanh"
).split()
globals().update({name: getattr(anp, name) for name in _SAME})

acos, acosh, asin, asinh = anp.arccos, anp.arccosh, anp.arcsin, anp.arcsinh
atan, atan2, atanh, pow = anp.arctan, anp.arctan2, anp.arctanh, anp.power
# float-valued, but autograd has no derivative: differentiating it raises, never lies
nextafter = anp.nextafter


def positive(x: Any, /) -> Any:
    return x


def copysign(x1: Any, x2: Any, /) -> Any:
    return anp.where(_np.signbit(getval(x2)), -anp.abs(x1), anp.abs(x1))


def clip(x: Any, /, min: Any = None, max: Any = None) -> Any:
    if min is None and max is None:
        return x
    return anp.clip(x, min, max)


# --- creation ------------------------------------------------------------------------------


def asarray(obj: Any, /, *, dtype: Any = None, device: Any = None, copy: Any = None) -> Any:
    if isbox(obj):
        out = obj if dtype is None or obj.dtype == dtype else astype(obj, dtype)
        # A copy must be another object: writes re-point the box they are made through.
        return new_box(out._value, out._trace, out._node) if copy and out is obj else out
    if isinstance(obj, list | tuple) and _has_box(obj):
        out = anp.array(obj)
        return out if dtype is None else astype(out, dtype)
    out = _cnp.asarray(obj, dtype=dtype, device=device, copy=copy)
    # Python data or an explicit copy is a new array; an ndarray passed through stays itself.
    return out if isinstance(obj, _np.ndarray) and not copy else _constant(out)


def _has_box(obj: Any) -> builtins.bool:
    if isinstance(obj, list | tuple):
        return builtins.any(_has_box(v) for v in obj)
    return isbox(obj)


def full(shape: Any, fill_value: Any, *, dtype: Any = None, device: Any = None) -> Any:
    if isbox(fill_value):
        return anp.full(_unbox_seq(shape), fill_value, dtype=dtype)
    return _constant(_cnp.full(_unbox_seq(shape), fill_value, dtype=dtype, device=device))


def full_like(x: Any, /, fill_value: Any, *, dtype: Any = None, device: Any = None) -> Any:
    if isbox(fill_value):
        return anp.full(x.shape, fill_value, dtype=dtype or x.dtype)
    return _constant(_cnp.full_like(getval(x), fill_value, dtype=dtype, device=device))


def linspace(start: Any, stop: Any, /, num: int, *, dtype: Any = None, device: Any = None,
             endpoint: builtins.bool = True) -> Any:
    if isbox(start) or isbox(stop):
        return anp.linspace(start, stop, num, endpoint=endpoint, dtype=dtype)
    return _constant(_cnp.linspace(start, stop, getval(num), dtype=dtype, device=device,
                                   endpoint=endpoint))


def meshgrid(*arrays: Any, indexing: str = "xy") -> list[Any]:
    n = len(arrays)
    shape = [a.shape[0] for a in arrays]
    if indexing == "xy" and n > 1:
        shape[0], shape[1] = shape[1], shape[0]
    out = []
    for i, a in enumerate(arrays):
        axis = (1 - i if i < 2 else i) if indexing == "xy" and n > 1 else i
        view = [1] * n
        view[axis] = a.shape[0]
        out.append(broadcast_to(anp.reshape(a, tuple(view)), tuple(shape)))
    return out


def tril(x: Any, /, *, k: int = 0) -> Any:
    return anp.tril(x, k=k)


def triu(x: Any, /, *, k: int = 0) -> Any:
    return anp.triu(x, k=k)


# --- dtypes --------------------------------------------------------------------------------


def astype(x: Any, dtype: Any, /, *, copy: builtins.bool = True, device: Any = None) -> Any:
    if isbox(x):
        if _np.dtype(dtype).kind == "c" and not _np.iscomplexobj(getval(x)):
            return _to_complex(x, _np.dtype(dtype))
        return x.astype(dtype)
    return _cnp.astype(x, dtype, copy=copy, device=device)


#: A real array cast to a complex dtype. autograd's ``astype`` VJP casts the complex
#: cotangent back with ``astype``, which NumPy warns about ("Casting complex values to real
#: discards the imaginary part"); the cotangent of a real input is the real part, taken here
#: explicitly.
_to_complex = primitive(lambda x, dtype: _np.asarray(x).astype(dtype))
defvjp(_to_complex, lambda ans, x, dtype: lambda g: _real_as(g, anp.result_type(x)))
defjvp(_to_complex, lambda g, ans, x, dtype: _to_complex(g, dtype))


def _real_as(g: Any, dtype: Any) -> Any:
    """The real part of the cotangent ``g``, in the real dtype ``dtype``."""
    g = anp.real(g)
    return g if anp.result_type(g) == dtype else g.astype(dtype)


# --- manipulation --------------------------------------------------------------------------


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim if ndim else 0 for a in axes)


def reshape(x: Any, /, shape: tuple[int, ...], *, copy: Any = None) -> Any:
    return anp.reshape(x, shape)


def broadcast_to(x: Any, /, shape: tuple[int, ...]) -> Any:
    # autograd's broadcast_to cannot add leading axes; add them with a reshape first.
    extra = len(shape) - x.ndim
    if extra > 0:
        x = anp.reshape(x, (1,) * extra + tuple(x.shape))
    return x if tuple(x.shape) == tuple(shape) else anp.broadcast_to(x, tuple(shape))


def broadcast_arrays(*arrays: Any) -> list[Any]:
    shape = _np.broadcast_shapes(*(tuple(a.shape) for a in arrays))
    return [broadcast_to(a, shape) for a in arrays]


def concat(arrays: Sequence[Any], /, *, axis: int | None = 0) -> Any:
    if axis is None:
        return anp.concatenate([anp.reshape(a, (-1,)) for a in arrays], axis=0)
    return anp.concatenate(list(arrays), axis=axis)


def stack(arrays: Sequence[Any], /, *, axis: int = 0) -> Any:
    return anp.stack(list(arrays), axis=axis)


def unstack(x: Any, /, *, axis: int = 0) -> tuple[Any, ...]:
    axis = axis % x.ndim
    return tuple(x[(slice(None),) * axis + (i,)] for i in range(x.shape[axis]))


def expand_dims(x: Any, /, *, axis: int = 0) -> Any:
    return anp.expand_dims(x, axis)


def squeeze(x: Any, /, axis: int | tuple[int, ...]) -> Any:
    return anp.squeeze(x, axis)


def permute_dims(x: Any, /, axes: tuple[int, ...]) -> Any:
    return anp.transpose(x, tuple(axes))


def matrix_transpose(x: Any, /) -> Any:
    return anp.swapaxes(x, -1, -2)


def moveaxis(x: Any, source: Any, destination: Any, /) -> Any:
    return anp.moveaxis(x, source, destination)


def flip(x: Any, /, *, axis: Any = None) -> Any:
    axes = _axes(axis, x.ndim)
    return x[tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(x.ndim))]


def roll(x: Any, /, shift: Any, *, axis: Any = None) -> Any:
    if isinstance(shift, int):
        return anp.roll(x, shift, axis=axis)
    for s, a in zip(shift, axis, strict=True):
        x = anp.roll(x, s, axis=a)
    return x


def repeat(x: Any, repeats: Any, /, *, axis: int | None = None) -> Any:
    # autograd's VJP of repeat is wrong for a negative axis: pass it normalised.
    return anp.repeat(x, getval(repeats), axis=None if axis is None else axis % x.ndim)


def tile(x: Any, repetitions: tuple[int, ...], /) -> Any:
    return anp.tile(x, repetitions)


# --- indexing and searching ----------------------------------------------------------------


def take(x: Any, indices: Any, /, *, axis: int | None = None) -> Any:
    indices = getval(indices)
    if axis is None:
        return x[indices]
    return x[(slice(None),) * (axis % x.ndim) + (indices,)]


def take_along_axis(x: Any, indices: Any, /, *, axis: int = -1) -> Any:
    indices = getval(indices)
    axis = axis % x.ndim
    index = tuple(
        indices if i == axis else
        _np.arange(n).reshape((1,) * i + (n,) + (1,) * (x.ndim - i - 1))
        for i, n in enumerate(x.shape)
    )
    return x[index]


def where(condition: Any, x1: Any, x2: Any, /) -> Any:
    out = anp.where(getval(condition), x1, x2)
    return out if isbox(out) else _derived(out, (condition,))


def sort(x: Any, /, *, axis: int = -1, descending: builtins.bool = False,
         stable: builtins.bool = True) -> Any:
    order = _cnp.argsort(getval(x), axis=axis, descending=descending, stable=stable)
    return take_along_axis(x, order, axis=axis)


# --- reductions and statistics -------------------------------------------------------------


def _over_axes(fn: Callable[[Any], Any], x: Any, axis: Any, keepdims: builtins.bool) -> Any:
    """Reduce over ``axis`` (None, an int or a tuple) with ``fn``, which reduces the last
    axis: the reduced axes are moved last and flattened into one."""
    axes = _axes(axis, x.ndim)
    rest = [i for i in range(x.ndim) if i not in axes]
    moved = anp.transpose(x, (*rest, *axes))
    flat = anp.reshape(moved, (*(x.shape[i] for i in rest), -1))
    out = fn(flat)
    if keepdims:
        out = anp.reshape(out, tuple(1 if i in axes else n for i, n in enumerate(x.shape)))
    return out


def sum(x: Any, /, *, axis: Any = None, dtype: Any = None,
        keepdims: builtins.bool = False) -> Any:
    out = anp.sum(x, axis=axis, keepdims=keepdims)
    return out if dtype is None else astype(out, dtype)


def prod(x: Any, /, *, axis: Any = None, dtype: Any = None,
         keepdims: builtins.bool = False) -> Any:
    if x.ndim == 0:
        out = x
    elif not isbox(x):
        out = _np.prod(x, axis=None if axis is None else _axes(axis, x.ndim),
                       keepdims=keepdims)
    else:
        out = _over_axes(_prod_last, x, axis, keepdims)
    return out if dtype is None else astype(out, dtype)


#: The product over the last axis. autograd's own ``prod`` VJP divides the product by each
#: element, which gives NaN where an element is zero; this one multiplies the other
#: elements (:func:`_others`), exact at zeros and differentiable again.
_prod_last = primitive(lambda x: _np.prod(x, axis=-1))
defvjp(_prod_last, lambda ans, x: lambda g: anp.expand_dims(g, -1) * _others(x))
defjvp(_prod_last, lambda g, ans, x: anp.sum(g * _others(x), axis=-1))


def _others(x: Any) -> Any:
    """``out[..., i]``: the product of ``x[..., j]`` for every ``j != i``, without division:
    the exclusive products from the left times those from the right (:func:`_scan_prod`)."""
    if x.shape[-1] == 0:
        return x
    left = _scan_prod(x, exclusive=True)
    right = _scan_prod(x[..., ::-1], exclusive=True)[..., ::-1]
    return left * right


def _scan_prod(x: Any, exclusive: builtins.bool = False) -> Any:
    """``out[..., i]``: the product of ``x[..., j]`` for ``j <= i`` (``j < i`` if
    ``exclusive``), along the last axis.

    A Hillis-Steele scan: ``log2(n)`` shifted multiplications, built from autograd's
    differentiable operations, so derivatives of every order are exact at zeros too
    (autograd has no ``cumprod`` VJP; one by division would give NaN there).
    """
    n = x.shape[-1]

    def ones(k: int) -> Any:
        return _np.ones((*x.shape[:-1], k), dtype=anp.result_type(x))

    out = anp.concatenate([ones(1), x[..., :-1]], axis=-1) if exclusive and n else x
    step = 1
    while step < n:
        out = out * anp.concatenate([ones(step), out[..., :-step]], axis=-1)
        step *= 2
    return out


def mean(x: Any, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Any:
    return anp.mean(x, axis=axis, keepdims=keepdims)


def max(x: Any, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Any:
    return anp.max(x, axis=axis, keepdims=keepdims)


def min(x: Any, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Any:
    return anp.min(x, axis=axis, keepdims=keepdims)


def var(x: Any, /, *, axis: Any = None, correction: float = 0.0,
        keepdims: builtins.bool = False) -> Any:
    return anp.var(x, axis=axis, ddof=correction, keepdims=keepdims)


def std(x: Any, /, *, axis: Any = None, correction: float = 0.0,
        keepdims: builtins.bool = False) -> Any:
    return anp.std(x, axis=axis, ddof=correction, keepdims=keepdims)


def _cumulative(fn: Callable[..., Any], x: Any, axis: int | None, dtype: Any,
                include_initial: builtins.bool, initial: int) -> Any:
    if axis is None:
        if x.ndim > 1:
            raise ValueError("axis must be given for arrays with more than one dimension")
        axis = 0
    out = fn(x, axis=axis)
    if include_initial:
        shape = list(out.shape)
        shape[axis] = 1
        out = anp.concatenate([_np.full(shape, initial, dtype=out.dtype), out], axis=axis)
    return out if dtype is None else astype(out, dtype)


def cumulative_sum(x: Any, /, *, axis: int | None = None, dtype: Any = None,
                   include_initial: builtins.bool = False) -> Any:
    return _cumulative(anp.cumsum, x, axis, dtype, include_initial, 0)


def cumulative_prod(x: Any, /, *, axis: int | None = None, dtype: Any = None,
                    include_initial: builtins.bool = False) -> Any:
    return _cumulative(_cumprod, x, axis, dtype, include_initial, 1)


def _cumprod(x: Any, axis: int) -> Any:
    if not isbox(x):
        return _np.cumprod(x, axis=axis)
    return anp.moveaxis(_scan_prod(anp.moveaxis(x, axis, -1)), -1, axis)


def diff(x: Any, /, *, axis: int = -1, n: int = 1, prepend: Any = None,
         append: Any = None) -> Any:
    if prepend is not None or append is not None:
        parts = [p for p in (prepend, x, append) if p is not None]
        x = anp.concatenate(parts, axis=axis)
    return anp.diff(x, n=n, axis=axis)


# --- linear algebra ------------------------------------------------------------------------


def tensordot(x1: Any, x2: Any, /, *, axes: Any = 2) -> Any:
    return anp.tensordot(x1, x2, axes)


def vecdot(x1: Any, x2: Any, /, *, axis: int = -1) -> Any:
    return anp.sum(anp.conj(x1) * x2, axis=axis)


def _module(name: str, **functions: Any) -> Any:
    import types

    mod = types.ModuleType(f"{__name__}.{name}")
    mod.__dict__.update(functions)
    return mod


def _diagonal(x: Any, /, *, offset: int = 0) -> Any:
    # autograd differentiates diagonal only for offset 0 on (-1, -2); indexing always works.
    rows, cols = x.shape[-2], x.shape[-1]
    n = builtins.max(0, builtins.min(rows - builtins.max(-offset, 0),
                                     cols - builtins.max(offset, 0)))
    i = _np.arange(n)
    return x[..., i + builtins.max(-offset, 0), i + builtins.max(offset, 0)]


def _matrix_norm(x: Any, /, *, keepdims: builtins.bool = False, ord: Any = "fro") -> Any:
    # Written out: autograd's norm gradient mishandles negative axes such as (-2, -1).
    a = anp.abs(x)
    if ord == "fro":
        out = anp.sqrt(anp.sum(a * a, axis=(-2, -1)))
    elif ord in ("nuc", 2, -2):
        s = anp.linalg.svd(x, compute_uv=False)
        out = {"nuc": anp.sum, 2: anp.max, -2: anp.min}[ord](s, axis=-1)
    elif ord in (1, -1, math.inf, -math.inf):
        sums = anp.sum(a, axis=-2 if ord in (1, -1) else -1)
        out = anp.max(sums, axis=-1) if ord in (1, math.inf) else anp.min(sums, axis=-1)
    else:
        raise ValueError(f"matrix_norm: unsupported ord={ord!r}")
    return anp.reshape(out, (*out.shape, 1, 1)) if keepdims else out


def _vector_norm(x: Any, /, *, axis: Any = None, keepdims: builtins.bool = False,
                 ord: Any = 2) -> Any:
    a = anp.abs(x)
    if ord == math.inf:
        return max(a, axis=axis, keepdims=keepdims)
    if ord == -math.inf:
        return min(a, axis=axis, keepdims=keepdims)
    if ord == 0:
        return _derived(_cnp.astype(_cnp.sum(getval(a) != 0, axis=axis, keepdims=keepdims),
                                    getval(a).dtype), (a,))
    if ord == 2:
        return anp.sqrt(anp.sum(a * a, axis=axis, keepdims=keepdims))
    return anp.sum(a ** ord, axis=axis, keepdims=keepdims) ** (1.0 / ord)


def _matrix_power(x: Any, n: int, /) -> Any:
    if n < 0:
        x, n = anp.linalg.inv(x), -n
    out = broadcast_to(anp.eye(x.shape[-1], dtype=x.dtype), x.shape)
    for _ in range(n):
        out = anp.matmul(out, x)
    return out


def _cholesky(x: Any, /, *, upper: builtins.bool = False) -> Any:
    low = anp.linalg.cholesky(x)
    return anp.conj(matrix_transpose(low)) if upper else low


def _eigh(x: Any, /) -> Any:
    w, v = anp.linalg.eigh(x)
    return _cnp.linalg.EighResult(w, v)


def _slogdet(x: Any, /) -> Any:
    sign, logabsdet = anp.linalg.slogdet(x)
    return _cnp.linalg.SlogdetResult(sign, logabsdet)


def _svd(x: Any, /, *, full_matrices: builtins.bool = True) -> Any:
    u, s, vh = anp.linalg.svd(x, full_matrices=full_matrices)
    return _cnp.linalg.SVDResult(u, s, vh)


def _qr(x: Any, /, *, mode: str = "reduced") -> Any:
    q, r = anp.linalg.qr(x, mode=mode)
    return _cnp.linalg.QRResult(q, r)


def _pinv(x: Any, /, *, rtol: Any = None) -> Any:
    return anp.linalg.pinv(x) if rtol is None else anp.linalg.pinv(x, rtol=rtol)


def _trace(x: Any, /, *, offset: int = 0, dtype: Any = None) -> Any:
    return sum(_diagonal(x, offset=offset), axis=-1, dtype=dtype)


def _outer(x1: Any, x2: Any, /) -> Any:
    return anp.reshape(x1, (-1, 1)) * anp.reshape(x2, (1, -1))


def _solve(x1: Any, x2: Any, /) -> Any:
    if x2.ndim == 1:  # the standard: a 1-D x2 is one vector, whatever x1's batch shape
        # Broadcast to x1's batch shape first: autograd's VJP of solve cannot unbroadcast.
        column = broadcast_to(anp.reshape(x2, (-1, 1)), (*x1.shape[:-1], 1))
        return anp.linalg.solve(x1, column)[..., 0]
    return anp.linalg.solve(x1, x2)


linalg = _module(
    "linalg",
    cholesky=_cholesky, cross=lambda x1, x2, /, *, axis=-1: anp.cross(x1, x2, axis=axis),
    det=anp.linalg.det, diagonal=_diagonal, eigh=_eigh,
    eigvalsh=lambda x, /: anp.linalg.eigh(x)[0], inv=anp.linalg.inv, matmul=anp.matmul,
    matrix_norm=_matrix_norm, matrix_power=_matrix_power,
    matrix_rank=_unboxed(_cnp.linalg.matrix_rank), matrix_transpose=matrix_transpose,
    outer=_outer, pinv=_pinv, qr=_qr, slogdet=_slogdet, solve=_solve, svd=_svd,
    svdvals=lambda x, /: anp.linalg.svd(x, compute_uv=False), tensordot=tensordot,
    trace=_trace, vecdot=vecdot, vector_norm=_vector_norm,
)


_FORWARD_TYPE = {"fft", "fftn", "rfft", "rfftn", "hfft"}  # unscaled under norm="backward"
_REAL_INPUT = {"rfft", "rfftn", "ihfft"}


def _fft_fn(name: str) -> Callable[..., Any]:
    fn = getattr(anp.fft, name)

    def call(x: Any, /, *, n: Any = None, s: Any = None, axis: int = -1, axes: Any = None,
             norm: str = "backward") -> Any:
        # autograd's FFT gradients know only norm=None ("backward") and "ortho"; a
        # "forward" transform is the backward one rescaled by the signal length.
        passed = "ortho" if norm == "ortho" else None
        if name.endswith("n"):
            out = fn(x, s=s, axes=axes, norm=passed)
            dims = list(range(x.ndim)) if axes is None else list(axes)
        elif name in _REAL_INPUT and n is not None:
            # autograd's rfft VJP ignores ``n`` (it normalises by the input's length and
            # checks that length for evenness): a silently wrong gradient unless the input
            # is cropped or padded to ``n`` first.
            out = fn(_fit(x, n, axis), axis=axis, norm=passed)
            dims = [axis]
        else:
            out = fn(x, n=n, axis=axis, norm=passed)
            dims = [axis]
        if norm != "forward":
            return out
        full = x if name in _REAL_INPUT else out
        size = math.prod(full.shape[d] for d in dims)
        if name in _REAL_INPUT and (n is not None or s is not None):
            size = math.prod([n] if n is not None else s)
        return out / size if name in _FORWARD_TYPE else out * size

    call.__name__ = name
    return call


def _fit(x: Any, n: int, axis: int) -> Any:
    """``x`` cropped or zero-padded to length ``n`` along ``axis``, as NumPy's FFTs do."""
    axis = axis % x.ndim
    m = x.shape[axis]
    if m >= n:
        return x[(slice(None),) * axis + (slice(0, n),)]
    pad = _np.zeros((*x.shape[:axis], n - m, *x.shape[axis + 1:]), dtype=anp.result_type(x))
    return anp.concatenate([x, pad], axis=axis)


fft = _module(
    "fft",
    **{name: _fft_fn(name) for name in
       ("fft", "ifft", "fftn", "ifftn", "rfft", "irfft", "rfftn", "irfftn", "hfft", "ihfft")},
    fftfreq=_unboxed(_cnp.fft.fftfreq), rfftfreq=_unboxed(_cnp.fft.rfftfreq),
    fftshift=lambda x, /, *, axes=None: anp.fft.fftshift(x, axes),
    ifftshift=lambda x, /, *, axes=None: anp.fft.ifftshift(x, axes),
)


#: SciPy's special functions (``erf``, ``gammaln``, ``xlogy``, ...), which SciPy looks up
#: as ``xp.special`` with ``SCIPY_ARRAY_API=1``: unijax's own, with the same values and
#: derivatives as on every backend. On boxes each is an Autograd primitive whose VJPs are
#: differentiable again; ``autograd.scipy.special`` lacks half of them (``ndtr``,
#: ``xlogy``, ...) and the derivative of ``gammainc`` in ``a``.
special = _module("special", **special_functions())


# --- functional in-place writes ----------------------------------------------------------


def _setitem_value(x: Any, value: Any, key: Any) -> Any:
    out = _np.array(x, copy=True)  # never written in place: other nodes may hold ``x``
    out[key] = value
    return out


#: ``x`` with ``x[key] = value`` applied, as a new array: the differentiable form of an
#: in-place write (JAX's ``x.at[key].set(value)``). ``key`` is a keyword: never a box.
_setitem = primitive(_setitem_value)


def _unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """The cotangent ``g`` of a value broadcast to ``g``'s shape, summed back to ``shape``."""
    g_shape = anp.shape(g)
    if g_shape == shape:
        return g
    if len(g_shape) < len(shape):  # NumPy also drops a value's leading length-1 axes
        g = anp.reshape(g, (1,) * (len(shape) - len(g_shape)) + tuple(g_shape))
        g_shape = anp.shape(g)
    lead = len(g_shape) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and g_shape[lead + i] != 1)
    return anp.reshape(anp.sum(g, axis=axes, keepdims=True), shape)


def _written(shape: tuple[int, ...], key: Any) -> Any:
    """Which elements of the broadcast value ``x[key] = value`` stores, or None for all.

    An integer-array key can name one element twice (``key=[0, 0]``): NumPy keeps one of
    the writes, and only the value written last there reaches the output. Replaying the
    write with positions instead of values finds which.
    """
    parts = key if type(key) is tuple else (key,)
    if not builtins.any(isinstance(p, list | _np.ndarray) and _np.asarray(p).dtype.kind in "iu"
                        for p in parts):
        return None  # basic indices and masks name each element at most once
    slots = _np.full(shape, -1, dtype=_np.intp)
    target = slots[key].shape
    order = _np.arange(math.prod(target), dtype=_np.intp).reshape(target)
    slots[key] = order
    written = slots[key] == order
    return None if written.all() else written


def _setitem_vjp_value(ans: Any, x: Any, value: Any, key: Any) -> Callable[[Any], Any]:
    shape, written = anp.shape(value), _written(anp.shape(ans), key)
    real = not _np.iscomplexobj(getval(value))

    def vjp(g: Any) -> Any:
        part = g[key]
        if written is not None:
            part = part * written
        if real and _np.iscomplexobj(getval(part)):
            part = anp.real(part)
        return _unbroadcast(part, shape)

    return vjp


defvjp(_setitem,
       lambda ans, x, value, key: lambda g: _setitem(g, 0.0, key=key),
       _setitem_vjp_value)
# Forward mode (autograd's make_jvp): the write is linear in (x, value) for a fixed key.
defjvp(_setitem,
       lambda g, ans, x, value, key: _setitem(g, 0.0, key=key),
       lambda g, ans, x, value, key: _setitem(vspace(ans).zeros(), g, key=key))


def _plain_key(key: Any) -> Any:
    """``key`` with the boxes in it unwrapped: indices carry no derivative.

    Integer and boolean arguments are boxed as constants (see
    ``transforms._call_with_constants``), and NumPy cannot index with a box nested in a
    tuple key (``x[rows, :]``).
    """
    if type(key) is tuple:
        if builtins.any(isbox(k) for k in key):
            return tuple(getval(k) for k in key)
        return key
    if isbox(key):
        return getval(key)
    if type(key) is list and builtins.any(isbox(k) for k in key):
        return [getval(k) for k in key]
    return key


def _box_setitem(self: Any, key: Any, value: Any) -> None:
    """``box[key] = value``: a functional update, then this box stands for the result."""
    if isinstance(value, list | tuple) and _has_box(value):
        value = anp.array(value)
    new = _setitem(self, value, key=_plain_key(key))
    if new._trace != self._trace:
        raise UnsupportedTransformError(message(
            "x[...] = value cannot update x in place here",
            expected="a value traced no deeper than x",
            got="a value from a transform nested inside the one x belongs to",
            fix="Use the functional form: y = xp.where(mask, value, x), or create x "
            "inside the nested function."))
    self._value, self._node = new._value, new._node


# --- completing ArrayBox as an Array API array ----------------------------------------------


def _array_namespace(self: Any, *, api_version: str | None = None) -> Any:
    import sys

    return sys.modules[__name__]


def _to_device(self: Any, device: Any, /, *, stream: Any = None) -> Any:
    if device not in ("cpu", None):
        raise ValueError(f"autograd arrays live on the CPU, not on {device!r}")
    return self


def _index(self: Any) -> int:
    return operator.index(getval(self))  # raises TypeError unless the value is an integer


def _nondiff_op(fn: Callable[..., Any], reflected: builtins.bool = False) -> Callable[..., Any]:
    if reflected:
        return lambda self, other: _derived(fn(getval(other), getval(self)), (self, other))
    return lambda self, other: _derived(fn(getval(self), getval(other)), (self, other))


def _nondiff_method(fn: Callable[..., Any]) -> Callable[..., Any]:
    return lambda self, *args, **kwargs: _derived(fn(getval(self), *args, **kwargs), (self,))


def _install() -> None:
    """Complete autograd's ``ArrayBox`` as an Array API array. Idempotent (it only sets
    attributes and registers types), and run when this module is first imported, i.e.
    when the plugin's namespace or its native transforms load, never by ``import unijax``.
    """
    # autograd's own __array_namespace__ returns autograd.numpy, which is not an Array API
    # namespace (no concat, permute_dims, ...); point array_namespace() here.
    ArrayBox.__array_namespace__ = _array_namespace
    # The standard's attributes boxes lack: library code asks x.device (or
    # array_api_compat.device(x), which reads it) to create arrays next to x, and x.mT.
    ArrayBox.device = property(lambda self: getattr(getval(self), "device", "cpu"))
    ArrayBox.to_device = _to_device
    ArrayBox.mT = property(lambda self: anp.swapaxes(self, -1, -2))
    # Array API code writes in place (SciPy, scikit-learn); a box has no __setitem__. The
    # write becomes the differentiable `_setitem` and the box is re-pointed at the result,
    # as unijax's engine does for its tracers (Tracer.__setitem__).
    ArrayBox.__setitem__ = _box_setitem
    # Integer and boolean arguments are boxed as constants (transforms._call_with_constants
    # explains why), so boxes must also behave as integer arrays: `x[rows, :]` needs the
    # boxes inside a tuple key unwrapped (NumPy indexes only with plain arrays) ...
    raw_getitem = ArrayBox.__dict__.get("_unijax_raw_getitem", ArrayBox.__getitem__)
    ArrayBox._unijax_raw_getitem = raw_getitem
    ArrayBox.__getitem__ = lambda self, key: raw_getitem(self, _plain_key(key))
    # ... `int(n)`, `range(n)` and `lst[i]` need __index__ (TypeError for non-integers,
    # so no derivative is ever dropped) ...
    ArrayBox.__index__ = _index
    # ... integer results such as `idx[0]` or `xp.sum(mask)` are NumPy integer scalars,
    # which autograd refuses to box ("Can't differentiate w.r.t. type int64") ...
    for scalar in (_np.bool_, _np.int8, _np.int16, _np.int32, _np.int64, _np.uint8,
                   _np.uint16, _np.uint32, _np.uint64):
        ArrayBox.register(scalar)
    # ... and the standard's operators autograd leaves out, none differentiable (`~mask`,
    # `mask & other`, `n // 2`), give plain arrays as the namespace's functions do.
    for name, fn in (("and", _cnp.bitwise_and), ("or", _cnp.bitwise_or),
                     ("xor", _cnp.bitwise_xor), ("lshift", _cnp.bitwise_left_shift),
                     ("rshift", _cnp.bitwise_right_shift), ("floordiv", _cnp.floor_divide)):
        setattr(ArrayBox, f"__{name}__", _nondiff_op(fn))
        setattr(ArrayBox, f"__r{name}__", _nondiff_op(fn, reflected=True))
    ArrayBox.__invert__ = lambda self: _derived(_cnp.bitwise_invert(getval(self)), (self,))
    # +x: another box of the same value and node (a write through it must not re-point x).
    ArrayBox.__pos__ = lambda self: new_box(self._value, self._trace, self._node)
    # Comparisons, and the methods autograd gives no derivative, return constant boxes
    # (autograd: plain arrays) so that a mask stays in this namespace (see _derived).
    for name, fn in (("eq", _cnp.equal), ("ne", _cnp.not_equal), ("lt", _cnp.less),
                     ("le", _cnp.less_equal), ("gt", _cnp.greater),
                     ("ge", _cnp.greater_equal)):
        setattr(ArrayBox, f"__{name}__", _nondiff_op(fn))
    for name in ("all", "any", "argmax", "argmin", "argsort", "nonzero", "round"):
        setattr(ArrayBox, name, _nondiff_method(getattr(_np, name)))
    # Constant roots record nothing, so the primitives autograd never records on a VJP
    # trace (shape, comparisons ...) are not recorded on ours either (keyed by node type).
    notrace_primitives[_ConstantAwareVJPNode] = notrace_primitives[VJPNode]


_install()
