"""Survey: unijax's transforms on real Array API code from other libraries.

Runs a fixed list of functions that SciPy (with ``SCIPY_ARRAY_API=1``) and
``array_api_extra`` implement against the Array API standard — ``scipy.special``,
``scipy.stats``, ``scipy.signal``, ``scipy.integrate``, ``scipy.optimize``, ``scipy.fft``,
``scipy.ndimage`` functions that SciPy lists as array-API capable, and most of
``array_api_extra`` — under ``unijax.grad``, ``unijax.vmap`` and ``unijax.jit`` on each
backend (``backend=`` of the transform, inputs made with ``unijax.asarray(...,
backend=name)``), all on small float64 inputs, and checks every answer:

* ``grad``: of a weighted sum of the output (fixed, non-uniform weights, so that outputs
  whose plain sum is constant, such as ``softmax`` or ``zscore``, still have a non-zero
  gradient) with respect to the first argument, against central finite differences of
  the same function computed with NumPy;
* ``vmap``: over a leading batch axis (3) of the first argument, against a Python loop
  of eager calls on the same backend;
* ``jit``: against the eager call on the same backend, on two different inputs (the
  second call reuses the compiled function, so a value baked in at trace time shows).

Each (function, transform, backend) is classified as

* ``ok``;
* ``wrong``: no exception, but a wrong value, shape or dtype (a silent wrong answer, the
  worst case);
* ``error``: an exception (its type and first line are recorded, with the innermost
  frame that raised it), or the time limit;
* ``unsupported-by-library``: the eager call on plain arrays of that backend already
  fails (or, for ``grad``, the NumPy reference does), so unijax is not to blame.

Functions whose output is not floating point (``nunique``, ``isclose``, ...) have no
``grad`` case, nor do set operations, whose output size changes with the values. For
JAX, a case that is not ``ok`` also records whether the native ``jax.grad``/``jax.vmap``/
``jax.jit`` of the same code runs without an exception (``native_jax``), and SciPy's own
capability notes for the function (``xp_capabilities``: ``np_only``, ``cpu_only``,
``jax_jit``, skipped backends) are recorded with each case.

Cases run in worker processes (``--jobs``, default 2), one function's cases after
another, each under a limit of CPU time (``--timeout``); a case that crashes or hangs its
worker is recorded and the worker replaced, so one failure never stops the survey. The
full survey costs about two and a half minutes of CPU time, most of it JAX compiling
op by op: one to two minutes on an idle two-core machine, more when it is busy.

Run::

    python benchmarks/outside_code.py [--json FILE] [--backend numpy,jax]
        [--transform grad,vmap] [--filter SUBSTRING] [--jobs N] [--timeout SECONDS]
        [--verbose]

It prints a table of counts per transform x backend x class, the ``wrong`` cases and the
most common error messages. Against another checkout of unijax, put its sources first
on ``PYTHONPATH`` (``src``, ``plugins`` and ``conformance``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import math
import multiprocessing
import os
import platform
import queue
import re
import signal
import sys
import threading
import time
import traceback
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

os.environ["SCIPY_ARRAY_API"] = "1"  # read by SciPy when it is first imported

import numpy as np

BACKENDS = ("numpy", "array_api_strict", "autograd", "jax")
TRANSFORMS = ("grad", "vmap", "jit")
CLASSES = ("ok", "wrong", "error", "unsupported-by-library")
BATCH = 3
JIT_RTOL, JIT_ATOL = 1e-6, 1e-9  # vmap and jit: same arithmetic, up to reassociation
FD_RTOL, FD_ATOL = 1e-4, 1e-6  # grad: central differences (atol scaled by the gradient)
STARTUP_S = 180.0  # time a new worker may take to import the libraries


# --------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------


class Fn:
    """A library function resolved on first call, with fixed keyword arguments.

    Args:
        path: Dotted path of the function, e.g. ``"scipy.special.erf"``.
        out: Attribute of the result to return (for functions returning result objects).
        **kwargs: Keyword arguments passed on every call.
    """

    def __init__(self, path: str, out: str | None = None, **kwargs: Any) -> None:
        self.path, self.out, self.kwargs = path, out, kwargs
        self._fn: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        """Import and return the library function."""
        if self._fn is None:
            module, _, name = self.path.rpartition(".")
            self._fn = getattr(importlib.import_module(module), name)
        return self._fn

    def __call__(self, *args: Any) -> Any:
        result = self.resolve()(*args, **self.kwargs)
        return getattr(result, self.out) if self.out else result


@dataclass(frozen=True)
class Case:
    """One library function with its inputs.

    Attributes:
        name: Label, the function's dotted path plus a qualifier where one path has
            several cases.
        call: ``call(*arrays)`` runs the function and returns one array.
        make: ``make(rng)`` returns the NumPy inputs; the first is the one transformed.
        grad: Whether ``grad`` is checked: the output is floating point and has a
            finite-difference reference.
        target: The library function (for its capability notes), if ``call`` is not one.
    """

    name: str
    call: Callable[..., Any]
    make: Callable[[np.random.Generator], tuple[np.ndarray, ...]]
    grad: bool = True
    target: str | None = None


def _pos(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape)


def _unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.uniform(0.05, 0.95, shape)


def _real(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.normal(size=shape)


def _with_nan(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=n)
    x[2] = np.nan
    return x


def _case(path: str, make: Callable[[np.random.Generator], tuple[np.ndarray, ...]], *,
          label: str = "", out: str | None = None, grad: bool = True,
          **kwargs: Any) -> Case:
    return Case(path + (f"[{label}]" if label else ""), Fn(path, out, **kwargs), make, grad,
                path)


def _xp(x: Any) -> Any:
    from array_api_compat import array_namespace

    return array_namespace(x)


def _broadcast_shapes(x: Any) -> Any:
    import array_api_extra as xpx

    return _xp(x).broadcast_to(x, xpx.broadcast_shapes(x.shape, (2, 1)))


def _apply_where(x: Any) -> Any:
    import array_api_extra as xpx

    return xpx.apply_where(x > 0, (x,), lambda a: a**2, lambda a: -a)


def _at_set(x: Any) -> Any:
    import array_api_extra as xpx

    return xpx.at(x)[1:3].set(0.0)


def _at_multiply(x: Any) -> Any:
    import array_api_extra as xpx

    return xpx.at(x)[::2].multiply(2.0)


def _at_mask(x: Any) -> Any:
    import array_api_extra as xpx

    return xpx.at(x)[x > 0].add(1.0)


def _quantile(x: Any) -> Any:
    import scipy.stats

    return scipy.stats.quantile(x, _xp(x).asarray(0.3, dtype=x.dtype))


def _cases() -> list[Case]:
    """The survey's functions and inputs (NumPy arrays, float64 unless stated)."""
    real6 = lambda rng: (_real(rng, 6),)  # noqa: E731
    pos6 = lambda rng: (_pos(rng, 6),)  # noqa: E731
    unit6 = lambda rng: (_unit(rng, 6),)  # noqa: E731
    pos_pos = lambda rng: (_pos(rng, 6), _pos(rng, 6))  # noqa: E731
    real8 = lambda rng: (_real(rng, 8),)  # noqa: E731
    pos8 = lambda rng: (_pos(rng, 8),)  # noqa: E731
    real_real8 = lambda rng: (_real(rng, 8), _real(rng, 8))  # noqa: E731
    sp, st = "scipy.special.", "scipy.stats."
    cases = [
        *(_case(sp + name, real6) for name in
          ("erf", "erfc", "ndtr", "log_ndtr", "expit", "i0", "i0e", "i1", "exprel")),
        *(_case(sp + name, pos6) for name in ("gammaln", "psi", "entr", "cbrt", "sinc")),
        *(_case(sp + name, unit6) for name in ("ndtri", "logit")),
        *(_case(sp + name, pos_pos) for name in
          ("xlogy", "xlog1py", "rel_entr", "kl_div", "betaln", "gammainc", "boxcox")),
        _case(sp + "huber", lambda rng: (_pos(rng, 6), _real(rng, 6))),
        _case(sp + "logsumexp", lambda rng: (_real(rng, 3, 4),), axis=-1),
        _case(sp + "softmax", real6),
        _case(sp + "log_softmax", lambda rng: (_real(rng, 3, 4),), axis=-1),
        *(_case(st + name, real8) for name in
          ("zscore", "skew", "kurtosis", "tvar", "tstd", "tsem", "sem", "kstat",
           "kstatvar", "circmean", "circvar", "circstd", "iqr", "median_abs_deviation",
           "differential_entropy", "rankdata", "tmin", "tmax")),
        *(_case(st + name, pos8) for name in
          ("variation", "gmean", "hmean", "gstd", "gzscore", "entropy")),
        _case(st + "moment", real8, order=3),
        _case(st + "pmean", pos8, p=2.5),
        _case(st + "tmean", real8, limits=(-1.0, 1.0)),
        _case(st + "trim_mean", real8, proportiontocut=0.2),
        _case(st + "expectile", real8, alpha=0.3),
        _case(st + "lmoment", real8, label="order=3", order=3),
        _case(st + "zmap", real_real8),
        _case(st + "entropy", lambda rng: (_pos(rng, 8), _pos(rng, 8)), label="pk,qk"),
        _case(st + "boxcox_llf", lambda rng: (np.asarray(rng.uniform(0.2, 0.8)),
                                              _pos(rng, 8))),
        _case(st + "yeojohnson_llf", lambda rng: (np.asarray(rng.uniform(0.2, 0.8)),
                                                  _real(rng, 8))),
        _case(st + "pearsonr", real_real8, out="statistic"),
        _case(st + "ttest_1samp", real8, out="statistic", popmean=0.25),
        _case(st + "ttest_ind", real_real8, out="statistic"),
        _case(st + "chisquare", pos8, out="statistic"),
        _case(st + "linregress", real_real8, out="slope"),
        _case(st + "wasserstein_distance", real_real8),
        _case(st + "energy_distance", real_real8),
        Case(st + "quantile", _quantile, real8, target=st + "quantile"),
        _case("scipy.signal.convolve", lambda rng: (_real(rng, 8), _real(rng, 3))),
        _case("scipy.signal.correlate", lambda rng: (_real(rng, 8), _real(rng, 3))),
        _case("scipy.signal.fftconvolve", lambda rng: (_real(rng, 8), _real(rng, 3))),
        _case("scipy.signal.detrend", real8),
        _case("scipy.signal.lfilter", lambda rng: (_real(rng, 2), np.asarray([1.0, -0.2]),
                                                   _real(rng, 8))),
        _case("scipy.signal.savgol_filter", real8, window_length=5, polyorder=2),
        _case("scipy.integrate.trapezoid", real8),
        _case("scipy.integrate.simpson", real8),
        _case("scipy.integrate.cumulative_trapezoid", real8),
        _case("scipy.integrate.cumulative_simpson", real8),
        _case("scipy.integrate.romb", lambda rng: (_real(rng, 9),)),
        _case("scipy.optimize.rosen", real6),
        _case("scipy.optimize.rosen_der", real6),
        _case("scipy.fft.dct", real8),
        _case("scipy.ndimage.gaussian_filter1d", real8, sigma=1.0),
        _case("scipy.ndimage.uniform_filter1d", real8, size=3),
    ]
    xpx = "array_api_extra."
    ints = lambda rng: (rng.integers(0, 4, 6),)  # noqa: E731
    # Three values common to every draw, three drawn: set operations keep their sizes
    # across the vmap batch. Their output changes size when an element moves off a shared
    # value, so they have no finite-difference reference and no grad case.
    common = np.asarray([0.5, -1.0, 1.5])
    overlap = lambda rng: (np.concatenate([common, _real(rng, 3)]), common.copy())  # noqa: E731
    cases += [
        _case(xpx + "atleast_nd", real6, ndim=3),
        _case(xpx + "cov", lambda rng: (_real(rng, 3, 6),)),
        _case(xpx + "create_diagonal", real6),
        _case(xpx + "expand_dims", real6, axis=(0, 2)),
        _case(xpx + "kron", lambda rng: (_real(rng, 2, 2), _real(rng, 2, 3))),
        _case(xpx + "pad", real6, pad_width=2),
        _case(xpx + "sinc", real6),
        _case(xpx + "deg2rad", real6),
        _case(xpx + "rad2deg", real6),
        _case(xpx + "nan_to_num", lambda rng: (_with_nan(rng, 6),)),
        _case(xpx + "nansum", lambda rng: (_with_nan(rng, 6),)),
        _case(xpx + "nanmean", lambda rng: (_with_nan(rng, 6),)),
        _case(xpx + "nanmax", lambda rng: (_with_nan(rng, 6),)),
        _case(xpx + "setdiff1d", overlap, grad=False),
        _case(xpx + "union1d", overlap, grad=False),
        _case(xpx + "nunique", lambda rng: (rng.integers(0, 4, 6).astype(np.float64),),
              grad=False),
        _case(xpx + "isclose", lambda rng: (lambda x: (x, x + np.where(
            np.arange(6) % 2, 1e-12, 1e-3)))(_real(rng, 6)), grad=False),
        _case(xpx + "isin", overlap, grad=False),
        _case(xpx + "searchsorted", lambda rng: (np.sort(_real(rng, 6)), _real(rng, 4)),
              grad=False),
        _case(xpx + "one_hot", ints, grad=False, num_classes=4),
        Case(xpx + "broadcast_shapes", _broadcast_shapes, real6, target=xpx +
             "broadcast_shapes"),
        Case(xpx + "apply_where", _apply_where, real6, target=xpx + "apply_where"),
        Case(xpx + "at[slice].set", _at_set, real6, target=xpx + "at"),
        Case(xpx + "at[::2].multiply", _at_multiply, real6, target=xpx + "at"),
        Case(xpx + "at[mask].add", _at_mask, real6, target=xpx + "at"),
    ]
    return cases


