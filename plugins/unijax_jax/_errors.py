"""JAX's errors for misuse, raised as the unijax errors the engine raises for the same misuse.

Each JAX error is recognised by its class (looked up by name in ``jax.errors``, whose
classes exist only once JAX is imported) or by the start of its message, and becomes the
class the engine raises on NumPy for the same program, with the house message: what
failed, JAX's own words as what was got, and the fix.
"""

from __future__ import annotations

from unijax.errors import (
    ConcretizationError,
    ControlFlowError,
    ShapeError,
    TransformArgumentError,
    UnexpectedTracerError,
    UnijaxError,
    UnsupportedTransformError,
    message,
)

__all__ = ["translate_error"]

# --- by class: jax.errors ---------------------------------------------------------------

_CONCRETE_VALUE = (
    "Python needed the concrete value of an array traced by JAX (bool(), int(), float(), "
    "an `if` or a loop bound on it) inside a transform; under jit and vmap the value is "
    "abstract",
    "Mark the argument static with jit(f, static_argnums=...) or static_argnames=..., or "
    "write the branch as array code: xp.where(cond, a, b) instead of `a if cond else b`.",
)
_LEAKED = (
    "a traced value of a JAX transform was used after that transform had finished: it "
    "escaped the function being transformed (stored in a global or an outer variable, "
    "returned through a closure, or carried out by an exception), and its value is no "
    "longer defined",
    "Return the value from the transformed function instead of storing it, or compute it "
    "outside the transform.",
)
_BY_CLASS: tuple[tuple[str, type[UnijaxError], tuple[str, str]], ...] = (
    ("ConcretizationTypeError", ConcretizationError, _CONCRETE_VALUE),  # and TracerBool...
    ("TracerIntegerConversionError", ConcretizationError, _CONCRETE_VALUE),  # range(x)
    ("TracerArrayConversionError", ConcretizationError, (
        "A traced array was converted to a NumPy array (np.asarray or similar) inside a "
        "unijax transform",
        "Use the namespace of the input, xp = array_namespace(x), instead of numpy "
        "functions inside transformed code.",
    )),
    ("NonConcreteBooleanIndexError", ConcretizationError, (
        "x[mask] with a traced boolean mask makes an array whose shape depends on the "
        "mask's values, which vmap and jit cannot know",
        "Keep the shape static: use xp.where(mask, x, 0) (and reduce it) instead of "
        "x[mask]; x[mask] = value with a scalar value works everywhere.",
    )),
    ("UnexpectedTracerError", UnexpectedTracerError, _LEAKED),
)

# --- by message: words in the first line of JAX's TypeError, ValueError, RuntimeError ---

