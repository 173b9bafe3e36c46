"""unijax's errors for ``torch.func``'s: the same class for the same misuse as on every
backend.

``torch.func`` reports misuse as ``RuntimeError`` with a message starting ``vmap:``; the
classes unijax raises for them are the engine's (and JAX's through its plugin):
``ConcretizationError`` where Python needs a value that varies across the batch (``if``,
``.item()``, ``bool()``) or where the output's shape would depend on the values (a
boolean mask, ``nonzero``), ``BatchingError`` for an in-place write of a mapped value into
an unmapped tensor. Under ``torch.func.grad``, ``float()`` of a differentiated tensor only
warns (the derivative is dropped); where warnings are errors that warning becomes
``ConcretizationError``, as the engine raises it.
"""

from __future__ import annotations

from unijax.errors import BatchingError, ConcretizationError, message

__all__ = ["translate_error"]

_CONCRETE_VALUE = (
    "Python needed the concrete value of a tensor batched by torch.func.vmap (bool(), "
    "int(), float(), .item(), an `if` or a loop bound on it) inside a transform; under vmap "
    "the value differs across the batch",
    "Write the branch as array code: xp.where(cond, a, b) instead of `a if cond else b`.",
)
_DYNAMIC_SHAPE = (
    "x[mask] with a batched boolean mask (or nonzero, unique) makes an array whose shape "
    "depends on the values, which vmap cannot batch",
    "Keep the shape static: use xp.where(mask, x, 0) (and reduce it) instead of x[mask].",
)
_IN_PLACE = (
    "An in-place write of a value that varies across the batch into a tensor that does "
    "not (a captured or unmapped tensor) inside vmap",
    "Build a new array instead (xp.where, xp.concat), or map the written tensor too.",
)

# (substring of torch's message, unijax's class, (what, fix))
_RULES = (
    ("data-dependent control flow", ConcretizationError, _CONCRETE_VALUE),
    ("calling .item()", ConcretizationError, _CONCRETE_VALUE),
    ("dynamic shape", ConcretizationError, _DYNAMIC_SHAPE),
    ("Batching rule not implemented for aten::nonzero", ConcretizationError, _DYNAMIC_SHAPE),
    ("Batching rule not implemented for aten::unique", ConcretizationError, _DYNAMIC_SHAPE),
    ("Batching rule not implemented for aten::masked_select", ConcretizationError,
     _DYNAMIC_SHAPE),
    ("inplace", BatchingError, _IN_PLACE),
    ("in-place", BatchingError, _IN_PLACE),
)


def translate_error(err: Exception) -> Exception | None:
    """unijax's error for ``err`` raised by ``torch.func``, or ``None`` to keep it.

    Example:
        >>> err = RuntimeError("vmap: It looks like you're calling .item() on a Tensor.")
        >>> type(translate_error(err)).__name__
        'ConcretizationError'
    """
    if isinstance(err, UserWarning) and "requires_grad=True to a scalar" in str(err):
        # float()/.item() of a tensor torch.func.grad differentiates: torch only warns and
        # drops the derivative; where warnings are errors, say what the engine says.
        return ConcretizationError(message(
            "float() or .item() was called on a tensor being differentiated by "
            "torch.func.grad: a Python number carries no derivative",
            got=str(err).strip().splitlines()[0],
            fix="Keep the value an array (xp.where instead of a Python branch)."))
    if isinstance(err, RuntimeError) and "Can't call numpy() on Tensor that requires grad" \
            in str(err):
        return ConcretizationError(message(
            "np.asarray() (or .numpy()) was called on a tensor being differentiated: a NumPy "
            "array carries no derivative",
            got=str(err).strip().splitlines()[0],
            fix="Use the namespace of the input, xp = array_namespace(x), instead of NumPy "
                "functions inside transformed code."))
    if not isinstance(err, RuntimeError):
        return None
    text = str(err).strip()
    if not text.startswith(("vmap:", "Batching rule")) and "vmap" not in text.partition(
            "\n")[0]:
        return None
    first_line = text.splitlines()[0].rstrip(".")
    for needle, cls, (what, fix) in _RULES:
        if needle in text:
            return cls(message(what, got=first_line, fix=fix))
    return None
