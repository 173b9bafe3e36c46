"""User-defined derivative rules: ``custom_vjp`` and ``custom_jvp``.

On a backend with native custom rules (JAX, Autograd) the user's functions are handed to
it; otherwise, and whenever an argument is already a unijax tracer, the engine applies
them (:mod:`unijax.engine.custom`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from unijax import tree_util
from unijax._dtypes import dtype_name, is_complex, is_inexact
from unijax._validate import fun_name, normalize_argnums
from unijax.dispatch.selection import prepare_call
from unijax.engine.custom import custom_jvp_call, custom_vjp_call
from unijax.errors import (
    CustomRuleError,
    TransformArgumentError,
    UnsupportedTransformError,
    message,
)

__all__ = ["custom_jvp", "custom_vjp"]


# --- what a rule must return ----------------------------------------------------------------
#
# A rule's values are checked here, before any backend sees them, so that a cotangent of
# the wrong shape raises the same error on every backend instead of being broadcast
# (NumPy), reshaped (Autograd) or refused in the backend's own words (JAX, torch).

#: One leaf as a rule's output must match it: its shape and kind of dtype ("real",
#: "complex", or "other" for integers, booleans and non-arrays, whose derivatives are
#: zero and are not checked).
LeafSpec = tuple[tuple[int, ...] | None, str]


def _leaf_spec(x: Any) -> LeafSpec:
    tp = type(x)
    if tp is float or tp is int:  # weakly typed: takes the dtype of what it meets
        return (), "real" if tp is float else "other"
    if tp is complex:
        return (), "complex"
    dtype = getattr(x, "dtype", None)
    shape = getattr(x, "shape", None)
    if dtype is None or shape is None or not is_inexact(dtype):
        return None, "other"
    return tuple(shape), "complex" if is_complex(dtype) else "real"


def _tree_spec(tree: Any) -> tuple[Any, tuple[LeafSpec, ...]]:
    leaves, treedef = tree_util.tree_flatten(tree)
    return treedef, tuple(_leaf_spec(x) for x in leaves)


def _describe(spec: LeafSpec) -> str:
    shape, kind = spec
    kind_text = {"real": "a real floating dtype", "complex": "a complex floating dtype"}
    return f"shape {shape} of {kind_text[kind]}"


def _mismatch(expected: LeafSpec, x: Any) -> str | None:
    """What is wrong with ``x`` in the place of a value of spec ``expected`` (None: fine)."""
    shape, kind = expected
    if kind == "other":
        return None
    tp = type(x)
    if tp is int or tp is float or tp is complex:  # weakly typed: a number of any kind
        got_shape: Any = ()
        got_kind = "complex" if tp is complex else "real"
    else:
        got_shape = getattr(x, "shape", None)
        dtype = getattr(x, "dtype", None)
        if got_shape is None or dtype is None:
            return f"a value of type {tp.__name__}"
        got_shape = tuple(got_shape)
        name = dtype_name(dtype)
        if is_inexact(dtype):
            got_kind = "complex" if is_complex(dtype) else "real"
        elif name.startswith(("int", "uint", "bool")):
            got_kind = "integer or boolean"
        else:
            # Not a dtype of the standard (NumPy's object arrays, which Autograd's higher
            # derivatives can produce): its kind is not known, so only its shape is checked.
            got_kind = kind
    if got_shape != shape:
        return f"shape {got_shape}"
    if got_kind != kind:
        return f"a value of dtype {getattr(x, 'dtype', tp.__name__)}"
    return None


def _none_leaf(x: Any) -> bool:
    return x is None


def check_cotangents(cts: Any, specs: tuple[tuple[Any, tuple[LeafSpec, ...]], ...],
                     rule: str, fun: str) -> None:
    """Check ``bwd``'s output against the differentiable arguments' ``specs``.

    ``None`` stands for a zero cotangent of an argument or of any subtree of one.

    Raises:
        CustomRuleError: Not one cotangent per argument, or one of another structure,
            shape or kind of dtype.
    """
    fix = ("Return one cotangent per differentiable argument, each with the argument's "
           "structure, shape and kind of dtype (None for zero).")
    if not isinstance(cts, tuple) or len(cts) != len(specs):
        raise CustomRuleError(message(
            f"custom_vjp rule {rule} (the bwd of {fun}) must return a tuple with one "
            "cotangent per differentiable argument",
            expected=f"a tuple of length {len(specs)}",
            got=(f"a tuple of length {len(cts)}" if isinstance(cts, tuple)
                 else f"a value of type {type(cts).__name__}"),
            fix="Return (ct_x,) even for a single argument; None means zero."))
    for i, (ct, (treedef, leaf_specs)) in enumerate(zip(cts, specs, strict=True)):
        if ct is None:
            continue
        arg = tree_util.tree_unflatten(treedef, range(len(leaf_specs)))  # the structure
        where = f"custom_vjp rule {rule} (the bwd of {fun}) returned a cotangent that " \
                f"does not match argument {i} of {fun}"
        try:
            # One entry per leaf of the argument: None where a None covers it.
            matched = tree_util.broadcast_prefix(ct, arg, is_leaf=_none_leaf)
        except ValueError:
            matched = None
        given = [x for x in tree_util.tree_leaves(ct, is_leaf=_none_leaf) if x is not None]
        if matched is None or len([x for x in matched if x is not None]) != len(given):
            raise CustomRuleError(message(
                where, expected=f"the structure {treedef}",
                got=f"{tree_util.tree_structure(ct, is_leaf=_none_leaf)}", fix=fix))
        for x, expected in zip(matched, leaf_specs, strict=True):
            if x is None:
                continue
            wrong = _mismatch(expected, x)
            if wrong is not None:
                raise CustomRuleError(message(where, expected=_describe(expected),
                                              got=wrong, fix=fix))


def check_tangents(out: Any, tangents: Any, rule: str, fun: str) -> None:
    """Check a ``custom_jvp`` rule's tangent output against its primal output.

    Raises:
        CustomRuleError: The tangents have another structure, shape or kind of dtype.
    """
    treedef, leaf_specs = _tree_spec(out)
    where = (f"custom_jvp rule {rule} (the jvp of {fun}) returned tangents that do not "
             "match its primal outputs")
    fix = ("Return (out, tangent_out) with tangent_out of out's structure, and each "
           "tangent of its primal's shape and kind of dtype.")
    t_leaves, t_def = tree_util.tree_flatten(tangents)
    if t_def != treedef:
        raise CustomRuleError(message(where, expected=f"the structure {treedef}",
                                      got=f"{t_def}", fix=fix))
    for x, expected in zip(t_leaves, leaf_specs, strict=True):
        wrong = _mismatch(expected, x)
        if wrong is not None:
            raise CustomRuleError(message(where, expected=_describe(expected), got=wrong,
                                          fix=fix))


def _checked_bwd(bwd: Callable[..., Any], specs: tuple[Any, ...], fun: str
                 ) -> Callable[..., Any]:
    rule = fun_name(bwd)

    @functools.wraps(bwd)
    def checked(*args: Any) -> Any:
        cts = bwd(*args)
        check_cotangents(cts, specs, rule, fun)
        return cts

    return checked


def _checked_jvp(jvp: Callable[..., Any], fun: str) -> Callable[..., Any]:
    rule = fun_name(jvp)

    @functools.wraps(jvp)
    def checked(*args: Any) -> Any:
        result = jvp(*args)
        if not isinstance(result, tuple | list) or len(result) != 2:
            raise CustomRuleError(message(
                f"custom_jvp rule {rule} (the jvp of {fun}) must return a pair "
                "(primal_out, tangent_out)",
                got=f"a value of type {type(result).__name__}",
                fix="Return (out, tangent_out)."))
        check_tangents(result[0], result[1], rule, fun)
        return result

    return checked


class _CustomBase:
    def __init__(self, fun: Callable[..., Any], nondiff_argnums: Sequence[int] = ()) -> None:
        # updated=(): fun may itself be a transform whose __dict__ must not be copied.
        functools.update_wrapper(self, fun, updated=())  # type: ignore[arg-type]
        self.fun = fun
        self.nondiff_argnums = normalize_argnums(
            tuple(nondiff_argnums), f"custom rule {fun_name(fun)}", fun, name="nondiff_argnums"
        ) if nondiff_argnums else ()
        # A native rule per (backend, what the checked rules need to know of the call).
        self._native: dict[tuple[str, Any], Any] = {}

    def _dispatch(self, args: tuple[Any, ...], kwargs: dict[str, Any], kind: str) -> Any:
        if kwargs:
            raise TransformArgumentError(
                message(f"{kind} function {fun_name(self.fun)} was called with keyword "
                        "arguments", fix="Pass every argument positionally, as with JAX.")
            )
        backend, use_engine, args = prepare_call(args, None, f"{kind}({fun_name(self.fun)})")
        native_factory = getattr(backend.native_transforms, kind) if not use_engine else None
        key = self._rule_key(args)
        if native_factory is not None:
            try:
                native = self._native.get((backend.name, key))
            except TypeError:  # a pytree node with unhashable metadata: nothing to reuse
                return self._make_native(native_factory, key)(*args)
            if native is None:
                native = self._native[backend.name, key] = self._make_native(native_factory,
                                                                              key)
            return native(*args)
        return self._engine_call(args, key)

    def _rule_key(self, args: tuple[Any, ...]) -> Any:
        """What the checked rules need to know of a call's arguments (hashable)."""
        return None

    def _make_native(self, factory: Callable[..., Any], key: Any) -> Any:
        raise NotImplementedError

    def _engine_call(self, args: tuple[Any, ...], key: Any) -> Any:
        raise NotImplementedError