_MISMATCH = (
    "a control-flow construct got branches or a loop carry whose types do not match",
    "Make every branch return the same structure, shapes and dtypes, and a loop body "
    "return a carry of the same structure, shapes and dtypes as the initial one.",
)
_SHARDING = (
    "jit: in_shardings or out_shardings name a placement JAX cannot make",
    "Name only axes of the mesh in each PartitionSpec (Mesh(devices, axis_names)), and give "
    "bare PartitionSpecs a mesh with `with jax.set_mesh(mesh):` or pass "
    "NamedSharding(mesh, spec) instead.",
)
_SCAN_LENGTH = (
    "scan: the number of iterations (length, or the leading size of xs) is not a valid "
    "size",
    "Pass a length >= 0 that agrees with the leading size of every leaf of xs.",
)
# (builtin class JAX raises, words of its first line, unijax class, (what, fix)).
_BY_MESSAGE: tuple[tuple[type[Exception], str, type[UnijaxError], tuple[str, str]], ...] = (
    (TypeError, "outputs must have the same pytree structure", ControlFlowError, _MISMATCH),
    (TypeError, "must have equal output types", ControlFlowError, _MISMATCH),
    (TypeError, "carry input and carry output must have", ControlFlowError, _MISMATCH),
    (TypeError, "scan body output must be a pair", ControlFlowError, (
        "scan: the body must return a pair (carry, y)",
        "Return `new_carry, y` (use None for y when there is nothing to stack).",
    )),
    (TypeError, "cond_fun must return a boolean scalar", ControlFlowError, (
        "while_loop: cond_fun must return a boolean scalar",
        "Return a 0-d boolean array, such as xp.all(...) or `x < n`.",
    )),
    (TypeError, "Pred type must be either boolean or number", TransformArgumentError, (
        "cond: pred must be a scalar boolean (or a real number)",
        "Pass a 0-d boolean array or a Python bool, such as `x > 0`.",
    )),
    (TypeError, "primal and tangent arguments to jax.jvp do not match", ShapeError, (
        "jvp: each tangent must match its primal's shape and dtype",
        "Build tangents with xp.ones_like(primal) or similar (a float32 tangent for a "
        "float64 primal needs xp.astype(t, primal.dtype)).",
    )),
    (ValueError, "jvp called with different primal and tangent shapes", ShapeError, (
        "jvp: each tangent must match its primal's shape and dtype",
        "Build tangents with xp.ones_like(primal) or similar.",
    )),
    (TypeError, "can't apply forward-mode autodiff (jvp) to a custom_vjp function",
     UnsupportedTransformError, (
        "forward-mode differentiation (jvp, jacfwd, hessian) of a custom_vjp function is "
        "not defined: a custom VJP gives only reverse-mode rules",
        "Use reverse mode (grad, vjp, jacrev), or define the function with "
        "unijax.custom_jvp instead.",
    )),
    (ValueError, "Reverse-mode differentiation does not work for lax.while_loop",
     UnsupportedTransformError, (
        "reverse-mode differentiation (grad, vjp, jacrev) through while_loop is not "
        "defined: its number of iterations is only known by running it, so there is no "
        "fixed sequence of steps to run backwards (as in JAX)",
        "Use unijax.lax.fori_loop with Python int bounds (it becomes a scan) or "
        "unijax.lax.scan with a fixed length; forward mode (jvp, jacfwd) works through "
        "while_loop.",
    )),
    (ValueError, "Resource axis:", TransformArgumentError, _SHARDING),
    (RuntimeError, "jit requires a non-empty mesh in context", TransformArgumentError,
     _SHARDING),
    (ValueError, "scan got `length` argument of", TransformArgumentError, _SCAN_LENGTH),
    (ValueError, "scan got values with different leading axis sizes", TransformArgumentError,
     _SCAN_LENGTH),
)

# MLIR rejects a negative dimension when JAX lowers it (a scan of negative length); its
# class lives in jaxlib's MLIR bindings, so it is recognised by name and text.
_NEGATIVE_SIZE = "invalid tensor dimension size"


def translate_error(err: Exception) -> Exception | None:
    """unijax's error for JAX's ``err``, or None when unijax has none for it.

    Example:
        >>> type(translate_error(TypeError("scan body output must be a pair, got f32[]")))
        <class 'unijax.errors.ControlFlowError'>
        >>> translate_error(KeyError("w")) is None
        True
    """
    import jax

    text = str(err).strip()
    lines = text.splitlines()
    first_line = (lines[0] if lines else type(err).__name__).rstrip(".:")
    for name, cls, (what, fix) in _BY_CLASS:
        jax_error = getattr(jax.errors, name, None)
        if jax_error is not None and isinstance(err, jax_error):
            return cls(message(what, got=f"JAX's error {first_line!r}", fix=fix))
    for builtin, words, cls, (what, fix) in _BY_MESSAGE:
        if isinstance(err, builtin) and words in first_line:
            return cls(message(what, got=f"JAX's error {first_line!r}", fix=fix))
    if type(err).__name__ == "MLIRError" and _NEGATIVE_SIZE in text:
        return TransformArgumentError(message(
            "an array size is negative (in unijax.lax.scan: the number of iterations, "
            "length)", got=f"XLA's error {_NEGATIVE_SIZE!r}",
            fix="Pass sizes >= 0: a scan's length must be >= 0 and agree with the leading "
                "size of every leaf of xs."))
    return None

