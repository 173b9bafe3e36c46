"""Arrays made through a tracer's namespace are constants of its trace, and the namespace
says truthfully what its trace allows."""

from __future__ import annotations

import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax.engine.namespace import TracedNamespace

ENGINE = ["numpy", "array_api_strict"]
TRANSFORMS = {
    "grad": lambda f, b: unijax.grad(lambda x: array_namespace(x).sum(f(x)), backend=b),
    "vmap": lambda f, b: unijax.vmap(f, backend=b),
    "jit": lambda f, b: unijax.jit(f, backend=b),
}
MAKERS = {
    "asarray": lambda xp: xp.asarray([1.0, 2.0, 3.0]),
    "zeros": lambda xp: xp.zeros(3),
    "ones": lambda xp: xp.ones(3),
    "full": lambda xp: xp.full(3, 2.0),
    "arange": lambda xp: xp.astype(xp.arange(3), xp.float64),
    "linspace": lambda xp: xp.linspace(0.0, 1.0, 3),
    "eye": lambda xp: xp.eye(3)[0, :],
}


def _x(backend, rows=None):
    value = np.asarray([1.0, 2.0, 4.0]) if rows is None else np.ones((rows, 3))
    return unijax.asarray(value, backend=backend)


@pytest.mark.parametrize("backend", ENGINE)
@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("maker", MAKERS)
def test_made_array_mixes_with_tracers(backend, transform, maker):
    def f(x):
        xp = array_namespace(x)
        made = MAKERS[maker](xp)
        assert array_namespace(x, made) is not None  # one namespace, not two
        out = made / (x + 1.0)  # a made array on the left: strict refuses foreign operands
        out = out + made * x
        return out

    run = TRANSFORMS[transform](f, backend)
    x = _x(backend, rows=2 if transform == "vmap" else None)
    got = np.asarray(unijax.to_backend(run(x), "numpy"))
    made = np.asarray(unijax.to_backend(MAKERS[maker](unijax.namespace(backend)), "numpy"))
    xs = np.asarray(unijax.to_backend(x, "numpy"))
    if transform == "grad":
        want = -made / (xs + 1.0) ** 2 + made
    else:
        want = made / (xs + 1.0) + made * xs
    np.testing.assert_allclose(got, want)


@pytest.mark.parametrize("backend", ENGINE)
def test_tracer_written_into_a_made_array(backend):
    def f(x):
        xp = array_namespace(x)
        out = xp.zeros(3)
        out[1] = x[0] * 2.0
        flags = xp.zeros(3, dtype=xp.bool)
        flags |= x > 1.5
        return xp.sum(out * x) + xp.sum(xp.where(flags, x, 0.0))

    g = unijax.grad(f, backend=backend)(_x(backend))
    # f = 2 x0 x1 + x1 + x2 (x1, x2 > 1.5)
    np.testing.assert_allclose(np.asarray(unijax.to_backend(g, "numpy")), [4.0, 3.0, 1.0])
    value = unijax.jit(f, backend=backend)(_x(backend))
    assert float(unijax.to_backend(value, "numpy")) == pytest.approx(2 * 2.0 + 2.0 + 4.0)


def test_namespaces_of_nested_traces_compare_equal():
    seen = []

    def inner(x, w):
        seen.append((array_namespace(x), array_namespace(w), array_namespace(x, w)))
        return array_namespace(x).sum(x * w)

    unijax.grad(lambda w: array_namespace(w).sum(
        unijax.vmap(inner, in_axes=(0, None))(np.ones((2, 3)), w)))(
        np.ones(3))
    (x_ns, w_ns, both), = seen
    assert x_ns == w_ns and hash(x_ns) == hash(w_ns) and both in (x_ns, w_ns)


@pytest.mark.parametrize("transform,static", [("grad", False), ("vmap", True), ("jit", True)])
def test_capabilities_tell_what_the_trace_allows(transform, static):
    found = {}

    def f(x):
        xp = array_namespace(x)
        info = xp.__array_namespace_info__()
        found.update(info.capabilities())
        found["devices"] = info.devices()
        return x * 2.0

    TRANSFORMS[transform](f, "numpy")(_x("numpy", rows=2 if transform == "vmap" else None))
    assert found["boolean indexing"] is (not static)
    assert found["data-dependent shapes"] is (not static)
    assert isinstance(found["devices"], list)


def test_capabilities_under_grad_inside_vmap_are_static():
    found = {}

    def loss(x):
        found.update(array_namespace(x).__array_namespace_info__().capabilities())
        return array_namespace(x).sum(x ** 2)

    unijax.vmap(unijax.grad(loss))(np.ones((2, 3)))
    assert found["data-dependent shapes"] is False


def test_names_outside_the_standard_are_absent():
    import array_api_compat.numpy as base

    xp = TracedNamespace(base)
    assert hasattr(base, "isin") and not hasattr(xp, "isin")
    assert hasattr(base.linalg, "eig") and not hasattr(xp.linalg, "eig")
    assert hasattr(xp, "float64") and hasattr(xp, "newaxis") and hasattr(xp, "zeros")
    assert {"zeros", "linalg", "fft", "float32"} <= set(dir(xp))


def test_namespace_without_a_trace_makes_plain_arrays():
    import array_api_compat.numpy as base

    out = TracedNamespace(base).zeros(2)
    assert type(out) is np.ndarray


def test_namespaces_do_not_keep_a_finished_trace_alive():
    # A namespace refers to its trace; were the trace to refer back after it finished,
    # every tape would wait for the cyclic garbage collector (memory and time).
    import gc

    from unijax.engine.ad import VJPTrace

    def f(x):
        xp = array_namespace(x)
        return xp.sum(xp.linalg.vector_norm(x) * xp.asarray([1.0, 2.0]) * x)

    gc.collect()
    gc.disable()
    try:
        before = sum(type(o) is VJPTrace for o in gc.get_objects())
        for _ in range(5):
            unijax.grad(f)(np.ones(2))
        after = sum(type(o) is VJPTrace for o in gc.get_objects())
    finally:
        gc.enable()
    assert after == before
