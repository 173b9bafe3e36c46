"""What a unijax call on torch watches while the user's function runs.

**Python numbers from differentiated tensors** are refused, as the engine refuses them.

Under ``torch.func.grad`` ``float()`` of a tensor being differentiated only warns, and
under ``torch.func.jvp`` it says nothing: either way the Python number carries no
derivative and the gradient comes out silently wrong (``x * math.log(abs(x))``). The
engine raises :class:`~unijax.errors.ConcretizationError` there; so does this plugin.

While a unijax derivative runs the user's function, a ``TorchFunctionMode`` watches the
few methods that turn a tensor into Python or NumPy values (``float()``, ``complex()``,
``.item()``, ``.tolist()``, ``np.asarray``) and refuses them on a ``torch.func`` tensor of
a floating or complex dtype. ``int()`` and ``bool()`` keep working, as on the engine:
``bool()`` is control flow and ``int()`` a step function. Torch's function-mode stack is
per thread, so the guard never reaches another thread's torch code, and it is entered
once however deeply transforms nest.

**unijax's dtype policy** holds for torch's creation functions called without a dtype
(``xp.zeros(n)``, ``xp.asarray(1.0)``, ``xp.full(s, 0.5)``, ``xp.arange(0.0, 1.0, 0.1)``):
the same mode passes the policy's float dtype explicitly, as JAX's plugin scopes x64 to
unijax's calls. torch's global default dtype is never changed, so other threads and the
user's code outside unijax's calls see torch's default as they set it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.autograd.forward_ad import unpack_dual
from torch.overrides import TorchFunctionMode

import unijax
from unijax.errors import ConcretizationError, message

__all__ = ["guarded", "watching"]

_Tensor = torch.Tensor
_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
_unwrapped = torch._C._functorch.get_unwrapped
_TO_PYTHON: dict[Any, str] = {
    _Tensor.__float__: "float()",
    _Tensor.__complex__: "complex()",
    _Tensor.item: ".item()",
    _Tensor.tolist: ".tolist()",
    _Tensor.__array__: "np.asarray()",
    _Tensor.numpy: ".numpy()",
}
_state = threading.local()

_POLICY = {"float32": torch.float32, "float64": torch.float64}
_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}
# Creation functions whose result without a dtype is torch's default float dtype: those
# that always make floats, those whose Python-number arguments decide (by position), and
# those that convert Python data.
_FLOATING = frozenset({torch.zeros, torch.ones, torch.empty, torch.eye, torch.rand,
                       torch.randn, torch.linspace, torch.logspace})
_BY_VALUE = {torch.full: ("fill_value", 1), torch.arange: ("start", None)}
_FROM_DATA = {torch.asarray: "obj", torch.tensor: "data", torch.as_tensor: "data"}
_CREATION = _FLOATING | frozenset(_BY_VALUE) | frozenset(_FROM_DATA)


def _python_kind(data: Any) -> type | None:
    """``float`` or ``complex`` when data holding Python floats (or complex numbers) would
    take torch's default dtype, else None (integers only, NumPy arrays inside)."""
    tp = type(data)
    if tp is float or tp is complex:
        return tp
    if tp is not list and tp is not tuple:
        return None
    kinds: set[type] = set()
    if not _collect(data, kinds) or not kinds & {float, complex}:
        return None
    return complex if complex in kinds else float


def _collect(data: Any, kinds: set[type]) -> bool:
    """Add the kinds of the numbers in nested ``data`` (a tensor counts as its kind of
    number: a complex tensor beside a Python float keeps the result complex); False for
    anything else inside."""
    for item in data:
        tp = type(item)
        if tp is list or tp is tuple:
            if not _collect(item, kinds):
                return False
        elif tp in (bool, int, float, complex):
            kinds.add(tp)
        elif isinstance(item, _Tensor):
            kinds.add(complex if item.is_complex() else int)
        else:
            return False
    return True


def _policy_dtype(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                  want: torch.dtype) -> torch.dtype | None:
    """The dtype a creation call should pass under the policy, or None to leave it."""
    if func in _FLOATING:
        return want
    by_value = _BY_VALUE.get(func)
    if by_value is not None:
        name, at = by_value
        values = (*args, *kwargs.values()) if at is None else (
            args[at] if len(args) > at else kwargs.get(name),)
        kinds = {type(v) for v in values}
        if complex in kinds:
            return _COMPLEX[want]
        return want if float in kinds else None
    data_name = _FROM_DATA.get(func)
    if data_name is None:
        return None
    kind = _python_kind(args[0] if args else kwargs.get(data_name))
    return None if kind is None else want if kind is float else _COMPLEX[want]


def _carries_derivative(x: Any) -> bool:
    """Whether a level of ``torch.func`` differentiates ``x``: it requires grad there
    (reverse mode) or has a tangent (forward mode). A tensor that does not depend on the
    differentiated inputs is wrapped too, without either, and converts freely."""
    while _wrapped(x):
        if x.requires_grad or unpack_dual(x).tangent is not None:
            return True
        x = _unwrapped(x)
    return False


def _refuse(what: str, x: Any) -> ConcretizationError:
    return ConcretizationError(message(
        f"{what} was called on a tensor being differentiated (unijax's derivatives on "
        "torch): a Python number carries no derivative, so the result would silently "
        "have none",
        got=f"a {str(x.dtype).removeprefix('torch.')} tensor of shape {tuple(x.shape)}",
        fix="Keep the value an array (xp.log(x) rather than math.log(x), xp.where "
            "instead of a Python branch), or wrap it in unijax.stop_gradient when its "
            "derivative is meant to be zero."))


class _Guard(TorchFunctionMode):
    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        if func in _CREATION and (kwargs is None or kwargs.get("dtype") is None):
            want = _wanted()  # read per call: the policy may change inside a scope
            dtype = None if want is None else _policy_dtype(func, args, kwargs or {}, want)
            if dtype is not None:
                kwargs = {**(kwargs or {}), "dtype": dtype}
        what = _TO_PYTHON.get(func)
        if what is not None and args:
            x = args[0]
            if isinstance(x, _Tensor) and (x.is_floating_point() or x.is_complex()) \
                    and _carries_derivative(x):
                raise _refuse(what, x)
        if func is torch.asarray and args and isinstance(args[0], _Tensor) and (
                kwargs is None or "requires_grad" not in kwargs):
            # torch warns (once) that asarray's requires_grad now follows the tensor's;
            # that is what a derivative needs, so say it explicitly.
            kwargs = {**(kwargs or {}), "requires_grad": args[0].requires_grad}
        return func(*args, **kwargs) if kwargs else func(*args)


def _wanted() -> torch.dtype | None:
    want = _POLICY.get(unijax.default_float_dtype())
    return None if want is None or want == torch.get_default_dtype() else want


@contextmanager
def watching() -> Iterator[None]:
    """In this thread, for a while: refuse Python numbers from differentiated tensors and
    create floats in the policy's dtype (a no-op when already watching)."""
    if getattr(_state, "on", False):
        yield
        return
    _state.on = True
    try:
        with _Guard():
            yield
    finally:
        _state.on = False


def guarded(fun: Callable[..., Any]) -> Callable[..., Any]:
    """``fun`` run under :func:`watching`.

    Example:
        >>> import torch
        >>> torch.func.grad(guarded(lambda x: x * torch.ones(())))(torch.tensor(2.0)).dtype
        torch.float32
    """

    def run(*args: Any, **kwargs: Any) -> Any:
        if getattr(_state, "on", False):
            return fun(*args, **kwargs)
        with watching():
            return fun(*args, **kwargs)

    return run
