"""The engine against hostile or unusual input: custom rules that return values of the
wrong type, names that are not identifiers, constants of a trace handed to NumPy, shapes
computed from constants under jit, and in-place writes across transforms."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
import unijax.lax as ulax
from unijax.engine.core import Primitive
from unijax.engine.lower import compile_python
from unijax.engine.namespace import array_functions as ops
from unijax.engine.staging import stage
from unijax.errors import (
    BatchingError,
    ConcretizationError,
    CustomRuleError,
    UnsupportedTransformError,
)

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
jax.config.update("jax_enable_x64", True)

#: Every backend with a custom-rule path of its own (native or the engine's).
RULE_BACKENDS = ["numpy", "autograd", "jax", "torch", "array_api_strict"]


def _x(backend: str, value: Any = (1.0, 2.0, 3.0)) -> Any:
    return unijax.asarray(np.asarray(value, dtype=np.float64), backend=backend)


def _total(x: Any) -> Any:
    return array_namespace(x).sum(x)


# --- custom rules whose values do not match ---------------------------------------------


def _vjp_with_bwd(bwd: Any) -> Any:
    @unijax.custom_vjp
    def double(x: Any) -> Any:
        return 2.0 * x

    double.defvjp(lambda x: (2.0 * x, None), bwd)
    return double


def summed_bwd(res: Any, ct: Any) -> Any:
    # shape (1,) for an input of shape (3,): NumPy would broadcast it into the gradient.
    return (array_namespace(ct).sum(ct, keepdims=True),)


@pytest.mark.parametrize("backend", RULE_BACKENDS)
def test_custom_vjp_bwd_of_wrong_shape_raises_one_error_on_every_backend(backend: str) -> None:
    double = _vjp_with_bwd(summed_bwd)
    with pytest.raises(CustomRuleError, match=r"summed_bwd.*double.*\(3,\).*\(1,\)"):
        unijax.grad(lambda x: _total(double(x)), backend=backend)(_x(backend))


def broken_jvp(primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    return 2.0 * x, array_namespace(t).sum(t, keepdims=True)


@pytest.mark.parametrize("backend", RULE_BACKENDS)
@pytest.mark.parametrize("mode", ["grad", "jvp"])
def test_custom_jvp_tangent_of_wrong_shape_raises_one_error_on_every_backend(
        backend: str, mode: str) -> None:
    @unijax.custom_jvp
    def double(x: Any) -> Any:
        return 2.0 * x

    double.defjvp(broken_jvp)
    x = _x(backend)
    with pytest.raises(CustomRuleError, match=r"broken_jvp.*double.*\(3,\).*\(1,\)"):
        if mode == "grad":
            unijax.grad(lambda x: _total(double(x)), backend=backend)(x)
        else:
            unijax.jvp(double, (x,), (x,), backend=backend)


def test_custom_vjp_bwd_of_wrong_structure_or_kind_raises() -> None:
    def pair_bwd(res: Any, ct: Any) -> Any:
        return ((ct, ct),)

    with pytest.raises(CustomRuleError, match=r"pair_bwd.*structure"):
        unijax.grad(lambda x: _total(_vjp_with_bwd(pair_bwd)(x)))(np.ones(3))

    def complex_bwd(res: Any, ct: Any) -> Any:
        return (ct * 1j,)

    with pytest.raises(CustomRuleError, match=r"complex_bwd.*real floating"):
        unijax.grad(lambda x: _total(_vjp_with_bwd(complex_bwd)(x)))(np.ones(3))

    def loose_bwd(res: Any, ct: Any) -> Any:
        return ct

    with pytest.raises(CustomRuleError, match=r"loose_bwd.*tuple of length 1"):
        unijax.grad(lambda x: _total(_vjp_with_bwd(loose_bwd)(x)))(np.ones(3))


def test_custom_vjp_bwd_none_for_part_of_an_argument_is_a_zero_cotangent() -> None:
    def make(custom_vjp: Any, xp: Any) -> Any:
        @custom_vjp
        def f(p: Any) -> Any:
            return xp.sum(p["a"] * p["b"][0] * p["b"][1])

        def fwd(p: Any) -> Any:
            return f(p), p

        def bwd(p: Any, ct: Any) -> Any:  # no cotangent for p["b"][1]
            return ({"a": ct * p["b"][0] * p["b"][1], "b": (ct * p["a"] * p["b"][1], None)},)

        f.defvjp(fwd, bwd)
        return f

    point = {"a": np.asarray([1.0, 2.0]), "b": (np.asarray([3.0, 4.0]), np.asarray([5.0, 6.0]))}
    got = unijax.grad(make(unijax.custom_vjp, array_namespace(point["a"])))(point)
    want = jax.grad(make(jax.custom_vjp, jnp))(jax.tree_util.tree_map(jnp.asarray, point))
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want),
                    strict=True):
        np.testing.assert_allclose(g, w)


# --- names in generated source ------------------------------------------------------------


def test_primitive_name_holding_code_is_never_run_by_any_lowering() -> None:
    # Written into generated source as text, each name would set builtins.UNIJAX_PWNED.
    code = "setattr(__import__('builtins'), 'UNIJAX_PWNED', 1)"
    custom = Primitive(f"f(0) if {code} else f")
    custom.def_impl(lambda xp, x, **params: x + params["k"])
    plain = Primitive(f"g(0) if {code} else g")  # found on the namespace by its name
    xp = array_namespace(np.zeros(1))
    setattr(xp, plain.name, lambda x: 3.0 * x)
    try:
        for backend in ["numpy", "torch", "dask"]:  # torch and dask reuse the generated source
            def f(x: Any, backend: str = backend) -> Any:
                y = custom.bind(x, k=1.0) + custom.bind(x, **{f"k={code} or 1": 0.0, "k": 1.0})
                return plain.bind(y) if backend == "numpy" else y

            jitted = unijax.jit(f, backend=backend, static_argnames="backend")
            x = _x(backend, [1.0, 2.0])
            for _ in range(3):  # the first call returns staged values; later ones compile
                got = np.asarray(jitted(x))
            want = 2.0 * (np.asarray([1.0, 2.0]) + 1.0)
            np.testing.assert_allclose(got, 3.0 * want if backend == "numpy" else want)
            assert not hasattr(builtins, "UNIJAX_PWNED")
    finally:
        delattr(xp, plain.name)
        if hasattr(builtins, "UNIJAX_PWNED"):
            delattr(builtins, "UNIJAX_PWNED")


@pytest.mark.parametrize("name", ["µ", "ﬁx", "xp", "_p0", "c0", "lambda", "a b"])
def test_compiled_function_named_by_user_text_still_compiles(name: str) -> None:
    # Python normalises identifiers (NFKC: µ becomes μ), so "def µ" is stored under "μ".
    # A closed-over array is the program's constant c0.
    scale = np.asarray([1.0, 2.0, 3.0])
    program, _ = stage(lambda xs: [ops.sin(xs[0]) * scale], [np.zeros(3)])
    fn = compile_python(program, array_namespace(np.zeros(1)), name=name)
    x = np.linspace(0.0, 1.0, 3)
    np.testing.assert_allclose(fn(x)[0], np.sin(x) * scale)
    assert fn.source.isascii()


# --- custom_jvp whose primal runs a loop ----------------------------------------------------


def _loop_jvp(custom_jvp: Any, while_loop: Any) -> Any:
    @custom_jvp
    def grow(x: Any) -> Any:
        xp = array_namespace(x)  # the namespace of the value the rule is given
        return while_loop(lambda v: xp.sum(v) < 10.0, lambda v: v * 1.5, x)

    @grow.defjvp
    def _(primals: Any, tangents: Any) -> Any:
        (x,), (t,) = primals, tangents
        y = grow(x)
        return y, t * y / x

    return grow


@pytest.mark.parametrize("transform", ["grad", "jit(grad)", "jvp", "vmap(grad)"])
def test_grad_of_custom_jvp_whose_primal_runs_a_while_loop_matches_jax(transform: str) -> None:
    ours = _loop_jvp(unijax.custom_jvp, ulax.while_loop)
    ref = _loop_jvp(jax.custom_jvp, jax.lax.while_loop)
    x = np.asarray([2.0, 3.0])
    if transform == "jvp":
        got = unijax.jvp(ours, (x,), (np.ones(2),))[1]
        want = jax.jvp(ref, (jnp.asarray(x),), (jnp.ones(2),))[1]
    elif transform == "vmap(grad)":
        xs = np.asarray([[2.0, 3.0], [0.5, 1.0]])
        got = unijax.vmap(unijax.grad(lambda x: _total(ours(x))))(xs)
        want = jax.vmap(jax.grad(lambda x: jnp.sum(ref(x))))(jnp.asarray(xs))
    else:
        grad = unijax.grad(lambda x: _total(ours(x)))
        got = (unijax.jit(grad) if transform == "jit(grad)" else grad)(x)
        want = jax.grad(lambda x: jnp.sum(ref(x)))(jnp.asarray(x))
    np.testing.assert_allclose(got, want, rtol=1e-12)


# --- data-dependent shapes of constants under jit -------------------------------------------


def _upper_sum(x: Any) -> Any:
    # array-api-extra's triu_indices: nonzero of a mask built from constants only.
    xp = array_namespace(x)
    n = x.shape[0]
    rows, cols = xp.nonzero(xp.arange(n)[:, None] <= xp.arange(n)[None, :])
    kept = xp.unique_values(xp.asarray([2, 0, 2]))
    mask = xp.arange(n * n) % 2 == 0
    return xp.sum(x[rows, cols]) + xp.sum(xp.reshape(x, (-1,))[mask]) + \
        xp.sum(x[kept, kept])


def _upper_sum_jax(x: Any) -> Any:
    n = x.shape[0]
    rows, cols = np.triu_indices(n)
    kept = np.unique(np.asarray([2, 0, 2]))
    mask = np.arange(n * n) % 2 == 0
    return jnp.sum(x[rows, cols]) + jnp.sum(jnp.reshape(x, (-1,))[mask]) + \
        jnp.sum(x[kept, kept])


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_nonzero_and_unique_of_constants_work_under_jit(backend: str) -> None:
    a = np.arange(9.0).reshape(3, 3)
    want = jax.jit(_upper_sum_jax)(jnp.asarray(a))
    jitted = unijax.jit(_upper_sum)
    for _ in range(2):  # staged values, then the compiled program
        np.testing.assert_allclose(np.asarray(jitted(_x(backend, a))), want)
    grad = unijax.jit(unijax.grad(_upper_sum))(_x(backend, a))
    np.testing.assert_allclose(np.asarray(grad), jax.grad(_upper_sum_jax)(jnp.asarray(a)))


def test_nonzero_of_an_input_still_raises_under_jit_and_vmap() -> None:
    def f(x: Any) -> Any:
        return array_namespace(x).nonzero(x > 1.0)[0]

    with pytest.raises(ConcretizationError, match=r"nonzero\(\).*jit"):
        unijax.jit(f)(np.arange(3.0))
    with pytest.raises(ConcretizationError, match=r"nonzero\(\).*vmap"):
        unijax.vmap(f)(np.ones((2, 3)))


# --- NumPy conversion of constants of a trace -----------------------------------------------


def _scaled(x: Any, c: Any) -> Any:
    # NumPy reads the non-differentiated argument and an array made inside the function,
    # as SciPy's lmoment and scikit-learn's log_loss do.
    xp = array_namespace(x, c)
    k = xp.arange(3) * 2.0
    weights = np.asarray(c) * np.asarray(k) + float(xp.sum(c))
    return xp.sum(x * xp.asarray(weights))


def _scaled_jax(x: Any, c: Any) -> Any:
    return jnp.sum(x * (np.asarray(c) * np.arange(3) * 2.0 + float(np.sum(c))))


def test_numpy_conversion_of_constants_matches_jax() -> None:
    x, c = np.asarray([1.0, 2.0, 3.0]), np.asarray([4.0, 5.0, 6.0])
    want = jax.grad(_scaled_jax)(jnp.asarray(x), c)
    np.testing.assert_allclose(unijax.grad(_scaled)(x, c), want)
    np.testing.assert_allclose(unijax.jacfwd(_scaled)(x, c), want)
    np.testing.assert_allclose(
        unijax.vmap(unijax.grad(_scaled), in_axes=(0, None))(np.stack([x, 2 * x]), c),
        np.stack([want, want]))

    def made_inside(x: Any) -> Any:  # under jit, only values computed from constants
        xp = array_namespace(x)
        return xp.sum(x * xp.asarray(np.asarray(xp.arange(3) * 2.0)))

    jitted = unijax.jit(made_inside)
    for _ in range(2):
        np.testing.assert_allclose(jitted(x), jnp.sum(x * np.arange(3) * 2.0))


def test_numpy_array_of_a_constant_is_read_only() -> None:
    seen: list[Any] = []

    def f(x: Any) -> Any:
        xp = array_namespace(x)
        c = xp.ones(3)
        seen.append(np.asarray(c))
        return xp.sum(x * c)

    unijax.grad(f)(np.ones(3))
    assert not seen[0].flags.writeable


@pytest.mark.parametrize("transform", ["grad", "jacfwd", "vmap", "jit", "jit(grad)",
                                       "grad(grad)"])
def test_numpy_conversion_of_a_value_that_depends_on_the_input_raises(transform: str) -> None:
    def f(x: Any) -> Any:
        xp = array_namespace(x)
        y = x * 2.0  # depends on x, although its value is known while tracing
        return xp.sum(x * xp.asarray(np.asarray(y)))

    wrapped = {
        "grad": unijax.grad(f), "jacfwd": unijax.jacfwd(f), "vmap": unijax.vmap(f),
        "jit": unijax.jit(f), "jit(grad)": unijax.jit(unijax.grad(f)),
        "grad(grad)": unijax.grad(lambda x: unijax.grad(f)(x)[0]),
    }[transform]
    x = np.ones((2, 3)) if transform == "vmap" else np.ones(3)
    with pytest.raises(ConcretizationError, match="depends on an input"):
        wrapped(x)


# --- in-place writes across transforms ------------------------------------------------------


def test_batched_write_into_an_array_made_outside_vmap_raises_a_batching_error() -> None:
    def outer(w: Any) -> Any:
        xp = array_namespace(w)
        x = xp.zeros(3)

        def inner(v: Any) -> Any:
            x[0] = v * w
            return x

        return xp.sum(unijax.vmap(inner)(np.asarray([5.0, 6.0])))

    with pytest.raises(BatchingError, match=r"x\[\.\.\.\] = value.*vmap"):
        unijax.grad(outer)(np.asarray(1.0))
    with pytest.raises(BatchingError, match=r"x\[\.\.\.\] = value.*vmap"):
        unijax.vmap(outer)(np.asarray([1.0, 2.0]))


def test_differentiated_write_into_an_array_made_outside_grad_raises() -> None:
    def outer(w: Any) -> Any:
        xp = array_namespace(w)
        x = xp.zeros(3)

        def inner(v: Any) -> Any:
            x[0] = v
            return xp.sum(x)

        return unijax.grad(inner)(w)

    with pytest.raises(UnsupportedTransformError, match=r"x\[\.\.\.\] = value"):
        unijax.vmap(outer)(np.asarray([1.0, 2.0]))


def test_batched_write_into_an_array_made_inside_vmap_matches_a_loop() -> None:
    def f(v: Any) -> Any:
        xp = array_namespace(v)
        x = xp.zeros(3)
        x[0] = v
        x[1:] = 2.0 * v
        return x

    vs = np.asarray([5.0, 6.0])
    np.testing.assert_allclose(unijax.vmap(f)(vs), np.stack([f(v) for v in vs]))


def test_batched_write_into_a_numpy_array_names_the_fix() -> None:
    def f(v: Any) -> Any:
        x = np.zeros(3)
        x[0] = v  # NumPy asks for float(v), a value that varies across the batch
        return x

    with pytest.raises(ValueError) as info:
        unijax.vmap(f)(np.asarray([5.0, 6.0]))
    cause = info.value.__cause__
    assert isinstance(cause, ConcretizationError)
    assert "array_namespace(value)" in str(cause)