CASES = {case.name: case for case in _cases()}


# --------------------------------------------------------------------------------------
# Running one case (in a worker process)
# --------------------------------------------------------------------------------------


class CaseTimeout(BaseException):  # not an Exception: library code may catch those
    """The case ran past its time limit."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`CaseTimeout` after ``seconds`` of this process's CPU time.

    CPU time rather than wall time, so that a loaded machine does not turn slow cases into
    failures; the signal repeats every second, in case the first lands in code that
    swallows it (a callback whose exceptions are ignored).
    """
    active = [True]

    def _raise(signum: int, frame: Any) -> None:
        if active[0]:
            raise CaseTimeout(f"ran past the limit of {seconds:g} s of CPU time")

    previous = signal.signal(signal.SIGPROF, _raise)
    signal.setitimer(signal.ITIMER_PROF, seconds, 1.0)
    try:
        yield
    finally:
        active[0] = False
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def _frame(frame: traceback.FrameSummary) -> str:
    """``package/module.py:line`` of a traceback frame (the last path parts only)."""
    parts = frame.filename.replace("\\", "/").split("/")
    for anchor in ("site-packages", "src", "plugins", "benchmarks"):
        if anchor in parts:
            parts = parts[len(parts) - parts[::-1].index(anchor):]
            break
    return f"{'/'.join(parts[-4:])}:{frame.lineno}"


