"""The errors unijax raises.

Every error is a :class:`UnijaxError` and also subclasses the builtin exception a
Python user would expect for that misuse (``TypeError``, ``ValueError``, ...), so
``except ValueError`` keeps working. The same misuse raises the same class on every
backend.

Messages follow one shape: what failed and where (the API and the argument), what was
expected against what was given, and how to fix it.

Example:
    >>> import unijax
    >>> try:
    ...     unijax.grad(lambda x: x, argnums=(0, 0))
    ... except unijax.errors.ArgnumsError as err:
    ...     print(type(err).__mro__[1].__name__, "and", isinstance(err, ValueError))
    UnijaxError and True
"""

from __future__ import annotations

__all__ = [
    "ArgnumsError",
    "BackendError",
    "BackendUnavailableError",
    "BatchingError",
    "ConcretizationError",
    "ConfigError",
    "ControlFlowError",
    "CustomRuleError",
    "DeviceTransferError",
    "EngineNotAvailableError",
    "HasAuxError",
    "InAxesError",
    "MissingDependencyError",
    "MissingRuleError",
    "MixedBackendError",
    "NonDifferentiableError",
    "NonScalarOutputError",
    "NonStandardAttributeError",
    "PluginError",
    "PluginValidationError",
    "RuleRegistrationError",
    "ShapeError",
    "TransformArgumentError",
    "UnexpectedTracerError",
    "UnhashableStaticArgumentError",
    "UnijaxError",
    "UnknownBackendError",
    "UnsupportedTransformError",
]


class UnijaxError(Exception):
    """Base class of every error unijax raises on purpose."""


# --- backends and plugins -------------------------------------------------------------


class BackendError(UnijaxError):
    """A backend could not be found, loaded or used."""


class UnknownBackendError(BackendError, ValueError):
    """A backend name that no installed plugin provides."""


class BackendUnavailableError(BackendError, ImportError):
    """The backend's plugin is installed but its array library is not."""


class MissingDependencyError(UnijaxError, ImportError):
    """An option asks for an optional library that is not installed (an extra)."""


class PluginError(BackendError, RuntimeError):
    """A plugin failed to import or its hook raised; the message names the plugin."""


class PluginValidationError(PluginError, TypeError):
    """A plugin implements a hook with a wrong name or signature, or returned a bad value."""


class ConfigError(UnijaxError, ValueError):
    """An invalid configuration value (environment variable, config file or setter)."""


class MixedBackendError(UnijaxError, TypeError):
    """Arrays from two array libraries met in one call and cannot be converted losslessly."""


class DeviceTransferError(UnijaxError, ValueError):
    """An array would need an implicit copy between host and device (or two devices)."""


# --- transform arguments ---------------------------------------------------------------


class ArgnumsError(UnijaxError, ValueError):
    """``argnums``/``static_argnums``/``static_argnames`` out of range, duplicated or mistyped."""


class HasAuxError(UnijaxError, TypeError):
    """``has_aux=True`` but the function did not return an ``(output, aux)`` pair."""


class InAxesError(UnijaxError, ValueError):
    """``in_axes``/``out_axes`` that do not match the arguments or the array ranks."""


class BatchingError(UnijaxError, ValueError):
    """Mapped axes of different sizes, or an ``out_axes=None`` output that varies."""


class NonScalarOutputError(UnijaxError, TypeError):
    """``grad`` of a function whose output is not a real scalar."""


class NonDifferentiableError(UnijaxError, TypeError):
    """Differentiation with respect to (or of) an integer or boolean value."""


class UnhashableStaticArgumentError(UnijaxError, TypeError):
    """A value passed as a static argument to ``jit`` is not hashable."""


class ConcretizationError(UnijaxError, TypeError):
    """Python needed a concrete value (``bool``, ``int``, ``float``) of a traced array."""


class TransformArgumentError(UnijaxError, TypeError):
    """A transform was given the wrong kind of argument (not a callable, primals that are
    not a tuple, a jit argument that is neither an array nor a scalar)."""


class ShapeError(UnijaxError, ValueError):
    """An operation got an array of a rank or shape it is not defined for."""


class ControlFlowError(UnijaxError, TypeError):
    """A control-flow construct (``unijax.lax``) got branches or a loop body whose outputs
    do not match: branch outputs of another structure, or a carry whose structure, shape or
    dtype changes from one iteration to the next."""


class CustomRuleError(UnijaxError, TypeError):
    """A ``custom_vjp`` ``bwd`` or ``custom_jvp`` rule returned values that do not match
    the function's inputs (cotangents) or outputs (tangents) in structure, shape or dtype."""


class UnexpectedTracerError(UnijaxError, RuntimeError):
    """A traced value was used after the transform that made it had finished (it leaked)."""


class NonStandardAttributeError(UnijaxError, AttributeError):
    """A traced array was asked for a method the Array API array does not have (``x.sum()``)."""


class UnsupportedTransformError(UnijaxError, TypeError):
    """A transform that is not defined for this input (e.g. ``jvp`` of a ``custom_vjp``)."""


# --- the engine -----------------------------------------------------------------------


class MissingRuleError(UnijaxError, NotImplementedError):
    """A primitive has no rule for the transform applied to it."""


class RuleRegistrationError(UnijaxError, ValueError):
    """A rule was registered twice for one primitive without ``override=True``."""


class EngineNotAvailableError(UnijaxError, NotImplementedError):
    """The requested transform is not available for this backend."""


def message(what: str, *, expected: str | None = None, got: str | None = None,
            fix: str | None = None) -> str:
    """Build an error message in the house shape: what failed, expected vs got, the fix.

    Args:
        what: What failed, naming the API and the argument.
        expected: What was expected.
        got: What was given instead.
        fix: How to fix it.

    Returns:
        The message, one sentence per part.

    Example:
        >>> print(message("grad(f) needs a scalar output", got="shape (3,)",
        ...               fix="Reduce it (xp.sum) or use jacrev."))
        grad(f) needs a scalar output, but got shape (3,). Reduce it (xp.sum) or use jacrev.
    """
    text = what
    if expected is not None:
        text += f"; expected {expected}"
    if got is not None:
        text += f", but got {got}"
    text += "."
    if fix:
        text += f" {fix}"
    return text
