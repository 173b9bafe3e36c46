"""NumPy's and torch's dispatch protocols on tracers.

Library code often takes its namespace once, ``xp = array_namespace(x)``, and lets
helpers close over it, or calls ``np.sin`` directly. When such a helper is
differentiated by an inner transform, NumPy (or torch) functions meet the engine's
tracers. NumPy's ``__array_ufunc__`` (NEP 13) and ``__array_function__`` (NEP 18) and
torch's ``__torch_function__`` let the tracer take those calls over, as dask and CuPy take
over NumPy calls on their arrays: each call becomes the same function of the traced
namespace, under the standard's name (``np.concatenate`` is ``concat``, ``np.arccos`` is
``acos``, ``np.linalg.norm`` one of the ``linalg`` norms), with NumPy's or torch's
arguments translated to the standard's.

A function with no counterpart in the standard, or an argument the translation cannot
honour (``out=``, ``where=``, ``order='F'``), raises
:class:`~unijax.errors.ConcretizationError` naming the function and what to use instead;
the one exception is a tracer whose value is a known constant of every enclosing
transform, which NumPy may compute on as it may convert it (``np.asarray``).

The handlers are tables keyed by the library's ``module.name`` (``numpy.linalg.solve``):
NumPy's live in :mod:`unijax.engine.protocols_numpy`, torch's in
:mod:`unijax.engine.protocols_torch`, and each installs its entry points in
:data:`~unijax.engine.core.TRACER_METHODS`. This module holds what they share. Neither
imports its library: the protocols are only entered by a library that is loaded.
"""

from __future__ import annotations

from typing import Any

from unijax.engine.core import Tracer
from unijax.errors import ConcretizationError, message

__all__ = ["constant_values", "innermost_tracer", "namespace_of", "refuse", "refuse_argument",
           "refuse_out"]


def innermost_tracer(values: Any) -> Tracer | None:
    """The tracer of the innermost trace among ``values`` (lists and tuples looked into)."""
    top: Tracer | None = None
    for v in values:
        if type(v) in (list, tuple):
            inner = innermost_tracer(v)
            if inner is not None and (top is None or inner._trace.level > top._trace.level):
                top = inner
        elif isinstance(v, Tracer) and (top is None or v._trace.level > top._trace.level):
            top = v
    return top


def namespace_of(values: Any) -> Any:
    """The traced namespace of the innermost tracer among ``values``."""
    tracer = innermost_tracer(values)
    assert tracer is not None, "a protocol was entered without a tracer among its arguments"
    return tracer.__array_namespace__()


def constant_values(values: Any) -> Any:
    """``values`` with each tracer replaced by its concrete value, or ``None`` if one of
    them depends on an input of a transform (see ``Tracer.__array__``)."""
    out = []
    for v in values:
        if type(v) in (list, tuple):
            inner = constant_values(v)
            if inner is None:
                return None
            v = type(v)(inner)
        elif isinstance(v, Tracer):
            value: Any = v
            while isinstance(value, Tracer):
                if value._trace.finished or not value._is_constant():
                    return None
                value = value._primal()
            v = value
        out.append(v)
    return out


def refuse(api: str, fix: str | None = None) -> ConcretizationError:
    """The error for ``api`` (``"numpy.einsum"``), which has no traced counterpart."""
    return ConcretizationError(message(
        f"{api}() was called on a traced array inside a unijax transform, and unijax has no "
        "Array API counterpart to trace it with: it would need the array's concrete value, "
        "which depends on an input of the transform",
        fix=(fix + " " if fix else "")
        + "Write it with the namespace's functions, xp = array_namespace(x) (rule 1 of the "
          "guide for library authors), or compute it outside the transformed function."))


def refuse_argument(api: str, name: str, value: Any) -> ConcretizationError:
    """The error for an argument of ``api`` that its traced counterpart cannot honour."""
    return ConcretizationError(message(
        f"{api}() was called on a traced array with {name}={value!r}, which its Array API "
        "counterpart has no equivalent for, so the call cannot be traced",
        fix=f"Leave {name} at its default, or write the call with the namespace's "
            "functions, xp = array_namespace(x)."))


def refuse_out(api: str) -> ConcretizationError:
    """The error for ``out=`` (or an augmented assignment into an array) given a tracer."""
    return ConcretizationError(message(
        f"{api}() was called on a traced array with out=...: writing a traced value into "
        "an existing array (also what `a += x` does to a NumPy array a) would need its "
        "concrete value, and traced arrays are immutable",
        fix="Use the returned value instead: y = np.add(a, x), or a = a + x."))