class custom_vjp(_CustomBase):  # JAX's spelling
    """Give a function a custom reverse-mode derivative (JAX's ``custom_vjp``).

    Args:
        fun: The function; its outputs are a pytree of arrays.
        nondiff_argnums: Positions of arguments that are not differentiated (passed first
            to ``bwd``, like JAX).

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> @unijax.custom_vjp
        ... def clip_gradient(x):
        ...     return x
        >>> def fwd(x):
        ...     return x, None
        >>> def bwd(res, g):
        ...     return (np.clip(g, -1.0, 1.0),)
        >>> clip_gradient.defvjp(fwd, bwd)
        >>> float(unijax.grad(lambda x: 3.0 * clip_gradient(x))(np.asarray(2.0)))
        1.0
    """

    def __init__(self, fun: Callable[..., Any], nondiff_argnums: Sequence[int] = ()) -> None:
        super().__init__(fun, nondiff_argnums)
        self.fwd: Callable[..., Any] | None = None
        self.bwd: Callable[..., Any] | None = None

    def defvjp(self, fwd: Callable[..., Any], bwd: Callable[..., Any]) -> None:
        """Set ``fwd(*args) -> (out, residuals)`` and ``bwd(residuals, ct) -> arg cts``."""
        self.fwd, self.bwd = fwd, bwd
        self._native.clear()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.fwd is None or self.bwd is None:
            raise UnsupportedTransformError(
                message(f"custom_vjp function {fun_name(self.fun)} has no rule yet",
                        fix="Call .defvjp(fwd, bwd) before using it.")
            )
        return self._dispatch(args, kwargs, "custom_vjp")

    def _rule_key(self, args: tuple[Any, ...]) -> Any:
        # The structure, shapes and dtype kinds of the differentiable arguments, which
        # bwd's cotangents must match: native rules are made once per key.
        return tuple(_tree_spec(a) for i, a in enumerate(args) if i not in self.nondiff_argnums)

    def _checked(self, key: Any) -> Callable[..., Any]:
        assert self.bwd is not None
        return _checked_bwd(self.bwd, key, fun_name(self.fun))

    def _make_native(self, factory: Callable[..., Any], key: Any) -> Any:
        native = factory(self.fun, nondiff_argnums=self.nondiff_argnums)
        native.defvjp(self.fwd, self._checked(key))
        return native

    def _engine_call(self, args: tuple[Any, ...], key: Any) -> Any:
        assert self.fwd is not None
        return custom_vjp_call(self.fun, self.fwd, self._checked(key), self.nondiff_argnums,
                               args)