def _ours(frame: traceback.FrameSummary) -> bool:
    """Whether a frame is in unijax, one of its plugins, or this script."""
    path = frame.filename.replace("\\", "/")
    return "/unijax/" in path or "/unijax_" in path or path.endswith("/outside_code.py")


def _describe(exc: BaseException) -> dict[str, str]:
    """Type and first line of an exception, the innermost frame (``where``) and the
    innermost frame outside unijax and this script (``caller``: the library line)."""
    lines = str(exc).strip().splitlines()
    frames = traceback.extract_tb(exc.__traceback__)
    outside = [f for f in frames if not _ours(f)]
    return {"type": type(exc).__name__, "message": lines[0][:300] if lines else "",
            "where": _frame(frames[-1]) if frames else "",
            "caller": _frame(outside[-1]) if outside else ""}


def _to_numpy(x: Any) -> np.ndarray:
    """A NumPy copy of an array of any backend (or a Python scalar)."""
    if isinstance(x, np.ndarray | np.generic | bool | int | float):
        return np.asarray(x)
    if type(x).__module__.startswith("array_api_strict"):
        return np.asarray(x._array)
    return np.asarray(x)


def _compare(got: Any, ref: np.ndarray, rtol: float, atol: float,
             dtype: np.dtype | None = None) -> str | None:
    """None if ``got`` matches ``ref``, else what differs."""
    try:
        value = _to_numpy(got)
    except Exception as exc:
        return f"the result ({type(got).__name__}) is not an array: {_describe(exc)['type']}"
    if value.shape != ref.shape:
        return f"shape {value.shape}, expected {ref.shape}"
    expected_dtype = ref.dtype if dtype is None else dtype
    if value.dtype != expected_dtype:
        return f"dtype {value.dtype}, expected {expected_dtype}"
    if ref.dtype.kind in "biu" or value.dtype.kind in "biu":
        return None if np.array_equal(value, ref) else f"got {value!r}, expected {ref!r}"
    if np.allclose(value, ref, rtol=rtol, atol=atol, equal_nan=True):
        return None
    if np.all(value == 0) and np.any(ref != 0):
        return f"all zeros, expected {np.array2string(ref, precision=4)}"
    with np.errstate(invalid="ignore"):
        err = np.nanmax(np.abs(value - ref)) if value.size else 0.0
    return (f"max abs error {err:.3g}: got {np.array2string(value, precision=4)}, "
            f"expected {np.array2string(ref, precision=4)}")


