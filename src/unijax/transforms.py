"""The public transforms: JAX's signatures and semantics on every backend.

Each transform validates its arguments when it is built, and at call time (1) resolves
the backend (:mod:`unijax.dispatch.selection`), (2) runs the backend's native transform when the
inputs are the backend's own arrays, or (3) runs unijax's engine when the backend has no
native transform or any input is already an engine tracer (a transform nested inside
another engine transform). Argument conventions and errors are defined here once, so a
plugin never reinterprets them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from unijax import _bridge  # noqa: F401  (the engine computes with the backends' namespaces)
from unijax._fast_paths import (
    after_loads,
    call_native,
    differentiate_entry,
    jit_entry,
    learn_differentiate,
    learn_jit,
    raise_translated,
)
from unijax._validate import (
    check_argnums_in_range,
    check_callable,
    check_cotangents,
    check_differentiable_leaves,
    check_hashable_statics,
    check_scalar_output,
    check_tangents,
    fun_name,
    max_positional,
    normalize_argnums,
    normalize_static_argnames,
    split_aux,
)
from unijax.dispatch.config import config
from unijax.dispatch.selection import backend_scope, prepare_call
from unijax.engine import frontend as _engine
from unijax.engine.core import Tracer
from unijax.engine.jit import JitFunction, Lowering
from unijax.engine.jit import make_ir as _make_ir
from unijax.engine.rules.control import stop_gradient_p
from unijax.errors import (
    ArgnumsError,
    BatchingError,
    InAxesError,
    TransformArgumentError,
    message,
)
from unijax.tree_util import tree_leaves, tree_map

__all__ = [
    "grad",
    "hessian",
    "jacfwd",
    "jacobian",
    "jacrev",
    "jit",
    "jvp",
    "make_ir",
    "stop_gradient",
    "value_and_grad",
    "vjp",
    "vmap",
]

_ENGINE = object()  # marks "this backend has no native version of this transform"


class _Transformed:
    """A transformed function: resolves the backend per call, caches native versions."""

    api: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def __init__(self, fun: Callable[..., Any], kind: str, backend: str | None) -> None:
        if not callable(fun):
            raise TransformArgumentError(
                message(f"{kind}() expects a callable", got=f"{type(fun).__name__}",
                        fix=f"Pass the function itself: unijax.{kind}(f).")
            )
        # updated=(): fun may itself be a transform whose __dict__ must not be copied.
        functools.update_wrapper(self, fun, updated=())
        self.fun = fun
        self.kind = kind
        self.explicit = backend
        self.api = f"{kind}({fun_name(fun)})"
        self._native: dict[str, Any] = {}

    def _native_for(self, backend: Any) -> Any:
        fn = self._native.get(backend.name)
        if fn is None:
            factory = getattr(backend.native_transforms, self.kind)
            fn = self._native[backend.name] = _ENGINE if factory is None else self._build(
                factory)
        return fn

    def _build(self, factory: Callable[..., Any]) -> Any:
        raise NotImplementedError

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        # Transformed methods bind like plain functions.
        return self if obj is None else functools.partial(self.__call__, obj)

    def __repr__(self) -> str:
        return f"<unijax {self.api}>"


# --- differentiation ------------------------------------------------------------------------


class _Differentiate(_Transformed):
    def __init__(self, fun: Callable[..., Any], kind: str, argnums: Any, has_aux: bool,
                 backend: str | None) -> None:
        super().__init__(fun, kind, backend)
        self.argnums = argnums
        self.norm_argnums = normalize_argnums(argnums, self.api, fun)
        self.has_aux = bool(has_aux)
        self._signature_known = max_positional(fun) is not None
        # backend name -> (native transform, the backend, its own array types, the
        # floating dtypes seen). Only backends named by configuration are kept; emptied
        # whenever plugins change.
        self._fast: dict[str, tuple[Any, Any, frozenset[type], set[Any]]] = {}
        self.function = differentiate_entry(self)

    def _checked_fun(self) -> Callable[..., Any]:
        """``fun`` with unijax's output checks, for native transforms (same errors)."""
        fun, api, name, has_aux = self.fun, self.api, fun_name(self.fun), self.has_aux
        scalar = self.kind in ("grad", "value_and_grad")

        def checked(*args: Any, **kwargs: Any) -> Any:
            out = fun(*args, **kwargs)
            value = split_aux(out, api)[0] if has_aux else out
            if scalar:
                check_scalar_output(value, api, name)
            return out

        return checked

    def _build(self, factory: Callable[..., Any]) -> Any:
        return factory(self._checked_fun(), argnums=self.argnums, has_aux=self.has_aux)

    def _prepare(self, args: tuple[Any, ...]) -> tuple[Any, bool, tuple[Any, ...]]:
        backend, use_engine, args = prepare_call(args, self.explicit, self.api)
        if not self._signature_known:
            check_argnums_in_range(self.norm_argnums, len(args), self.api)
        for i in self.norm_argnums:
            a = args[i]
            if hasattr(a, "dtype") or isinstance(a, float):
                check_differentiable_leaves((a,), self.api)
            else:
                check_differentiable_leaves(tree_leaves(a), self.api)
        return backend, use_engine, args

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)  # internal callers (hessian's inner jacrev)

    def _call(self, name: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        backend, use_engine, args = self._prepare(args)
        if not use_engine:
            native = self._native_for(backend)
            if native is not _ENGINE:
                args = self._scalars_as_arrays(args, backend)
                if name is not None:
                    learn_differentiate(self, name, backend, native, args)
                return call_native(backend, native, args, kwargs)
        return self._engine(args, kwargs, backend.namespace)

    def _scalars_as_arrays(self, args: tuple[Any, ...], backend: Any) -> tuple[Any, ...]:
        # Native libraries type Python scalars their own way (JAX with x64: float64);
        # the engine's rule, the default float dtype, must hold on every backend.
        if not any(isinstance(args[i], float | complex) for i in self.norm_argnums):
            return args
        xp = backend.namespace
        with backend_scope(backend):
            return tuple(_engine.as_array(a, xp) if i in self.norm_argnums else a
                         for i, a in enumerate(args))

    def _engine(self, args: tuple[Any, ...], kwargs: dict[str, Any], xp: Any) -> Any:
        raise NotImplementedError


class _ValueAndGrad(_Differentiate):
    def _engine(self, args: tuple[Any, ...], kwargs: dict[str, Any], xp: Any) -> Any:
        return _engine.engine_value_and_grad(self.fun, self.argnums, self.norm_argnums,
                                             self.has_aux, args, kwargs, xp, self.api,
                                             fun_name(self.fun))


class _Grad(_Differentiate):
    def _engine(self, args: tuple[Any, ...], kwargs: dict[str, Any], xp: Any) -> Any:
        value, grads = _engine.engine_value_and_grad(
            self.fun, self.argnums, self.norm_argnums, self.has_aux, args, kwargs, xp,
            self.api, fun_name(self.fun))
        return (grads, value[1]) if self.has_aux else grads


class _Jacobian(_Differentiate):
    def _engine(self, args: tuple[Any, ...], kwargs: dict[str, Any], xp: Any) -> Any:
        make = _engine.engine_jacfwd if self.kind == "jacfwd" else _engine.engine_jacrev
        return make(self.fun, self.argnums, self.norm_argnums, self.has_aux, args, kwargs, xp,
                    self.api)


def grad(fun: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False,
         *, backend: str | None = None) -> Callable[..., Any]:
    """The gradient of a scalar function (JAX's ``grad``).

    Args:
        fun: Function returning a real scalar (or ``(scalar, aux)`` with ``has_aux``).
        argnums: Which positional argument(s) to differentiate; an int or a tuple.
        has_aux: ``fun`` returns ``(output, aux)``; the gradient function then returns
            ``(gradient, aux)``.
        backend: Run on this backend, overriding every other selection rule.

    Returns:
        A function with ``fun``'s signature returning the gradient, shaped like the
        differentiated argument(s) (a tuple when ``argnums`` is a tuple).

    Raises:
        ArgnumsError: ``argnums`` is out of range, duplicated or not integers.
        NonScalarOutputError: ``fun`` returned a non-scalar.
        NonDifferentiableError: an integer input or output.
        HasAuxError: ``has_aux=True`` but ``fun`` did not return a pair.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> from array_api_compat import array_namespace
        >>> def f(x):
        ...     return array_namespace(x).sum(x ** 3)
        >>> unijax.grad(f)(np.asarray([1.0, 2.0]))
        array([ 3., 12.])
    """
    return _Grad(fun, "grad", argnums, has_aux, backend).function


def value_and_grad(fun: Callable[..., Any], argnums: int | Sequence[int] = 0,
                   has_aux: bool = False, *, backend: str | None = None) -> Callable[..., Any]:
    """Like :func:`grad`, returning ``(value, gradient)`` (``((value, aux), gradient)``).

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> value, g = unijax.value_and_grad(lambda x: x[0] ** 2)(np.asarray([3.0]))
        >>> float(value), g
        (9.0, array([6.]))
    """
    return _ValueAndGrad(fun, "value_and_grad", argnums, has_aux, backend).function


def jacfwd(fun: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False,
           *, backend: str | None = None) -> Callable[..., Any]:
    """The Jacobian by forward mode (efficient for few inputs), as JAX's ``jacfwd``.

    Each output leaf's Jacobian has shape ``out.shape + in.shape``.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> unijax.jacfwd(lambda x: x ** 2)(np.asarray([1.0, 2.0]))
        array([[2., 0.],
               [0., 4.]])
    """
    return _Jacobian(fun, "jacfwd", argnums, has_aux, backend).function


def jacrev(fun: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False,
           *, backend: str | None = None) -> Callable[..., Any]:
    """The Jacobian by reverse mode (efficient for few outputs), as JAX's ``jacrev``.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> unijax.jacrev(lambda x: x[:1] * x[1:])(np.asarray([2.0, 3.0]))
        array([[3., 2.]])
    """
    return _Jacobian(fun, "jacrev", argnums, has_aux, backend).function


jacobian = jacrev


def hessian(fun: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False,
            *, backend: str | None = None) -> Callable[..., Any]:
    """The Hessian, as forward-over-reverse ``jacfwd(jacrev(fun))`` (JAX's ``hessian``).

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> unijax.hessian(lambda x: x[0] ** 3 + x[1] ** 3)(np.asarray([1.0, 2.0]))
        array([[ 6.,  0.],
               [ 0., 12.]])
    """
    return _Hessian(fun, argnums, has_aux, backend).function


class _Hessian(_Differentiate):
    def __init__(self, fun: Callable[..., Any], argnums: Any, has_aux: bool,
                 backend: str | None) -> None:
        super().__init__(fun, "hessian", argnums, has_aux, backend)
        self._inner = _Jacobian(fun, "jacrev", argnums, has_aux, backend)

    def _engine(self, args: tuple[Any, ...], kwargs: dict[str, Any], xp: Any) -> Any:
        return _engine.engine_jacfwd(self._inner, self.argnums, self.norm_argnums,
                                     self.has_aux, args, kwargs, xp, self.api)


def jvp(fun: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any],
        has_aux: bool = False, *, backend: str | None = None) -> Any:
    """Evaluate ``fun`` and its directional derivative (JAX's ``jvp``).

    Args:
        fun: The function.
        primals: A tuple or list of arguments.
        tangents: Tangents with the same structure, shapes and dtypes as ``primals``.
        has_aux: ``fun`` returns ``(output, aux)``.
        backend: Run on this backend.

    Returns:
        ``(out, out_tangent)``, or ``(out, out_tangent, aux)`` with ``has_aux``.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> unijax.jvp(lambda x: x ** 2, (np.asarray([3.0]),), (np.asarray([1.0]),))
        (array([9.]), array([6.]))
    """
    check_callable(fun, "jvp")
    api = f"jvp({fun_name(fun)})"
    if not isinstance(primals, tuple | list) or not isinstance(tangents, tuple | list):
        raise TransformArgumentError(
            message(f"{api}: primals and tangents must be tuples or lists",
                    got=f"{type(primals).__name__} and {type(tangents).__name__}",
                    fix="Wrap single arguments: jvp(f, (x,), (t,)).")
        )
    if len(primals) != len(tangents):
        raise TransformArgumentError(
            message(f"{api}: primals and tangents must have the same length",
                    got=f"{len(primals)} and {len(tangents)}", fix="Give one tangent per primal.")
        )
    check_tangents(primals, tangents, api)
    b, use_engine, (primals, tangents) = prepare_call((tuple(primals), tuple(tangents)),
                                                       backend, api)
    native = None if use_engine else b.native_transforms.jvp
    if native is not None:
        return call_native(b, native, (fun, primals, tangents), {"has_aux": has_aux})
    return _engine.engine_jvp(fun, primals, tangents, has_aux, b.namespace, api)