class custom_jvp(_CustomBase):  # JAX's spelling
    """Give a function a custom forward-mode derivative (JAX's ``custom_jvp``).

    Reverse mode works too: the VJP is obtained by transposing the JVP rule.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> from array_api_compat import array_namespace
        >>> @unijax.custom_jvp
        ... def log1pexp(x):
        ...     return array_namespace(x).log1p(array_namespace(x).exp(x))
        >>> @log1pexp.defjvp
        ... def _(primals, tangents):
        ...     (x,), (t,) = primals, tangents
        ...     xp = array_namespace(x)
        ...     return log1pexp(x), t / (1 + xp.exp(-x))
        >>> float(unijax.grad(log1pexp)(np.asarray(100.0)))
        1.0
    """

    def __init__(self, fun: Callable[..., Any], nondiff_argnums: Sequence[int] = ()) -> None:
        super().__init__(fun, nondiff_argnums)
        self.jvp_rule: Callable[..., Any] | None = None

    def defjvp(self, jvp: Callable[..., Any]) -> Callable[..., Any]:
        """Set ``jvp(primals, tangents) -> (out, tangent_out)``; usable as a decorator."""
        self.jvp_rule = jvp
        self._native.clear()
        return jvp

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.jvp_rule is None:
            raise UnsupportedTransformError(
                message(f"custom_jvp function {fun_name(self.fun)} has no rule yet",
                        fix="Call .defjvp(jvp) before using it.")
            )
        return self._dispatch(args, kwargs, "custom_jvp")

    def _checked(self) -> Callable[..., Any]:
        assert self.jvp_rule is not None
        return _checked_jvp(self.jvp_rule, fun_name(self.fun))

    def _make_native(self, factory: Callable[..., Any], key: Any) -> Any:
        native = factory(self.fun, nondiff_argnums=self.nondiff_argnums)
        native.defjvp(self._checked())
        return native

    def _engine_call(self, args: tuple[Any, ...], key: Any) -> Any:
        return custom_jvp_call(self.fun, self._checked(), self.nondiff_argnums, args)
