"""unijax.testing: each check passes on correct functions and fails on wrong ones."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax.testing import check_backends, check_grads, check_jit, check_vmap, to_numpy


@unijax.custom_jvp
def _wrong_derivative(x: Any) -> Any:
    return array_namespace(x).sin(x)


@_wrong_derivative.defjvp
def _wrong_jvp(primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    return _wrong_derivative(x), 1.1 * array_namespace(x).cos(x) * t


def test_to_numpy_of_every_installed_kind() -> None:
    assert to_numpy(unijax.asarray([1.0, 2.0], backend="numpy")).tolist() == [1.0, 2.0]


def test_check_grads_passes_on_steep_functions() -> None:
    # Third derivatives of sqrt near 0.1 are large: plain central differences at the
    # default step disagree with the exact second derivative; the Richardson step does not.
    check_grads(lambda x: array_namespace(x).sqrt(x), (np.asarray([0.1, 0.11]),), order=2)


@pytest.mark.parametrize("modes", [("fwd",), ("rev",)])
def test_check_grads_detects_a_wrong_derivative(modes: tuple[str, ...]) -> None:
    with pytest.raises(AssertionError, match="order-1"):
        check_grads(_wrong_derivative, (np.asarray([0.3, -0.8]),), order=1, modes=modes)


# Derivatives that are NaN or infinite at the second element only: the inner product of
# reverse mode turns such a NaN into a NaN total, which compares false with any bound.
_NAN_AT_1 = np.asarray([1.0, np.nan])
_INF_AT_1 = np.asarray([1.0, np.inf])


@unijax.custom_jvp
def _nan_derivative(x: Any) -> Any:
    return array_namespace(x).sin(x)


@_nan_derivative.defjvp
def _nan_jvp(primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    return _nan_derivative(x), array_namespace(x).cos(x) * t * _NAN_AT_1


@unijax.custom_jvp
def _inf_derivative(x: Any) -> Any:
    return array_namespace(x).sin(x)


@_inf_derivative.defjvp
def _inf_jvp(primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    return _inf_derivative(x), array_namespace(x).cos(x) * t * _INF_AT_1


@unijax.custom_jvp
def _cos_nan_derivative(x: Any) -> Any:
    return array_namespace(x).cos(x)


@_cos_nan_derivative.defjvp
def _cos_nan_jvp(primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    return _cos_nan_derivative(x), -array_namespace(x).sin(x) * t * _NAN_AT_1


@unijax.custom_jvp
def _nan_second_derivative(x: Any) -> Any:
    return array_namespace(x).sin(x)


@_nan_second_derivative.defjvp
def _nan_second_jvp(primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    return _nan_second_derivative(x), _cos_nan_derivative(x) * t


_POINT = np.asarray([0.3, -0.8])


@pytest.mark.parametrize(("modes", "where"), [(("fwd",), "JVP of _nan_derivative, output 0"),
                                              (("rev",), "VJP of _nan_derivative, argument 0")],
                         ids=["fwd", "rev"])
def test_check_grads_fails_on_a_nan_derivative(modes: tuple[str, ...], where: str) -> None:
    with pytest.raises(AssertionError, match=re.escape(
            f"order-1 {where}, element (1,): unijax's derivative is not finite")) as info:
        check_grads(_nan_derivative, (_POINT,), order=1, modes=modes)
    assert "but got nan" in str(info.value)


def test_check_grads_names_the_argument_with_a_nan_derivative() -> None:
    def f(x: Any, y: Any) -> Any:
        return x * 2.0 + _nan_derivative(y)

    with pytest.raises(AssertionError, match=re.escape("VJP of f, argument 1, element (1,)")):
        check_grads(f, (_POINT, _POINT), order=1, modes=("rev",))


def test_check_grads_names_the_pytree_leaf_with_a_nan_derivative() -> None:
    def f(tree: Any) -> Any:
        return tree["a"] * 2.0 + _nan_derivative(tree["b"])

    with pytest.raises(AssertionError, match=re.escape("argument 0 leaf 1, element (1,)")):
        check_grads(f, ({"a": _POINT, "b": _POINT},), order=1, modes=("rev",))


@pytest.mark.parametrize("modes", [("fwd",), ("rev",)])
def test_check_grads_fails_on_a_nan_second_derivative(modes: tuple[str, ...]) -> None:
    with pytest.raises(AssertionError, match=r"order-2 .*element \(1,\): unijax's derivative "
                                             r"is not finite"):
        check_grads(_nan_second_derivative, (_POINT,), order=2, modes=modes)


@pytest.mark.parametrize("modes", [("fwd",), ("rev",)])
# Reverse mode multiplies the infinite derivative by a zero on the way (NaN, with NumPy's
# warning); the check must still fail, on the element.
@pytest.mark.filterwarnings("ignore:invalid value encountered in multiply:RuntimeWarning")
def test_check_grads_fails_on_an_infinite_derivative(modes: tuple[str, ...]) -> None:
    with pytest.raises(AssertionError, match=re.escape(
            "element (1,): unijax's derivative is not finite")) as info:
        check_grads(_inf_derivative, (_POINT,), order=1, modes=modes)
    assert re.search(r"but got -?inf\.$", str(info.value))


@pytest.mark.parametrize("modes", [("fwd",), ("rev",)])
def test_check_grads_fails_on_nan_finite_differences(modes: tuple[str, ...]) -> None:
    # The function is NaN at one element, its derivative (the identity) finite: nothing
    # can be checked there, and reverse mode used to accept it.
    shift = np.asarray([0.0, np.nan])
    with pytest.raises(AssertionError, match=re.escape(
            "output 0, element (1,): the finite differences are not finite")):
        check_grads(lambda x: x + shift, (_POINT,), order=1, modes=modes)


def _object_cotangent(scale: Any) -> Any:
    """``2 x`` whose reverse rule returns an array of Python objects (as Autograd's higher
    derivatives can), scaled elementwise by ``scale``."""

    @unijax.custom_vjp
    def double(x: Any) -> Any:
        return x * 2.0

    def fwd(x: Any) -> Any:
        return double(x), None

    def bwd(_: Any, g: Any) -> Any:
        return (np.asarray(to_numpy(g) * 2.0 * scale, dtype=object),)

    double.defvjp(fwd, bwd)
    return double


def test_check_grads_reads_derivatives_returned_as_objects() -> None:
    check_grads(_object_cotangent(1.0), (_POINT,), order=1, modes=("rev",))
    with pytest.raises(AssertionError, match=re.escape("argument 0, element (1,)")):
        check_grads(_object_cotangent(_NAN_AT_1), (_POINT,), order=1, modes=("rev",))


def test_check_grads_rejects_unknown_modes() -> None:
    with pytest.raises(ValueError, match="unknown modes"):
        check_grads(lambda x: x, (np.ones(2),), modes=("forward",))


def test_check_vmap_in_and_out_axes() -> None:
    x, w = np.arange(24.0).reshape(2, 3, 4), np.linspace(0.0, 1.0, 4)
    check_vmap(lambda a, b: a @ b, (x, w), in_axes=(1, None), out_axes=1)
    check_vmap(lambda t: {"s": t["a"] * 2.0, "k": t["b"]},
               ({"a": x, "b": w},), in_axes=({"a": 2, "b": None},), out_axes={"s": -1, "k": None})


def test_check_vmap_detects_a_wrong_batching() -> None:
    # The function reads the batch axis itself, so vmap and the loop disagree.
    calls: list[int] = []

    def leaky(x: Any) -> Any:
        calls.append(1)
        return x * len(calls)

    with pytest.raises(AssertionError, match="against a Python loop"):
        check_vmap(leaky, (np.ones((3, 2)),))


def test_check_jit_detects_a_trace_time_constant() -> None:
    calls: list[int] = []

    def f(x: Any) -> Any:
        calls.append(1)  # eager sees 1 call, the traced program bakes in the 2nd
        return x * float(len(calls))

    with pytest.raises(AssertionError, match="against eager"):
        check_jit(f, (np.ones(2),))


def test_check_vmap_fails_on_a_nan_against_a_number() -> None:
    # vmap's single call sees NaN, the loop's calls see numbers.
    calls: list[int] = []

    def nan_first(x: Any) -> Any:
        calls.append(1)
        return x * (float("nan") if len(calls) == 1 else 1.0)

    with pytest.raises(AssertionError, match="against a Python loop"):
        check_vmap(nan_first, (np.ones((3, 2)),))


def test_check_jit_fails_on_a_nan_against_a_number() -> None:
    calls: list[int] = []

    def nan_when_traced(x: Any) -> Any:
        calls.append(1)  # eager sees 1 call, the traced program the 2nd
        return x * (1.0 if len(calls) == 1 else float("nan"))

    with pytest.raises(AssertionError, match="against eager"):
        check_jit(nan_when_traced, (np.ones(2),))


def test_check_jit_accepts_the_same_nan() -> None:
    check_jit(lambda x: x * float("nan"), (np.ones(2),))


def test_check_jit_static_arguments() -> None:
    check_jit(lambda x, n: x**n, (np.arange(3.0), 3), static_argnums=1)
    check_jit(lambda x, *, n: x**n, (np.arange(3.0),), {"n": 2}, static_argnames="n")


def _loss(w: Any) -> Any:
    xp = array_namespace(w)
    return xp.sum(xp.tanh(w) ** 2)


def test_check_backends_report() -> None:
    report = check_backends(_loss, np.linspace(-1.0, 1.0, 5),
                            transforms=("value", "grad", "vmap", "jit"),
                            backends=["numpy", "no_such_backend"])
    assert report.ok
    assert "no_such_backend" in report.skipped
    text = str(report)
    assert "check_backends(_loss)" in text and "all agree" in text
    assert [r.transform for r in report.rows] == ["value", "grad", "vmap", "jit"]


class _OffByOne:
    """A namespace whose sum is off by one: a backend with a bug."""

    def __init__(self) -> None:
        import array_api_compat.numpy as cnp

        self._cnp: Any = cnp

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cnp, name)

    def sum(self, x: Any, /, **kwargs: Any) -> Any:
        return self._cnp.sum(x, **kwargs) + 1.0


class _NanSum(_OffByOne):
    """A namespace whose sum is NaN."""

    def sum(self, x: Any, /, **kwargs: Any) -> Any:
        return self._cnp.sum(x, **kwargs) * float("nan")


class _FiniteSum(_OffByOne):
    """A namespace whose sum leaves out infinite elements."""

    def sum(self, x: Any, /, **kwargs: Any) -> Any:
        return self._cnp.sum(self._cnp.where(self._cnp.isfinite(x), x, 0.0), **kwargs)


def _register_namespace(name: str, namespace: type) -> Any:
    import types

    from unijax.dispatch import plugins as _plugins
    from unijax.extend import Backend, hookimpl, register_plugin

    plugin = types.ModuleType(f"unijax_{name}")
    plugin.unijax_backend = hookimpl(lambda: Backend(  # type: ignore[attr-defined]
        name, (f"unijax_{name}",), ("numpy",), "(test only)", load_namespace=namespace))
    register_plugin(plugin)
    yield name
    _plugins._reset()


@pytest.fixture
def off_by_one() -> Any:
    yield from _register_namespace("test_off_by_one", _OffByOne)


@pytest.fixture
def nan_sum() -> Any:
    yield from _register_namespace("test_nan_sum", _NanSum)


@pytest.fixture
def finite_sum() -> Any:
    yield from _register_namespace("test_finite_sum", _FiniteSum)


def _active_sum(w: Any) -> Any:
    return unijax.namespace().sum(w * w)  # the active backend's namespace


def test_check_backends_reports_a_disagreement(off_by_one: str) -> None:
    report = check_backends(_active_sum, np.ones(3), transforms=("value",),
                            backends=["numpy", off_by_one])
    assert not report.ok
    worst = report.worst()
    assert worst is not None and worst.backend == off_by_one and worst.max_abs == 1.0
    assert "DISAGREEMENT" in str(report) and "too large" in str(report)


def test_check_backends_reports_nan_against_a_number(off_by_one: str, nan_sum: str) -> None:
    report = check_backends(_active_sum, np.ones(3), transforms=("value",),
                            backends=["numpy", off_by_one, nan_sum])
    assert not report.ok
    (row,) = [r for r in report.rows if r.backend == nan_sum]
    assert not row.ok and row.max_abs == np.inf
    worst = report.worst()  # NaN is worse than off by one
    assert worst is not None and worst.backend == nan_sum
    assert "inf (too large)" in str(report)


def test_check_backends_reports_a_number_against_an_infinite_reference(
        finite_sum: str) -> None:
    report = check_backends(_active_sum, np.asarray([1.0, np.inf]), transforms=("value",),
                            backends=["numpy", finite_sum])
    (row,) = [r for r in report.rows if r.backend == finite_sum]
    assert not row.ok and row.max_abs == np.inf


def test_check_backends_accepts_the_same_nan_and_infinity() -> None:
    report = check_backends(_active_sum, np.asarray([1.0, np.inf]), transforms=("value",),
                            backends=["numpy"])
    assert report.ok and report.rows[0].max_abs == 0.0
    report = check_backends(lambda w: w * float("nan"), np.ones(2), transforms=("value",),
                            backends=["numpy"])
    assert report.ok and report.rows[0].max_abs == 0.0


def test_check_backends_records_errors(off_by_one: str) -> None:
    def fails_off_numpy(w: Any) -> Any:
        if unijax.current_backend() != "numpy":
            raise RuntimeError("boom")
        return w * 2.0

    report = check_backends(fails_off_numpy, np.ones(2), transforms=("value",),
                            backends=["numpy", off_by_one])
    (row,) = [r for r in report.rows if r.backend == off_by_one]
    assert not row.ok and row.error == "RuntimeError: boom"
    assert "error: RuntimeError: boom" in str(report)


def test_check_backends_rejects_unknown_transforms() -> None:
    with pytest.raises(ValueError, match="unknown transforms"):
        check_backends(_loss, np.ones(2), transforms=("hessian",))


class _Wrapped:
    """An array of a wrapper library: its data is another library's array (like marray's
    MArray), and NumPy cannot read the wrapper itself."""

    def __init__(self, data: Any) -> None:
        self.data = np.asarray(data)

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("_Wrapped refuses __array__: use the backend's to_host")


_Wrapped.__module__ = "unijax_test_wrapper"


class _Opaque:
    """An array nothing can copy to NumPy."""


_Opaque.__module__ = "unijax_test_wrapper"


@pytest.fixture
def wrapper_backend(clean_plugins: None) -> Any:
    import types

    from unijax.dispatch.plugins import register_plugin
    from unijax.extend import Backend, hookimpl

    module = types.ModuleType("unijax_test_wrapper_plugin")

    @hookimpl
    def unijax_backend() -> Backend:
        return Backend("testwrapper", ("unijax_test_wrapper",), (), "", lambda: None,
                       extras={"to_host": lambda x: x.data + 0.0})

    module.unijax_backend = unijax_backend  # type: ignore[attr-defined]
    return register_plugin(module)


def test_to_numpy_uses_the_backends_to_host_hook(wrapper_backend: Any) -> None:
    got = to_numpy(_Wrapped([1.0, 2.0]))
    assert isinstance(got, np.ndarray) and got.tolist() == [1.0, 2.0]


def test_to_numpy_of_an_uncopyable_array_says_how_to_fix(clean_plugins: None) -> None:
    with pytest.raises(TypeError, match=r"cannot copy .*_Opaque.*extras\['to_host'\]"):
        to_numpy(_Opaque())


def test_to_numpy_falls_back_to_dlpack_then_array() -> None:
    class ViaDlpack:
        def __init__(self) -> None:
            self._a = np.arange(3.0)

        def __dlpack__(self, **kwargs: Any) -> Any:
            return self._a.__dlpack__(**kwargs)

        def __dlpack_device__(self) -> Any:
            return self._a.__dlpack_device__()

    class ViaArray:
        def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
            return np.arange(2.0)

    assert to_numpy(ViaDlpack()).tolist() == [0.0, 1.0, 2.0]
    assert to_numpy(ViaArray()).tolist() == [0.0, 1.0]


class _Lazy:
    """An array whose backend's to_host refuses it (as Dask's refuses unknown shapes),
    while NumPy can read it."""

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        return np.arange(3.0)


class _LazyOpaque:
    """An array of that backend that NumPy cannot read either."""


_Lazy.__module__ = _LazyOpaque.__module__ = "unijax_test_refusing"


@pytest.fixture
def refusing_backend(clean_plugins: None) -> Any:
    import types

    from unijax.dispatch.plugins import register_plugin
    from unijax.extend import Backend, hookimpl

    module = types.ModuleType("unijax_test_refusing_plugin")

    def refuse(x: Any) -> Any:
        raise ValueError("unknown shape")

    @hookimpl
    def unijax_backend() -> Backend:
        return Backend("testrefusing", ("unijax_test_refusing",), (), "", lambda: None,
                       extras={"to_host": refuse})

    module.unijax_backend = unijax_backend  # type: ignore[attr-defined]
    return register_plugin(module)


def test_to_numpy_falls_back_when_the_hook_refuses(refusing_backend: Any) -> None:
    assert to_numpy(_Lazy()).tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(TypeError, match="to_host hook raised ValueError: unknown shape"):
        to_numpy(_LazyOpaque())