def vjp(fun: Callable[..., Any], *primals: Any, has_aux: bool = False,
        backend: str | None = None) -> Any:
    """Evaluate ``fun`` and return its VJP function (JAX's ``vjp``).

    Returns:
        ``(out, vjp_fn)`` (plus ``aux`` with ``has_aux``); ``vjp_fn(ct)`` returns a tuple
        with one cotangent per primal.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> out, pullback = unijax.vjp(lambda x: x * 3.0, np.asarray([1.0, 2.0]))
        >>> pullback(np.asarray([1.0, 10.0]))
        (array([ 3., 30.]),)
    """
    check_callable(fun, "vjp")
    api = f"vjp({fun_name(fun)})"
    b, use_engine, primals = prepare_call(primals, backend, api)
    native = None if use_engine else b.native_transforms.vjp
    if native is not None:
        result = call_native(b, native, (fun, *primals), {"has_aux": has_aux})
        out, pullback = result[0], result[1]

        def checked_pullback(*cts: Any) -> Any:
            # The engine's checks first, so a wrong cotangent raises the same error here.
            return call_native(b, pullback, (check_cotangents(cts, out, api),), {})

        return (out, checked_pullback, *result[2:])
    result = _engine.engine_vjp(fun, primals, has_aux, b.namespace, api)
    return (result[0], after_loads(result[1]), *result[2:])


