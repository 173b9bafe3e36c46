"""unijax.testing: each check passes on correct functions and fails on wrong ones."""

from __future__ import annotations

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


@pytest.fixture
def off_by_one() -> Any:
    import types

    from unijax.dispatch import plugins as _plugins
    from unijax.extend import Backend, hookimpl, register_plugin

    plugin = types.ModuleType("unijax_test_off_by_one")
    plugin.unijax_backend = hookimpl(lambda: Backend(  # type: ignore[attr-defined]
        "test_off_by_one", ("unijax_test_off_by_one",), ("numpy",), "(test only)",
        load_namespace=_OffByOne))
    register_plugin(plugin)
    yield "test_off_by_one"
    _plugins._reset()


def _active_sum(w: Any) -> Any:
    return unijax.namespace().sum(w * w)  # the active backend's namespace


def test_check_backends_reports_a_disagreement(off_by_one: str) -> None:
    report = check_backends(_active_sum, np.ones(3), transforms=("value",),
                            backends=["numpy", off_by_one])
    assert not report.ok
    worst = report.worst()
    assert worst is not None and worst.backend == off_by_one and worst.max_abs == 1.0
    assert "DISAGREEMENT" in str(report) and "too large" in str(report)


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