def _weights(shape: tuple[int, ...]) -> np.ndarray:
    size = math.prod(shape)
    return (1.0 + 0.5 * np.sin(np.arange(1, size + 1))).reshape(shape)


def _weighted_sum(call: Callable[..., Any], weights: np.ndarray) -> Callable[..., Any]:
    """``x, *rest -> sum(call(x, *rest) * weights)``, written against the Array API."""
    flat = weights.tolist()

    def loss(x: Any, *rest: Any) -> Any:
        y = call(x, *rest)
        xp = _xp(y)
        return xp.sum(y * xp.asarray(flat, dtype=y.dtype))

    return loss


class _Outcome(Exception):
    """Ends a case early with a classification."""

    def __init__(self, cls: str, **info: Any) -> None:
        super().__init__(cls)
        self.cls, self.info = cls, info


class Runner:
    """Runs cases in this process, caching inputs and references per function."""

    def __init__(self) -> None:
        import unijax

        self.unijax = unijax
        self._inputs: dict[str, Any] = {}
        self._eager: dict[tuple[str, str, str], Any] = {}
        self._fd: dict[str, Any] = {}

    # inputs and references ---------------------------------------------------------

    def inputs(self, name: str) -> dict[str, Any]:
        """The case's NumPy inputs: ``a`` and ``b`` (two draws) and the vmap ``batch``."""
        if name not in self._inputs:
            case = CASES[name]
            rng = np.random.default_rng(zlib.crc32(name.encode()))
            a, b = case.make(rng), case.make(rng)
            batch = np.stack([a[0], b[0], *(case.make(rng)[0] for _ in range(BATCH - 2))])
            self._inputs[name] = {"a": a, "b": b, "batch": batch}
        return self._inputs[name]

    def on_backend(self, arrays: Sequence[np.ndarray], backend: str) -> tuple[Any, ...]:
        """The arrays as arrays of ``backend``, made with ``unijax.asarray``."""
        try:  # fresh copies: library code may write into its inputs (``xpx.at``)
            return tuple(self.unijax.asarray(np.array(a), backend=backend) for a in arrays)
        except Exception as exc:
            raise _Outcome("error", stage="asarray", **_describe(exc)) from exc

    def eager(self, name: str, which: str, backend: str) -> Any:
        """The eager result (NumPy copy) on ``backend`` for input ``a``, ``b`` or ``loop``.

        Raises:
            _Outcome: ``unsupported-by-library`` if the library fails on these arrays.
        """
        key = (name, which, backend)
        if key not in self._eager:
            case, inputs = CASES[name], self.inputs(name)
            try:
                if which == "loop":
                    rest = inputs["a"][1:]
                    outs = [_to_numpy(case.call(*self.on_backend((row, *rest), backend)))
                            for row in inputs["batch"]]
                    self._eager[key] = ("ok", np.stack(outs))
                else:
                    out = case.call(*self.on_backend(inputs[which], backend))
                    self._eager[key] = ("ok", _to_numpy(out))
            except _Outcome:
                raise
            except Exception as exc:
                self._eager[key] = ("fail", _describe(exc))
        status, value = self._eager[key]
        if status == "fail":
            raise _Outcome("unsupported-by-library", stage=f"eager ({which})", **value)
        return value

    def finite_differences(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Weights and central-difference gradient of the weighted sum, with NumPy."""
        if name not in self._fd:
            case, inputs = CASES[name], self.inputs(name)
            x, *rest = inputs["a"]
            try:
                y0 = np.asarray(case.call(x.copy(), *(r.copy() for r in rest)))
                weights = _weights(y0.shape)

                def loss(z: np.ndarray) -> float:
                    out = case.call(z, *(r.copy() for r in rest))
                    return float(np.sum(np.asarray(out) * weights))

                grad = np.zeros_like(x)
                for i in np.ndindex(x.shape):
                    h = 1e-6 * max(1.0, abs(float(x[i])))
                    up, down = x.copy(), x.copy()
                    up[i] += h
                    down[i] -= h
                    grad[i] = (loss(up) - loss(down)) / (2 * h)
                self._fd[name] = ("ok", (weights, grad))
            except Exception as exc:
                self._fd[name] = ("fail", _describe(exc))
        status, value = self._fd[name]
        if status == "fail":
            raise _Outcome("unsupported-by-library", stage="numpy reference", **value)
        return value

    # the transforms -------------------------------------------------------------------

    def transformed(self, name: str, transform: str, backend: str,
                    weights: np.ndarray | None = None) -> Callable[..., Any]:
        """The case's function under ``transform`` (for ``backend``, or native JAX)."""
        case = CASES[name]
        nargs = len(self.inputs(name)["a"])
        fun = case.call if weights is None else _weighted_sum(case.call, weights)
        if backend == "native-jax":
            import jax

            transforms: dict[str, Callable[..., Any]] = {
                "grad": lambda: jax.grad(fun),
                "vmap": lambda: jax.vmap(fun, in_axes=(0,) + (None,) * (nargs - 1)),
                "jit": lambda: jax.jit(fun)}
            return transforms[transform]()
        ux = self.unijax
        if transform == "grad":
            return ux.grad(fun, backend=backend)
        if transform == "vmap":
            return ux.vmap(fun, in_axes=(0,) + (None,) * (nargs - 1), backend=backend)
        return ux.jit(fun, backend=backend)

    def check(self, name: str, transform: str, backend: str) -> dict[str, Any]:
        """Run and check one case; raises :class:`_Outcome` unless it is ``ok``."""
        inputs = self.inputs(name)
        if transform == "grad":
            self.eager(name, "a", backend)
            weights, ref = self.finite_differences(name)
            args = self.on_backend(inputs["a"], backend)
            got = self._call(self.transformed(name, "grad", backend, weights), args)
            tol = FD_ATOL * max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
            diff = _compare(got, ref, FD_RTOL, tol, dtype=inputs["a"][0].dtype)
            if diff:
                raise _Outcome("wrong", detail=f"grad vs finite differences: {diff}")
        elif transform == "vmap":
            ref = self.eager(name, "loop", backend)
            args = self.on_backend((inputs["batch"], *inputs["a"][1:]), backend)
            got = self._call(self.transformed(name, "vmap", backend), args)
            diff = _compare(got, ref, JIT_RTOL, JIT_ATOL)
            if diff:
                raise _Outcome("wrong", detail=f"vmap vs loop: {diff}")
        else:
            ref_a, ref_b = self.eager(name, "a", backend), self.eager(name, "b", backend)
            fun = self.transformed(name, "jit", backend)
            for which, ref in (("a", ref_a), ("b", ref_b)):
                got = self._call(fun, self.on_backend(inputs[which], backend))
                diff = _compare(got, ref, JIT_RTOL, JIT_ATOL)
                if diff:
                    call = "first call" if which == "a" else "second call (new values)"
                    raise _Outcome("wrong", detail=f"jit vs eager, {call}: {diff}")
        return {"class": "ok"}

    @staticmethod
    def _call(fun: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        try:
            return fun(*args)
        except Exception as exc:
            raise _Outcome("error", stage="transform", **_describe(exc)) from exc

    def native_jax(self, name: str, transform: str) -> str:
        """Whether JAX's own transform of the same code succeeds: ``ok`` or the error."""
        inputs = self.inputs(name)
        weights = self.finite_differences(name)[0] if transform == "grad" else None
        arrays = (inputs["batch"], *inputs["a"][1:]) if transform == "vmap" else inputs["a"]
        try:
            fun = self.transformed(name, transform, "native-jax", weights)
            import jax.numpy as jnp

            fun(*(jnp.asarray(a) for a in arrays))
        except Exception as exc:
            info = _describe(exc)
            return f"{info['type']}: {info['message']}"
        return "ok"

    def run(self, name: str, transform: str, backend: str) -> dict[str, Any]:
        """One case's record (without timing)."""
        try:
            record = self.check(name, transform, backend)
        except _Outcome as outcome:
            record = {"class": outcome.cls, **outcome.info}
        except Exception as exc:  # a failure of the survey itself
            record = {"class": "error", "stage": "survey", **_describe(exc)}
        if backend == "jax" and record["class"] in ("error", "wrong"):
            try:
                record["native_jax"] = self.native_jax(name, transform)
            except _Outcome as outcome:
                record["native_jax"] = f"not run: {outcome.cls}"
        return record


def _capabilities(path: str | None) -> dict[str, Any] | None:
    """SciPy's ``xp_capabilities`` notes for the function at ``path``, if any."""
    if not path or not path.startswith("scipy."):
        return None
    try:
        from scipy._lib._array_api import xp_capabilities_table

        caps = xp_capabilities_table.get(Fn(path).resolve())
    except Exception:
        return None
    if caps is None:
        return None
    return {"np_only": caps.get("np_only"), "cpu_only": caps.get("cpu_only"),
            "jax_jit": caps.get("jax_jit"),
            "skip_backends": [b for b, _ in caps.get("skip_backends", ())]}


def _worker(conn: Any, timeout: float) -> None:
    """Worker process: import the libraries, then run the cases sent over ``conn``."""
    os.environ["SCIPY_ARRAY_API"] = "1"
    warnings.simplefilter("ignore")
    runner = Runner()
    for module in ("scipy.special", "scipy.stats", "array_api_extra", "array_api_strict",
                   "autograd", "jax"):  # imported before the first case's time limit starts
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    with contextlib.suppress(ImportError):
        # The cases are float64 and the references (the eager call, JAX's own transform)
        # run outside unijax's calls, where JAX computes in float64 only with x64 on: a
        # float64 user of JAX turns it on, as unijax's documentation says.
        import jax

        jax.config.update("jax_enable_x64", True)
    conn.send({"ready": runner.unijax.__file__})
    while True:
        message = conn.recv()
        if message is None:
            return
        name, transform, backend = message
        start = time.perf_counter()
        try:
            with _time_limit(timeout):
                record = runner.run(name, transform, backend)
        except CaseTimeout as exc:
            record = {"class": "error", "stage": "time limit", "type": "Timeout",
                      "message": str(exc), "where": "", "caller": ""}
        record["seconds"] = round(time.perf_counter() - start, 3)
        conn.send(record)


# --------------------------------------------------------------------------------------
# Scheduling (parent process)
# --------------------------------------------------------------------------------------


class _Worker:
    """A worker process and the parent's end of its pipe."""

    def __init__(self, timeout: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, timeout), daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(STARTUP_S):
            self.stop()
            raise RuntimeError("a worker did not start")
        self.unijax_file = self.conn.recv()["ready"]

    def stop(self, kill: bool = False) -> None:
        """End the worker (at once if ``kill``)."""
        if not kill:
            with contextlib.suppress(Exception):
                self.conn.send(None)
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


def run_survey(keys: list[tuple[str, str, str]], jobs: int, timeout: float,
               verbose: bool = False) -> tuple[list[dict[str, Any]], str]:
    """Run every case; returns the records (in the order of ``keys``) and unijax's path."""
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for key in keys:
        groups.setdefault(key[0], []).append(key)
    todo: queue.Queue[list[tuple[str, str, str]]] = queue.Queue()
    for group in groups.values():
        todo.put(group)
    records: dict[tuple[str, str, str], dict[str, Any]] = {}
    found: list[str] = []
    lock = threading.Lock()

    def serve() -> None:
        worker: _Worker | None = None
        while True:
            try:
                group = todo.get_nowait()
            except queue.Empty:
                break
            for key in group:
                if worker is None:
                    worker = _Worker(timeout)
                    found.append(worker.unijax_file)
                worker.conn.send(key)
                record: dict[str, Any]
                if worker.conn.poll(max(120.0, 6 * timeout)):  # wall time: a hung worker
                    try:
                        record = worker.conn.recv()
                    except EOFError:
                        worker.proc.join(5)
                        record = {"class": "error", "stage": "worker", "type": "Crash",
                                  "message": f"worker exited ({worker.proc.exitcode})",
                                  "where": "", "caller": ""}
                        worker.stop(kill=True)
                        worker = None
                else:
                    record = {"class": "error", "stage": "worker", "type": "Timeout",
                              "message": "the worker stopped answering", "where": "",
                              "caller": ""}
                    worker.stop(kill=True)
                    worker = None
                with lock:
                    records[key] = record
            if verbose:
                with lock:
                    counts = Counter(records[k]["class"] for k in group)
                print(f"  {group[0][0]}: {dict(counts)}", file=sys.stderr, flush=True)
        if worker is not None:
            worker.stop()

    threads = [threading.Thread(target=serve) for _ in range(max(1, jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out = []
    for key in keys:
        name, transform, backend = key
        case = CASES[name]
        out.append({"function": name, "transform": transform, "backend": backend,
                    **records[key], "library": case.target.split(".")[0] if case.target
                    else name.split(".")[0]})
    return out, found[0] if found else ""


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def summary_table(records: list[dict[str, Any]]) -> str:
    """Counts per transform x backend x class, with totals."""
    counts = Counter((r["transform"], r["backend"], r["class"]) for r in records)
    rows = sorted({(r["transform"], r["backend"]) for r in records},
                  key=lambda tb: (TRANSFORMS.index(tb[0]) if tb[0] in TRANSFORMS else 9,
                                  BACKENDS.index(tb[1]) if tb[1] in BACKENDS else 9, tb))
    head = ["transform", "backend", *CLASSES, "total"]
    lines = [head]
    for transform, backend in rows:
        cells = [counts[(transform, backend, c)] for c in CLASSES]
        lines.append([transform, backend, *map(str, cells), str(sum(cells))])
    totals = [sum(1 for r in records if r["class"] == c) for c in CLASSES]
    lines.append(["all", "", *map(str, totals), str(len(records))])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = []
    for i, line in enumerate(lines):
        text.append("  ".join(cell.ljust(w) if j < 2 else cell.rjust(w)
                              for j, (cell, w) in enumerate(zip(line, widths, strict=True))))
        if i == 0 or i == len(lines) - 2:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


def error_key(record: dict[str, Any]) -> tuple[str, list[str]]:
    """The grouping key of an error, and the names it stands for.

    The key is the exception type and the first line of its message, with quoted names
    replaced by ``'*'``, module paths shortened and numbers replaced by ``N``, so that
    one cause met by several functions (``ufunc 'erf'``, ``ufunc 'ndtr'``) is one group.
    """
    message = record.get("message", "")
    message = re.sub(r"<module '([^']*)' from '[^']*'>", r"<module \1>", message)
    message = re.sub(r"\{([^{}]*)\}", lambda m: "{" + ", ".join(sorted(
        m.group(1).split(", "))) + "}", message)  # sets print in any order
    names = [name for name in re.findall(r"'([^']*)'", message) if name]
    message = re.sub(r"\b\d+\b", "N", re.sub(r"'[^']*'", "'*'", message))
    return f"{record.get('type', '?')}: {message[:150]}", names


def report(records: list[dict[str, Any]], top: int = 15) -> str:
    """The summary table, the ``wrong`` cases and the most common error messages."""
    parts = [summary_table(records)]
    wrong = [r for r in records if r["class"] == "wrong"]
    parts.append(f"\nwrong (silent wrong answers): {len(wrong)}")
    parts += [f"  {r['function']} {r['transform']} {r['backend']}: {r['detail']}"
              for r in wrong]
    errors: Counter[str] = Counter()
    names: dict[str, Counter[str]] = {}
    for r in records:
        if r["class"] == "error":
            key, found = error_key(r)
            errors[key] += 1
            names.setdefault(key, Counter()).update(found)
    parts.append(f"\nmost common errors ({sum(errors.values())} in all):")
    for key, n in errors.most_common(top):
        parts.append(f"  {n:4d}  {key}")
        if names[key]:
            parts.append(f"        ('*': {', '.join(x for x, _ in names[key].most_common(6))})")
    failed_jax = [r for r in records if "native_jax" in r]
    if failed_jax:
        jax_fails = {(r["function"], r["transform"]) for r in failed_jax
                     if r["native_jax"] != "ok"}
        parts.append(f"\nJAX cases not ok: {len(failed_jax)}, of which JAX's own transform "
                     f"fails too: {len(jax_fails)}")
        others = [r for r in records if r["backend"] != "jax" and r["class"] == "error"]
        shared = sum(1 for r in others if (r["function"], r["transform"]) in jax_fails)
        parts.append(f"errors on the other backends: {len(others)}, of which JAX's own "
                     f"transform of the same function fails too: {shared}")
    return "\n".join(parts)


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("numpy", "scipy", "jax", "autograd", "array-api-strict", "array-api-extra",
                 "array-api-compat"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _split(value: str | None, default: Sequence[str], what: str,
           extra: Sequence[str] = ()) -> list[str]:
    if not value:
        return list(default)
    allowed = (*default, *extra)
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from "
                         f"{', '.join(allowed)})")
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="FILE", help="write every case to FILE")
    parser.add_argument("--backend", help=f"comma-separated, from {','.join(BACKENDS)}")
    parser.add_argument("--transform", help=f"comma-separated, from {','.join(TRANSFORMS)}")
    parser.add_argument("--filter", default="", metavar="SUBSTRING",
                        help="only functions whose name contains SUBSTRING")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes (default: 2, or 1 on one core)")
    parser.add_argument("--timeout", type=float, default=20.0,
                        help="limit per case, in seconds of CPU time (default 20)")
    parser.add_argument("--verbose", action="store_true", help="a line per function")
    args = parser.parse_args(argv)
    backends = _split(args.backend, BACKENDS, "backend", extra=("cupy",))
    transforms = _split(args.transform, TRANSFORMS, "transform")
    keys = [(case.name, transform, backend)
            for case in CASES.values() if args.filter in case.name
            for transform in transforms if transform != "grad" or case.grad
            for backend in backends]
    if not keys:
        raise SystemExit("no case matches")
    start = time.perf_counter()
    records, unijax_file = run_survey(keys, args.jobs, args.timeout, args.verbose)
    elapsed = time.perf_counter() - start
    print(f"unijax from {unijax_file}; {len({r['function'] for r in records})} functions, "
          f"{len(records)} cases in {elapsed:.0f} s")
    print(report(records))
    if args.json:
        notes = _capability_notes({CASES[r["function"]].target for r in records})
        for r in records:
            r["scipy_capabilities"] = notes.get(CASES[r["function"]].target or "")
        meta = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "argv": sys.argv, "unijax": unijax_file, "versions": _versions(),
                "elapsed_s": round(elapsed, 1), "classes": list(CLASSES),
                "summary": {f"{t}/{b}": {c: sum(1 for r in records if r["transform"] == t
                                                and r["backend"] == b and r["class"] == c)
                                         for c in CLASSES}
                            for t in transforms for b in backends}}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "cases": records}, f, indent=1)
        print(f"\nwrote {args.json}")
    return 0


def _capability_notes(paths: set[str | None]) -> dict[str, Any]:
    """SciPy's capability notes for the functions at ``paths`` (imports SciPy here)."""
    warnings.simplefilter("ignore")
    return {p: note for p in paths if p and (note := _capabilities(p)) is not None}


if __name__ == "__main__":
    sys.exit(main())
