"""The traced namespace against the Array API standard (2024.12), without the official suite.

``unijax check --standard PATH`` runs data-apis/array-api-tests on the traced namespace; these
are direct checks of what it found, and of what the suite cannot see because its arrays are
concrete: the namespace's names and signatures (the standard's, transcribed below from the
spec's 2024.12 stubs), its inspection object, ``finfo``/``iinfo``, and, inside ``grad``,
``vmap`` and ``jit``, the tracers' array object (DLPack, 0-d boolean indices) and what
``capabilities()`` claims there.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax.cli.standard_namespace import base_namespace, namespace
from unijax.errors import ConcretizationError

BASES = ["numpy", "array_api_strict"]

#: Every function of the 2024.12 standard, by signature (parameter names and kinds only).
SIGNATURES = {
    "(x, /)": """
        abs acos acosh asin asinh atan atanh bitwise_invert ceil conj cos cosh exp expm1
        floor imag isfinite isinf isnan linalg.det linalg.eigh linalg.eigvalsh
        linalg.inv linalg.matrix_transpose linalg.slogdet linalg.svdvals log log10 log1p
        log2 logical_not matrix_transpose negative nonzero positive real reciprocal
        round sign signbit sin sinh sqrt square tan tanh trunc unique_all unique_counts
        unique_inverse unique_values""",
    "(x1, x2, /)": """
        add atan2 bitwise_and bitwise_left_shift bitwise_or bitwise_right_shift
        bitwise_xor copysign divide equal floor_divide greater greater_equal hypot less
        less_equal linalg.matmul linalg.outer linalg.solve logaddexp logical_and
        logical_or logical_xor matmul maximum minimum multiply nextafter not_equal pow
        remainder subtract""",
    "(x, /, *, axis, keepdims)": "all any argmax argmin count_nonzero max mean min",
    "(x, /, *, n, axis, norm)": "fft.fft fft.hfft fft.ifft fft.ihfft fft.irfft fft.rfft",
    "(x, /, *, s, axes, norm)": "fft.fftn fft.ifftn fft.irfftn fft.rfftn",
    "(shape, *, dtype, device)": "empty ones zeros",
    "(x, /, *, dtype, device)": "empty_like ones_like zeros_like",
    "(x1, x2, /, *, axis)": "linalg.cross linalg.vecdot vecdot",
    "(x, /, *, axis, descending, stable)": "argsort sort",
    "(arrays, /, *, axis)": "concat stack",
    "(x, /, *, axis, dtype, include_initial)": "cumulative_prod cumulative_sum",
    "(x, /, axis)": "expand_dims squeeze",
    "(n, /, *, d, dtype, device)": "fft.fftfreq fft.rfftfreq",
    "(x, /, *, axes)": "fft.fftshift fft.ifftshift",
    "(type, /)": "finfo iinfo",
    "(x, /, *, axis)": "flip unstack",
    "(x, /, *, rtol)": "linalg.matrix_rank linalg.pinv",
    "(x1, x2, /, *, axes)": "linalg.tensordot tensordot",
    "(x, /, *, axis, dtype, keepdims)": "prod sum",
    "(x, /, *, axis, correction, keepdims)": "std var",
    "(x, indices, /, *, axis)": "take take_along_axis",
    "(x, /, *, k)": "tril triu",
    "()": "__array_namespace_info__",
    "(start, /, stop, step, *, dtype, device)": "arange",
    "(obj, /, *, dtype, device, copy)": "asarray",
    "(x, dtype, /, *, copy, device)": "astype",
    "(*arrays)": "broadcast_arrays",
    "(x, /, shape)": "broadcast_to",
    "(from_, to, /)": "can_cast",
    "(x, /, min, max)": "clip",
    "(x, /, *, axis, n, prepend, append)": "diff",
    "(n_rows, n_cols, /, *, k, dtype, device)": "eye",
    "(x, /, *, device, copy)": "from_dlpack",
    "(shape, fill_value, *, dtype, device)": "full",
    "(x, /, fill_value, *, dtype, device)": "full_like",
    "(dtype, kind)": "isdtype",
    "(x, /, *, upper)": "linalg.cholesky",
    "(x, /, *, offset)": "linalg.diagonal",
    "(x, /, *, keepdims, ord)": "linalg.matrix_norm",
    "(x, n, /)": "linalg.matrix_power",
    "(x, /, *, mode)": "linalg.qr",
    "(x, /, *, full_matrices)": "linalg.svd",
    "(x, /, *, offset, dtype)": "linalg.trace",
    "(x, /, *, axis, keepdims, ord)": "linalg.vector_norm",
    "(start, stop, /, num, *, dtype, device, endpoint)": "linspace",
    "(*arrays, indexing)": "meshgrid",
    "(x, source, destination, /)": "moveaxis",
    "(x, /, axes)": "permute_dims",
    "(x, repeats, /, *, axis)": "repeat",
    "(x, /, shape, *, copy)": "reshape",
    "(*arrays_and_dtypes)": "result_type",
    "(x, /, shift, *, axis)": "roll",
    "(x1, x2, /, *, side, sorter)": "searchsorted",
    "(x, repetitions, /)": "tile",
    "(condition, x1, x2, /)": "where",
}
FUNCTIONS = {name: sig for sig, names in SIGNATURES.items() for name in names.split()}
INFO_SIGNATURES = {"capabilities": "()", "default_device": "()",
                   "default_dtypes": "(*, device)", "devices": "()",
                   "dtypes": "(*, device, kind)"}
#: The array object's methods and attributes.
METHODS = {
    "(self, other, /)": """
        __add__ __and__ __eq__ __floordiv__ __ge__ __gt__ __le__ __lshift__ __lt__
        __matmul__ __mod__ __mul__ __ne__ __or__ __pow__ __rshift__ __sub__ __truediv__
        __xor__""",
    "(self, /)": """
        __abs__ __bool__ __complex__ __dlpack_device__ __float__ __index__ __int__
        __invert__ __neg__ __pos__""",
    "(self, /, *, api_version)": "__array_namespace__",
    "(self, /, *, stream, max_version, dl_device, copy)": "__dlpack__",
    "(self, key, /)": "__getitem__",
    "(self, key, value, /)": "__setitem__",
    "(self, device, /, *, stream)": "to_device",
}
ATTRIBUTES = ("T", "device", "dtype", "mT", "ndim", "shape", "size")
DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float32", "float64", "complex64", "complex128")
CONSTANTS = ("e", "inf", "nan", "pi", "newaxis")
#: Names of later versions of the standard, or of the bases only, that a 2024.12 traced
#: namespace must not offer (a base's function would meet tracers it cannot handle).
ABSENT = ("isin", "linalg.eig", "linalg.eigvals", "nanmean", "float_power")


def _stub(sig: str) -> inspect.Signature:
    scope: dict[str, Any] = {}
    exec(f"def stub{sig}: pass", scope)
    return inspect.signature(scope["stub"])


def _signature_problem(fn: Any, sig: str) -> str | None:
    """Why ``fn`` does not take the arguments the standard's ``sig`` says (the rules of
    array-api-tests' test_signatures: extra parameters are allowed, names of positional-only
    parameters are free, a keyword-only parameter may also be positional-or-keyword)."""
    try:
        have = inspect.signature(fn)
    except (TypeError, ValueError):
        return "its signature cannot be inspected"
    params = list(have.parameters.values())
    want = list(_stub(sig).parameters.values())
    positional = [p for p in want if p.kind != p.KEYWORD_ONLY]
    for i, w in enumerate(positional):
        if i >= len(params):
            return f"argument {w.name!r} is missing"
        p = params[i]
        if w.kind not in (w.POSITIONAL_ONLY, w.VAR_POSITIONAL, w.VAR_KEYWORD) and p.name != w.name:
            return f"argument {i} is named {p.name!r}, not {w.name!r}"
        if w.kind in (w.POSITIONAL_OR_KEYWORD, w.VAR_POSITIONAL, w.VAR_KEYWORD) and \
                p.kind != w.kind:
            return f"{p.name!r} is {p.kind.description}, not {w.kind.description}"
    for w in want[len(positional):]:
        named = have.parameters.get(w.name)
        if named is None:
            return f"keyword argument {w.name!r} is missing"
        if named.kind not in (named.KEYWORD_ONLY, named.POSITIONAL_OR_KEYWORD):
            return f"{w.name!r} is {named.kind.description}, not keyword-only"
    return None


def _get(xp: Any, name: str) -> Any:
    for part in name.split("."):
        xp = getattr(xp, part)
    return xp


def _has(xp: Any, name: str) -> bool:
    try:
        _get(xp, name)
    except AttributeError:
        return False
    return True


# --- running a probe inside a transform ----------------------------------------------------

TRANSFORMS = ("grad", "vmap", "jit", "vmap-in-grad")
#: Whether each transform allows results whose shape depends on values.
DATA_DEPENDENT = {"grad": True, "vmap": False, "jit": False, "vmap-in-grad": False}


def _inside(transform: str, backend: str, probe: Callable[[Any, Any], Any]) -> Any:
    """What ``probe(x, xp)`` returns for a traced ``x`` of shape (3,) under ``transform``."""
    found: dict[str, Any] = {}

    def f(x: Any) -> Any:
        xp = array_namespace(x)
        found["value"] = probe(x, xp)
        return xp.sum(x * x)

    def summed(g: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return lambda y: array_namespace(y).sum(g(y))

    rows = unijax.asarray(np.arange(6.0).reshape(2, 3), backend=backend)
    if transform == "grad":
        unijax.grad(f, backend=backend)(rows[0, :])
    elif transform == "vmap":
        unijax.vmap(f, backend=backend)(rows)
    elif transform == "jit":
        unijax.jit(f, backend=backend)(rows[0, :])
    else:
        unijax.grad(summed(unijax.vmap(f, backend=backend)), backend=backend)(rows)
    return found["value"]


# --- names and signatures ------------------------------------------------------------------


@pytest.mark.parametrize("base", BASES)
def test_namespace_has_every_name_of_the_standard(base: str) -> None:
    xp = namespace(base)
    assert xp.__array_api_version__ == "2024.12"
    names = [*FUNCTIONS, *DTYPES, *CONSTANTS, "linalg", "fft"]
    assert [n for n in names if not _has(xp, n)] == []


@pytest.mark.parametrize("base", BASES)
def test_namespace_offers_no_name_beyond_the_standard(base: str) -> None:
    xp = namespace(base)
    assert [n for n in ABSENT if _has(xp, n)] == []
    # Whatever it lists, it has.
    listed = [n for n in dir(xp) if not n.startswith("_") or n == "__array_namespace_info__"]
    assert [n for n in listed if not _has(xp, n)] == []


@pytest.mark.parametrize("transform", ["grad", "vmap"])
def test_names_beyond_the_standard_are_absent_under_transforms(transform: str) -> None:
    present = _inside(transform, "numpy", lambda x, xp: [n for n in ABSENT if _has(xp, n)])
    assert present == []


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_signature(base: str, name: str) -> None:
    problem = _signature_problem(_get(namespace(base), name), FUNCTIONS[name])
    assert problem is None, f"{name}{FUNCTIONS[name]}: {problem}"


#: Calls the standard allows that spell an argument by keyword (or axis by position).
KEYWORD_CALLS: dict[str, Callable[[Any, Any], bool]] = {
    "full_like": lambda x, xp: xp.full_like(x, fill_value=3.0).shape == x.shape,
    "expand_dims": lambda x, xp: (xp.expand_dims(x, 0).shape,
                                  xp.expand_dims(x, axis=1).shape) == ((1, 3), (3, 1)),
    "isdtype": lambda x, xp: xp.isdtype(dtype=x.dtype, kind="real floating") is True,
}


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("call", KEYWORD_CALLS)
def test_standard_keywords_are_accepted(base: str, call: str) -> None:
    xp = namespace(base)
    assert KEYWORD_CALLS[call](xp.asarray([1.0, 2.0, 3.0]), xp)


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("call", KEYWORD_CALLS)
def test_standard_keywords_are_accepted_on_tracers(call: str, transform: str) -> None:
    assert _inside(transform, "numpy", KEYWORD_CALLS[call])


# --- the inspection object -----------------------------------------------------------------


def _check_info(info: Any, base: Any) -> None:
    for name, sig in INFO_SIGNATURES.items():
        problem = _signature_problem(getattr(info, name), sig)
        assert problem is None, f"__array_namespace_info__().{name}{sig}: {problem}"
    devices = info.devices()
    assert type(devices) is list
    assert devices == list(base.__array_namespace_info__().devices())
    assert info.default_device() in devices
    assert isinstance(info.default_dtypes(), dict)
    assert isinstance(info.dtypes(kind="real floating"), dict)
    caps = info.capabilities()
    assert isinstance(caps, dict)
    assert {"boolean indexing", "data-dependent shapes", "max dimensions"} <= set(caps)


@pytest.mark.parametrize("base", BASES)
def test_inspection_object(base: str) -> None:
    _check_info(namespace(base).__array_namespace_info__(), base_namespace(base))


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("base", BASES)
def test_inspection_object_under_transforms(base: str, transform: str) -> None:
    info = _inside(transform, base, lambda x, xp: xp.__array_namespace_info__())
    _check_info(info, base_namespace(base))


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_capabilities_say_what_the_transform_allows(transform: str) -> None:
    caps = _inside(transform, "numpy",
                   lambda x, xp: xp.__array_namespace_info__().capabilities())
    allowed = DATA_DEPENDENT[transform]
    assert caps["boolean indexing"] is allowed
    assert caps["data-dependent shapes"] is allowed


# --- finfo and iinfo -----------------------------------------------------------------------


def _check_finfo(xp: Any) -> None:
    for dtype, real in ((xp.float32, xp.float32), (xp.float64, xp.float64),
                        (xp.complex64, xp.float32)):
        info = xp.finfo(dtype)
        assert type(info.bits) is int
        for field in ("eps", "max", "min", "smallest_normal"):
            assert type(getattr(info, field)) is float, (dtype, field, getattr(info, field))
        assert info.dtype == real
    info = xp.iinfo(xp.int16)
    assert (type(info.bits), type(info.max), type(info.min)) == (int, int, int)
    assert info.dtype == xp.int16


@pytest.mark.parametrize("base", BASES)
def test_finfo_fields_are_python_numbers(base: str) -> None:
    _check_finfo(namespace(base))


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("base", BASES)
def test_finfo_under_transforms(base: str, transform: str) -> None:
    _inside(transform, base, lambda x, xp: _check_finfo(xp))


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_dtype_functions_under_transforms_return_plain_values(transform: str) -> None:
    def probe(x: Any, xp: Any) -> Any:
        kind = xp.isdtype(x.dtype, "real floating")
        cast = xp.can_cast(xp.float32, xp.float64)
        promoted = xp.result_type(x, xp.float32)
        return (type(kind).__name__, type(cast).__name__, kind is True, cast is True,
                promoted == xp.float64)

    assert _inside(transform, "numpy", probe) == ("bool", "bool", True, True, True)


# --- the tracers' array object -------------------------------------------------------------


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_tracer_has_the_array_objects_methods(transform: str) -> None:
    def probe(x: Any, xp: Any) -> Any:
        problems = {}
        for sig, names in METHODS.items():
            for name in names.split():
                method = getattr(type(x), name, None)
                problems[name] = ("missing" if method is None
                                  else _signature_problem(method, sig))
        x2 = xp.reshape(x, (1, 3))
        for name in ATTRIBUTES:
            problems[name] = None if hasattr(x2, name) else "missing"
        return {k: v for k, v in problems.items() if v is not None}

    assert _inside(transform, "numpy", probe) == {}


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("base", BASES)
def test_tracer_dlpack(base: str, transform: str) -> None:
    def probe(x: Any, xp: Any) -> Any:
        device = x.__dlpack_device__()
        # BufferError, as the standard says; a unijax ConcretizationError as well.
        with pytest.raises(BufferError) as info:
            x.__dlpack__()
        assert isinstance(info.value, ConcretizationError)
        return device

    device = _inside(transform, base, probe)
    concrete = base_namespace(base).asarray([1.0, 2.0, 3.0])
    assert isinstance(device, tuple) and len(device) == 2
    assert all(isinstance(v, int) for v in device)
    assert device == tuple(concrete.__dlpack_device__())


@pytest.mark.parametrize("base", BASES)
def test_zero_dimensional_boolean_index_where_boolean_indexing_is_claimed(base: str) -> None:
    def f(x: Any) -> Any:
        xp = array_namespace(x)
        assert xp.__array_namespace_info__().capabilities()["boolean indexing"] is True
        kept, dropped = x[xp.asarray(True)], x[xp.asarray(False)]
        assert (kept.shape, dropped.shape) == ((1, 3), (0, 3))
        return xp.sum(kept * kept) + xp.sum(dropped)

    x = unijax.asarray(np.asarray([1.0, 2.0, 4.0]), backend=base)
    grad = unijax.grad(f, backend=base)(x)
    np.testing.assert_allclose(np.asarray(unijax.to_backend(grad, "numpy")), [2.0, 4.0, 8.0])