# --- vmap -------------------------------------------------------------------------------------


def _check_axes_spec(axes: Any, what: str, api: str) -> None:
    for leaf in tree_leaves(axes, is_leaf=lambda x: x is None):
        if leaf is not None and (not isinstance(leaf, int) or isinstance(leaf, bool)):
            raise InAxesError(
                message(f"{api}: {what} must be a pytree of ints and None", got=repr(axes),
                        fix=f"Use e.g. {what}=0, {what}=(0, None) or {what}={{'w': None}}.")
            )


class _Vmap(_Transformed):
    def __init__(self, fun: Callable[..., Any], in_axes: Any, out_axes: Any,
                 axis_size: int | None, backend: str | None) -> None:
        super().__init__(fun, "vmap", backend)
        if isinstance(in_axes, list):
            in_axes = tuple(in_axes)
        _check_axes_spec(in_axes, "in_axes", self.api)
        _check_axes_spec(out_axes, "out_axes", self.api)
        if isinstance(in_axes, tuple):
            limit = max_positional(fun)
            if limit is not None and len(in_axes) > limit:
                raise InAxesError(
                    message(f"{self.api}: in_axes has {len(in_axes)} entries but "
                            f"{fun_name(fun)} takes {limit} positional arguments",
                            fix="Give in_axes one entry per argument.")
                )
        if axis_size is not None and (not isinstance(axis_size, int) or axis_size < 0):
            raise InAxesError(
                message(f"{self.api}: axis_size must be a non-negative int",
                        got=repr(axis_size), fix="Pass e.g. axis_size=8.")
            )
        self.in_axes, self.out_axes, self.axis_size = in_axes, out_axes, axis_size

    def _build(self, factory: Callable[..., Any]) -> Any:
        return factory(self.fun, in_axes=self.in_axes, out_axes=self.out_axes,
                       axis_size=self.axis_size)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        backend, use_engine, args = prepare_call(args, self.explicit, self.api)
        if not use_engine:
            native = self._native_for(backend)
            if native is not _ENGINE:
                _engine.plan_vmap(self.in_axes, self.axis_size, args, kwargs, self.api)
                try:
                    return native(*args, **kwargs)
                except Exception as err:
                    text = str(err)
                    if isinstance(err, ValueError) and "out_axes" in text and "None" in text:
                        raise BatchingError(
                            message(f"{self.api}: out_axes=None for an output that varies "
                                    "across the batch", fix="Map that output (out_axes=0), "
                                    "or make it independent of the mapped arguments.")
                        ) from err
                    raise_translated(backend, err)
                    raise
        return _engine.engine_vmap(self.fun, self.in_axes, self.out_axes, self.axis_size,
                                   args, kwargs, self.api)


def vmap(fun: Callable[..., Any], in_axes: Any = 0, out_axes: Any = 0,
         axis_size: int | None = None, *, backend: str | None = None) -> Callable[..., Any]:
    """Vectorise ``fun`` over an axis of its arguments (JAX's ``vmap``).

    Args:
        fun: The function to map.
        in_axes: An int, ``None`` or a pytree prefix of the positional arguments giving
            the mapped axis of each (``None``: not mapped). Keyword arguments are mapped
            over axis 0.
        out_axes: Where the mapped axis goes in each output (a pytree prefix).
        axis_size: The batch size, needed when no argument is mapped.
        backend: Run on this backend.

    Returns:
        The batched function.

    Raises:
        InAxesError: ``in_axes``/``out_axes`` do not fit the arguments or outputs.
        BatchingError: mapped axes of different sizes.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> unijax.vmap(lambda row, w: row @ w, in_axes=(0, None))(
        ...     np.ones((3, 2)), np.asarray([1.0, 2.0]))
        array([3., 3., 3.])
    """
    return _Vmap(fun, in_axes, out_axes, axis_size, backend)


# --- jit --------------------------------------------------------------------------------------


class _Jit(_Transformed):
    """The state of one ``jit``-compiled function; users call :attr:`function`."""

    def __init__(self, fun: Callable[..., Any], static_argnums: Any, static_argnames: Any,
                 backend: str | None, placement: dict[str, Any] | None = None) -> None:
        super().__init__(fun, "jit", backend)
        self.static_argnums = normalize_argnums(
            static_argnums, self.api, fun, name="static_argnums") if static_argnums else ()
        self.static_argnames = normalize_static_argnames(
            static_argnames, self.api, fun) if static_argnames else ()
        # in_shardings, out_shardings, donate_argnums: only those given, so that a native
        # jit without them is called as before.
        self.placement = _check_placement(placement or {}, self.api, fun,
                                          self.static_argnums, self.static_argnames)
        self._engine_jits: dict[str, Any] = {}
        # backend name -> (native jit, the backend, the types it takes as they are). Only
        # backends named by configuration are kept; emptied whenever plugins change.
        self._fast: dict[str, tuple[Any, Any, set[type]]] = {}
        self.function = jit_entry(self)
        self.function.lowering = self.lowering  # type: ignore[attr-defined]

    def _build(self, factory: Callable[..., Any]) -> Any:
        return factory(self.fun, static_argnums=self.static_argnums or None,
                       static_argnames=self.static_argnames or None, **self.placement)

    def _resolve(self, args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> tuple[Any, bool, tuple[Any, ...]]:
        """``(backend, use_engine, args)`` for a call: static arguments checked, the
        dynamic ones prepared for the backend."""
        if self.static_argnums or self.static_argnames:
            check_hashable_statics(args, kwargs, self.static_argnums, self.static_argnames,
                                   self.api)
        if not self.static_argnums:
            return prepare_call(args, self.explicit, self.api)
        dynamic = tuple(a for i, a in enumerate(args) if i not in self.static_argnums)
        backend, use_engine, dynamic = prepare_call(dynamic, self.explicit, self.api)
        it = iter(dynamic)
        return backend, use_engine, tuple(a if i in self.static_argnums else next(it)
                                          for i, a in enumerate(args))

    def _call(self, name: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        backend, use_engine, args = self._resolve(args, kwargs)
        if not use_engine:
            native = self._native.get(backend.name) or self._native_for(backend)
            if native is not _ENGINE:
                if name is not None and not (self.static_argnums or self.static_argnames):
                    learn_jit(self, name, backend, native)
                return call_native(backend, native, args, kwargs)
        return self._engine_jit(backend)(*args, **kwargs)

    def lowering(self, *args: Any, **kwargs: Any) -> Lowering:
        """Which lowering runs this function for these arguments, and why.

        The backend is chosen as a call chooses it. On a backend with its own ``jit``
        (JAX) the answer is ``"native"``; otherwise the engine's program for the
        arguments' signature is staged and compiled if it is not cached yet, but not
        run (:meth:`unijax.engine.jit.JitFunction.lowering`).
        """
        backend, use_engine, args = self._resolve(args, kwargs)
        if not use_engine and self._native_for(backend) is not _ENGINE:
            return Lowering(backend.name, "native", f"{backend.name}'s own jit compiles the "
                            "function; the unijax engine does not stage it")
        return self._engine_jit(backend).lowering(*args, **kwargs)

    def _engine_jit(self, backend: Any) -> Any:
        jitted = self._engine_jits.get(backend.name)
        if jitted is None:
            _check_single_device(self.placement, backend, self.api)
            # The cache size in effect when this backend first runs the function.
            jitted = self._engine_jits[backend.name] = JitFunction(
                self.fun, self.static_argnums, self.static_argnames, backend=backend,
                cache_size=config.read("jit_cache_size"))
        return jitted

    def cache_info(self) -> dict[str, Any]:
        """Hit/miss counts and size of the engine's compilation caches, per backend."""
        return {name: j.cache_info() for name, j in self._engine_jits.items()}

    def clear_cache(self) -> None:
        """Drop every compiled program of this function."""
        for j in self._engine_jits.values():
            j.clear_cache()


def _check_placement(placement: dict[str, Any], api: str, fun: Callable[..., Any],
                     static_argnums: tuple[int, ...] = (),
                     static_argnames: tuple[str, ...] = ()) -> dict[str, Any]:
    """The given ``in_shardings``/``out_shardings``/``donate_argnums``, validated.

    Raises:
        ArgnumsError: ``donate_argnums`` is invalid, or names a static argument.
    """
    checked = {k: v for k, v in placement.items() if v is not None}
    if "donate_argnums" in checked:
        donate = checked["donate_argnums"]
        checked["donate_argnums"] = normalize_argnums(donate, api, fun,
                                                      name="donate_argnums") if donate else ()
        # A static argument is a compile-time constant, not a buffer: donating it has no
        # meaning, and JAX refuses it only at the first call.
        statics = set(static_argnums) | _positions_of(fun, static_argnames)
        both = sorted(statics.intersection(checked["donate_argnums"]))
        if both:
            raise ArgnumsError(message(
                f"{api}: donate_argnums names argument(s) that are also static "
                "(static_argnums or static_argnames); a static argument is a compile-time "
                "constant, not an array buffer that can be donated",
                expected="donate_argnums and the static arguments to be disjoint",
                got=f"position(s) {', '.join(map(str, both))} in both",
                fix="Remove the static arguments from donate_argnums."))
    return checked


def _positions_of(fun: Callable[..., Any], names: tuple[str, ...]) -> set[int]:
    """The positional indices of ``fun``'s parameters named in ``names`` (when known)."""
    if not names:
        return set()
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):  # a builtin or C function: no signature to read
        return set()
    return {i for i, p in enumerate(params)
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.name in names}


def _single_device(value: Any, devices: Sequence[Any]) -> bool:
    # One of the backend's devices, or a sharding object spanning one device (JAX's
    # SingleDeviceSharding has device_set, of size 1).
    device_set = getattr(value, "device_set", None)
    if device_set is not None:
        return len(device_set) == 1
    return any(value is d or str(value) == str(d) for d in devices)


def _check_single_device(placement: dict[str, Any], backend: Any, api: str) -> None:
    """On a backend without a native ``jit``, shardings may only name its one device."""
    devices = list(backend.devices())
    for kind in ("in_shardings", "out_shardings"):
        for leaf in tree_leaves(placement.get(kind)):
            if not _single_device(leaf, devices):
                raise TransformArgumentError(message(
                    f"{api}: {kind} asks for a placement backend {backend.name!r} cannot "
                    "give; its jit runs each call on one device (one of "
                    f"{', '.join(map(str, devices)) or 'none listed'})",
                    got=repr(leaf),
                    fix=f"Leave {kind}=None on {backend.name!r}, or run on JAX "
                        "(backend='jax') to shard across devices."))


def jit(fun: Callable[..., Any] | None = None, *, static_argnums: int | Sequence[int] | None = None,
        static_argnames: str | Sequence[str] | None = None,
        backend: str | None = None, in_shardings: Any = None, out_shardings: Any = None,
        donate_argnums: int | Sequence[int] | None = None) -> Any:
    """Compile ``fun``: trace once per input signature, optimise, and lower (JAX's ``jit``).

    Usable as ``@jit`` and ``@jit(static_argnums=...)``. Python side effects (``print``)
    run while tracing only. Python control flow on a traced value raises
    :class:`~unijax.errors.ConcretizationError`; mark such arguments static.

    On JAX, ``in_shardings``, ``out_shardings`` and ``donate_argnums`` go to ``jax.jit``
    as they are. A backend whose ``jit`` comes from the engine runs on one device: it
    accepts ``None`` or a single-device placement (its device, or a sharding over one
    device) and ignores ``donate_argnums`` (donation only lets a compiler reuse memory).

    Args:
        fun: The function to compile.
        static_argnums: Positional arguments treated as compile-time constants (hashable).
        static_argnames: Keyword arguments treated as compile-time constants.
        backend: Run on this backend.
        in_shardings: JAX's ``in_shardings``: a sharding per positional argument (a
            pytree prefix), or one for all.
        out_shardings: JAX's ``out_shardings``: a sharding per output (a pytree prefix).
        donate_argnums: Positional arguments whose buffers the compiled function may
            reuse for its outputs; the caller must not use them afterwards.

    Returns:
        The compiled function. ``.cache_info()`` reports engine cache hits and misses;
        ``.lowering(*args, **kwargs)`` says which lowering runs it for those arguments
        and why (a :class:`~unijax.engine.jit.Lowering`; see
        :meth:`~unijax.engine.jit.JitFunction.lowering`).

    Raises:
        ArgnumsError: ``donate_argnums`` is not an int or a tuple of ints in range, or
            names a static argument.
        TransformArgumentError: A placement over more than one device on a backend whose
            ``jit`` runs on one (raised at the first call on that backend).

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> @unijax.jit(static_argnums=1)
        ... def power(x, n):
        ...     return x ** n
        >>> power(np.asarray([2.0, 3.0]), 2)
        array([4., 9.])
        >>> power.lowering(np.asarray([2.0, 3.0]), 2).backend
        'numpy'
    """
    placement = {"in_shardings": in_shardings, "out_shardings": out_shardings,
                 "donate_argnums": donate_argnums}
    if fun is None:
        return functools.partial(jit, static_argnums=static_argnums,
                                 static_argnames=static_argnames, backend=backend, **placement)
    return _Jit(fun, static_argnums, static_argnames, backend, placement).function


def make_ir(fun: Callable[..., Any], *, static_argnums: int | Sequence[int] = (),
            static_argnames: str | Sequence[str] = ()) -> Callable[..., Any]:
    """A function returning the optimised program ``jit`` would stage for given arguments.

    ``jit(fun).lowering(*args)`` tells which lowering runs that program (on NumPy:
    Numba machine code or generated Python) and why.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> program = unijax.make_ir(lambda x: x * 2.0 + 1.0)(np.ones(3))
        >>> "multiply" in str(program)
        True
    """
    statics = normalize_argnums(static_argnums, "make_ir", fun, name="static_argnums") \
        if static_argnums != () else ()
    names = normalize_static_argnames(static_argnames, "make_ir", fun) if static_argnames \
        else ()
    return _make_ir(fun, static_argnums=statics, static_argnames=names)


# --- stop_gradient ----------------------------------------------------------------------------


def stop_gradient(x: Any) -> Any:
    """Treat ``x`` (a pytree of arrays) as a constant for differentiation.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> float(unijax.grad(lambda x: x * unijax.stop_gradient(x))(np.asarray(3.0)))
        3.0
    """
    def leaf(v: Any) -> Any:
        if isinstance(v, Tracer):
            return stop_gradient_p.bind(v)
        backend, _, (v,) = prepare_call((v,), None, "stop_gradient")
        native = backend.native_transforms.stop_gradient
        return native(v) if native is not None else v

    return tree_map(leaf, x)
