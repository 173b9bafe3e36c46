"""The torch backend: torch.func behind unijax's transforms, custom rules, jit, dtypes and
conversion, checked against finite differences, JAX, Python loops and eager evaluation."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)  # a float64 reference

from array_api_compat import array_namespace  # noqa: E402

import unijax  # noqa: E402
from unijax import lax, tree_util  # noqa: E402
from unijax.dispatch.plugins import get_backend  # noqa: E402
from unijax.errors import (  # noqa: E402
    ArgnumsError,
    BatchingError,
    ConcretizationError,
    ControlFlowError,
    NonDifferentiableError,
    NonScalarOutputError,
    UnsupportedTransformError,
)
from unijax.testing import check_grads, check_jit, check_vmap  # noqa: E402

backend = get_backend("torch")
xp = backend.namespace
JNP = get_backend("jax").namespace

rng = np.random.default_rng(0)
X = rng.uniform(0.2, 0.9, size=(3, 3))
TIGHT = {"rtol": 1e-9, "atol": 1e-9}


def T(a: Any) -> Any:
    return unijax.asarray(np.asarray(a), backend="torch")


def close(got: Any, want: Any, **tol: float) -> None:
    tree_util.tree_map(lambda g, w: np.testing.assert_allclose(
        np.asarray(unijax.testing.to_numpy(g)), np.asarray(unijax.testing.to_numpy(w)),
        **(tol or TIGHT)), got, want)


@pytest.fixture(autouse=True)
def _torch_selected() -> Any:
    with unijax.use_backend("torch"):
        yield


# --- the backend ------------------------------------------------------------------------------


def test_backend_recognises_tensors_and_reports_devices() -> None:
    import array_api_compat.torch

    assert xp is array_api_compat.torch
    assert backend.owns_type(torch.Tensor)
    assert torch.device("cpu") in backend.devices()
    assert unijax.explain_backend(torch.ones(2)).backend == "torch"


def test_import_unijax_and_plugin_import_no_torch() -> None:
    code = ("import sys, unijax; from unijax.dispatch.plugins import get_backend; "
            "get_backend('torch'); print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == "False"


# --- derivatives against finite differences and JAX -----------------------------------------

CASES: dict[str, Any] = {
    "elementwise": lambda ns, x: ns.sum(ns.sin(x) * ns.exp(x) + ns.pow(x, 3.0)
                                        + ns.atan2(x, 2.0) + ns.log1p(x)),
    "linalg": lambda ns, x: ns.sum(ns.linalg.inv(x @ ns.matrix_transpose(x)
                                                 + 3.0 * ns.eye(3, dtype=x.dtype))),
    "reductions": lambda ns, x: ns.max(x) + ns.mean(ns.tanh(x), axis=0)[1] + ns.prod(x),
    "indexing": lambda ns, x: ns.sum(x[1:, ::2] ** 2) + x[0, 1] * x[2, 2],
}


@pytest.mark.parametrize("case", list(CASES))
def test_grad_matches_finite_differences_and_jax(case: str) -> None:
    fn = CASES[case]
    got = unijax.grad(lambda x: fn(xp, x))(T(X))
    assert type(got) is torch.Tensor and got.dtype == torch.float64
    want = unijax.grad(lambda x: fn(JNP, x), backend="jax")(JNP.asarray(X))
    close(got, want)
    check_grads(lambda x: fn(array_namespace(x), x), (T(X),), order=1, modes=("rev",))


def test_jacobians_and_hessian_match_jax() -> None:
    def f(x: Any, y: Any) -> Any:
        ns = array_namespace(x)
        return {"a": ns.sin(x) * y, "b": ns.sum(x * x * y)}

    x, y = rng.normal(size=3), rng.normal(size=3)
    for name in ("jacfwd", "jacrev"):
        got = getattr(unijax, name)(f, argnums=(0, 1))(T(x), T(y))
        want = getattr(unijax, name)(f, argnums=(0, 1), backend="jax")(JNP.asarray(x),
                                                                       JNP.asarray(y))
        close(got, want)
    h = unijax.hessian(lambda x: array_namespace(x).sum(x ** 3 * x[0]))(T(x))
    want_h = unijax.hessian(lambda x: JNP.sum(x ** 3 * x[0]), backend="jax")(JNP.asarray(x))
    close(h, want_h)


@tree_util.register_dataclass
@dataclasses.dataclass
class Params:
    w: Any
    b: Any


def _loss(p: Params, x: Any) -> Any:
    ns = array_namespace(x)
    return ns.sum(ns.tanh(x @ p.w + p.b) ** 2)


def test_grad_of_registered_dataclass_argnums_and_aux() -> None:
    w, b, x = rng.normal(size=(3, 2)), rng.normal(size=2), rng.normal(size=(4, 3))
    p = Params(T(w), T(b))
    g = unijax.grad(_loss)(p, T(x))
    assert isinstance(g, Params)
    want = unijax.grad(_loss, backend="jax")(Params(JNP.asarray(w), JNP.asarray(b)),
                                             JNP.asarray(x))
    close((g.w, g.b), (want.w, want.b))
    (g_p, gx), aux = unijax.grad(lambda p, x: (_loss(p, x), {"n": x.shape[0], "x2": x * 2}),
                                argnums=(0, 1), has_aux=True)(p, T(x))
    _, want_x = unijax.grad(_loss, argnums=(0, 1), backend="jax")(
        Params(JNP.asarray(w), JNP.asarray(b)), JNP.asarray(x))
    close(gx, want_x)
    assert isinstance(g_p, Params) and aux["n"] == 4 and type(aux["x2"]) is torch.Tensor
    assert not torch._C._functorch.is_functorch_wrapped_tensor(aux["x2"])
    (value, aux2), g2 = unijax.value_and_grad(
        lambda p, x: (_loss(p, x), x.shape), has_aux=True)(p, T(x))
    close(value, _loss(p, T(x)))
    assert aux2 == (4, 3) and isinstance(g2, Params)


def test_jvp_and_vjp_agree_with_jax_over_pytrees() -> None:
    def f(d: Any) -> Any:
        ns = array_namespace(d["x"])
        return (ns.sin(d["x"]) * d["y"], ns.sum(d["x"]))

    x, y, tx, ty = (rng.normal(size=3) for _ in range(4))
    out, t_out = unijax.jvp(f, ({"x": T(x), "y": T(y)},), ({"x": T(tx), "y": T(ty)},))
    want = unijax.jvp(f, ({"x": JNP.asarray(x), "y": JNP.asarray(y)},),
                      ({"x": JNP.asarray(tx), "y": JNP.asarray(ty)},), backend="jax")
    close((out, t_out), want)
    _, pullback = unijax.vjp(f, {"x": T(x), "y": T(y)})
    (ct,) = pullback((T(tx), T(1.5)))
    _, want_pullback = unijax.vjp(f, {"x": JNP.asarray(x), "y": JNP.asarray(y)},
                                  backend="jax")
    close(ct, want_pullback((JNP.asarray(tx), JNP.asarray(1.5)))[0])


def test_misuse_raises_unijax_errors() -> None:
    with pytest.raises(NonScalarOutputError):
        unijax.grad(lambda x: x * 2.0)(T(X))
    with pytest.raises(NonDifferentiableError):
        unijax.grad(lambda x: array_namespace(x).sum(x * 2))(T(np.arange(3)))
    with pytest.raises(ArgnumsError):
        unijax.grad(lambda x, y: array_namespace(x).sum(x), argnums=2)(T(X), T(X))
    with pytest.raises(ConcretizationError):  # torch warns; where warnings are errors
        unijax.grad(lambda x: x[0] * float(array_namespace(x).sum(x)))(T(np.ones(3)))


# --- vmap -------------------------------------------------------------------------------------


def test_vmap_matches_loop_with_none_axes_and_pytrees() -> None:
    def f(row: Any, w: Any, d: Any) -> Any:
        ns = array_namespace(row)
        return {"y": ns.sin(row @ w) + d["s"], "n": ns.sum(w)}

    rows, w, s = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=(2, 4))
    args = (T(rows), T(w), {"s": T(s)})
    check_vmap(f, args, in_axes=(0, None, {"s": 1}), out_axes={"y": 1, "n": None},
               rtol=1e-12, atol=1e-12)
    out = unijax.vmap(f, in_axes=(0, None, {"s": 1}), out_axes={"y": 0, "n": None})(*args)
    assert out["y"].shape == (4, 2) and out["n"].shape == ()


def test_vmap_keywords_axis_size_and_registered_classes() -> None:
    x = T(rng.normal(size=(3, 2)))
    out = unijax.vmap(lambda a, *, scale: a * scale)(x, scale=T(np.arange(3.0)[:, None]))
    close(out, x * T(np.arange(3.0)[:, None]))
    const = unijax.vmap(lambda a: a * 2.0, in_axes=None, axis_size=4)(T(np.ones(2)))
    assert const.shape == (4, 2)
    p = Params(T(rng.normal(size=(5, 3, 2))), T(rng.normal(size=2)))
    got = unijax.vmap(_loss, in_axes=(Params(0, None), None))(p, T(np.ones((4, 3))))
    loop = [_loss(Params(p.w[i], p.b), T(np.ones((4, 3)))) for i in range(5)]
    close(got, torch.stack(loop))


def test_per_example_gradients_match_loop() -> None:
    w, xs = T(rng.normal(size=(3, 2))), T(rng.normal(size=(5, 4, 3)))
    g = unijax.vmap(unijax.grad(lambda p, x: _loss(p, x)), in_axes=(None, 0))(
        Params(w, T(np.zeros(2))), xs)
    for i in range(5):
        close(g.w[i], unijax.grad(_loss)(Params(w, T(np.zeros(2))), xs[i]).w)


@pytest.mark.parametrize(("misuse", "error"), [
    (lambda x: x if array_namespace(x).sum(x) > 0 else -x, ConcretizationError),
    (lambda x: x * x.item() if x.shape == () else x * x[0].item(), ConcretizationError),
    (lambda x: array_namespace(x).sum(x[x > 0.5]), ConcretizationError),
])
def test_vmap_misuse_raises_unijax_errors(misuse: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        unijax.vmap(misuse)(T(rng.uniform(size=(2, 3))))


def test_vmap_out_axes_none_for_batched_output_and_inplace_capture() -> None:
    with pytest.raises(BatchingError):
        unijax.vmap(lambda x: x * 2.0, out_axes=None)(T(np.ones((2, 3))))
    captured = T(np.zeros(3))

    def write(v: Any) -> Any:
        captured[0] = v[0]
        return captured * 1.0

    with pytest.raises(BatchingError):
        unijax.vmap(write)(T(np.ones((2, 3))))


# --- unijax.lax -------------------------------------------------------------------------------


def _branchy(p: Any) -> Any:
    ns = array_namespace(p)
    flipped = lax.cond(ns.sum(p) > 0, lambda q: ns.sin(q) * 2.0, lambda q: q * q, p)
    index = ns.sum(ns.astype(p > 0, ns.int32)) - 1  # -1 and 3 are clamped
    picked = lax.switch(index, [lambda q: q + 1.0, ns.exp, lambda q: ns.cos(q) * q], p)
    return flipped + picked


def test_vmap_of_cond_and_switch_with_batched_predicate_matches_loop() -> None:
    ps = T([[0.4, -0.8, 1.3], [-1.0, -2.0, -0.5], [0.3, 0.2, 0.1], [-0.2, 0.9, -0.4]])
    loop = torch.stack([_branchy(p) for p in ps])  # every example takes another branch
    close(unijax.vmap(_branchy)(ps), loop)
    grads = unijax.vmap(unijax.grad(lambda p: array_namespace(p).sum(_branchy(p))))(ps)
    close(grads, torch.stack([unijax.grad(lambda p: xp.sum(_branchy(p)))(p) for p in ps]))
    with pytest.raises(ControlFlowError):
        unijax.vmap(lambda p: lax.cond(xp.sum(p) > 0, lambda q: q, lambda q: (q, q), p))(ps)


def _halvings(x: Any) -> Any:
    """How often ``x`` halves before it is at most 1, and what is left."""
    return lax.while_loop(lambda c: c[1] > 1.0, lambda c: (c[0] + 1, c[1] / 2.0),
                          (xp.asarray(0), x))


def test_while_loop_under_vmap_runs_each_example_its_own_trip_count() -> None:
    xs = T([0.5, 3.0, 17.0, 1.0, 100.0])
    counts, rests = unijax.vmap(_halvings)(xs)
    assert counts.tolist() == [0, 2, 5, 0, 7]
    loop = [_halvings(x) for x in xs]
    close(rests, torch.stack([r for _, r in loop]))
    nested_counts, _ = unijax.vmap(unijax.vmap(_halvings))(xs.reshape(5, 1) * T([1.0, 4.0]))
    assert nested_counts.tolist() == [[0, 1], [2, 4], [5, 7], [0, 2], [7, 9]]
    bounded = unijax.vmap(lambda n: lax.fori_loop(0, 4, lambda i, acc: acc + n * i, n))
    close(bounded(T([1.0, 2.0])), T([7.0, 14.0]))


def _doubled_past_ten(p: Any) -> Any:
    return xp.sum(lax.while_loop(lambda c: xp.sum(c) < 10.0, lambda c: c * 2.0, p))


def test_forward_mode_through_while_loop_and_reverse_mode_refused() -> None:
    p, t = T([1.0, 2.0]), T([1.0, -0.5])
    value, tangent = unijax.jvp(_doubled_past_ten, (p,), (t,))  # 1 + 2 doubles to 12
    close((value, tangent), (T(12.0), T(2.0)))
    close(unijax.jacfwd(_doubled_past_ten)(p), T([4.0, 4.0]))
    close(unijax.vmap(unijax.jacfwd(_doubled_past_ten))(T([[1.0, 2.0], [3.0, 4.0]])),
          T([[4.0, 4.0], [2.0, 2.0]]))
    for reverse in (unijax.grad(_doubled_past_ten), unijax.jacrev(_doubled_past_ten),
                    unijax.hessian(_doubled_past_ten),
                    lambda q: unijax.vjp(_doubled_past_ten, q),
                    lambda q: unijax.jvp(unijax.grad(_doubled_past_ten), (q,), (q,))):
        with pytest.raises(UnsupportedTransformError):
            reverse(p)
    with pytest.raises(UnsupportedTransformError):
        unijax.vmap(unijax.grad(_doubled_past_ten))(T([[1.0, 2.0], [3.0, 4.0]]))
    # A carry reverse mode does not differentiate is no reason to refuse.
    g = unijax.grad(lambda q: _halvings(xp.asarray(8.0))[1] * xp.sum(q))(p)
    close(g, T([1.0, 1.0]))


def test_jit_while_loop_from_constant_carry_and_empty_scan() -> None:
    def f(p: Any) -> Any:
        ns = array_namespace(p)
        return lax.while_loop(lambda c: c < ns.sum(p), lambda c: c + 1.0, 0.0)

    close(unijax.jit(f)(T([2.0, 3.0])), T(5.0))
    carry, ys = lax.scan(lambda c, x: (c + xp.sum(x), x * 2.0), T(1.0), T(np.zeros((0, 3))))
    close(carry, T(1.0))
    assert ys.shape == (0, 3) and ys.dtype == torch.float64


# --- custom rules and stop_gradient --------------------------------------------------------


@unijax.custom_vjp
def _clip_grad(x: Any, limit: float) -> Any:
    return x


_clip_grad.defvjp(lambda x, limit: (_clip_grad(x, limit), None),
                  lambda limit, res, g: (array_namespace(g).clip(g, -limit, limit),))
_clip = unijax.custom_vjp(_clip_grad.fun, nondiff_argnums=(1,))
_clip.defvjp(lambda x, limit: (x, None),
             lambda limit, res, g: (array_namespace(g).clip(g, -limit, limit),))


@unijax.custom_jvp
def _softplus(x: Any) -> Any:
    ns = array_namespace(x)
    return ns.log1p(ns.exp(x))


@_softplus.defjvp
def _softplus_jvp(primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    return _softplus(x), t / (1.0 + array_namespace(x).exp(-x))


def test_custom_vjp_with_nondiff_argnums_composes_with_torch_func() -> None:
    x = T(np.array([0.5, -2.0, 3.0]))
    g = unijax.grad(lambda x: array_namespace(x).sum(5.0 * _clip(x, 1.0)))(x)
    close(g, np.ones(3))
    # torch.func's own transforms see the rule too (it is a torch.autograd.Function).
    g_native = torch.func.vmap(torch.func.grad(lambda v: 5.0 * _clip(v, 2.0).sum()))(
        x.reshape(3, 1))
    close(g_native, np.full((3, 1), 2.0))


def test_custom_jvp_forward_reverse_and_second_order_match_jax() -> None:
    x = rng.normal(size=3)
    f = lambda v: array_namespace(v).sum(_softplus(v))  # noqa: E731
    close(unijax.grad(f)(T(x)), 1.0 / (1.0 + np.exp(-x)))
    _, t_out = unijax.jvp(_softplus, (T(x),), (T(np.ones(3)),))
    close(t_out, 1.0 / (1.0 + np.exp(-x)))
    h = unijax.hessian(f)(T(x))
    sig = 1.0 / (1.0 + np.exp(-x))
    close(h, np.diag(sig * (1.0 - sig)))


def test_stop_gradient_is_detach() -> None:
    g = unijax.grad(lambda x: array_namespace(x).sum(x * unijax.stop_gradient(x)))(T(X))
    close(g, X)


# --- jit --------------------------------------------------------------------------------------


def test_jit_matches_eager_and_caches_per_signature() -> None:
    traces: list[int] = []

    def f(x: Any, n: int) -> Any:
        traces.append(1)
        ns = array_namespace(x)
        return ns.sum(ns.sin(x) ** n, axis=0)

    check_jit(lambda x: f(x, 2), (T(X),), rtol=1e-12, atol=1e-12)
    traces.clear()
    jitted = unijax.jit(f, static_argnums=1)
    for n, shape, expected in [(2, (3, 3), 1), (2, (3, 3), 1), (3, (3, 3), 2), (2, (4, 3), 3)]:
        x = T(rng.normal(size=shape))
        out = jitted(x, n)
        assert type(out) is torch.Tensor
        close(out, np.sum(np.sin(unijax.testing.to_numpy(x)) ** n, axis=0))
        assert len(traces) == expected
    info = jitted.cache_info()["torch"]
    assert (info.hits, info.misses) == (1, 3)


def test_jit_of_grad_and_grad_of_jit_match_eager() -> None:
    f = CASES["elementwise"]
    g = unijax.grad(lambda x: f(array_namespace(x), x))
    want = g(T(X))
    close(unijax.jit(g)(T(X)), want)
    close(unijax.jit(g)(T(X)), want)
    inner = unijax.jit(lambda x: f(array_namespace(x), x))
    close(unijax.grad(inner)(T(X)), want)
    close(unijax.grad(inner)(T(X)), want)  # a cached program under torch.func.grad


def test_jit_concretization_error() -> None:
    with pytest.raises(ConcretizationError):
        unijax.jit(lambda x: x if array_namespace(x).sum(x) > 0 else -x)(T(X))


def test_torch_compile_tier_matches_generated_python(monkeypatch: pytest.MonkeyPatch) -> None:
    from unijax_torch import compiler

    if compiler.inductor_problem():
        pytest.skip(f"torch.compile cannot run here: {compiler.inductor_problem()}")
    monkeypatch.setenv("UNIJAX_TORCH_COMPILE", "always")
    before = compiler._counts["compiled"]
    fn = unijax.jit(lambda x: array_namespace(x).sum(array_namespace(x).exp(-x * x) * 0.5))
    x = T(X)
    results = [fn(x) for _ in range(3)]
    close(results, [xp.sum(xp.exp(-x * x) * 0.5)] * 3, rtol=1e-12, atol=1e-12)
    assert compiler._counts["compiled"] == before + 1, compiler.status()
    assert "torch.compile" in compiler.status()


# --- dtypes and conversion --------------------------------------------------------------------


def test_dtype_policy_follows_unijax() -> None:
    assert unijax.grad(lambda v: v * v)(3.0).dtype == torch.float64
    assert unijax.asarray([1.0]).dtype == torch.float64
    # torch's own creation functions follow torch's default, which unijax leaves alone.
    assert xp.asarray(1.0).dtype == torch.get_default_dtype() == torch.float32
    x32 = T(np.ones(3, dtype=np.float32))
    assert unijax.grad(lambda v: array_namespace(v).sum(v * 2.0))(x32).dtype == torch.float32
    with unijax.use_default_float_dtype("float32"):
        assert unijax.grad(lambda v: v * v)(3.0).dtype == torch.float32
        assert unijax.asarray([1.0, 2.0]).dtype == torch.float32


def test_numpy_to_torch_and_back_share_memory() -> None:
    a = np.arange(4.0)
    t = unijax.asarray(a, backend="torch")
    a[0] = 42.0
    assert float(t[0]) == 42.0  # no copy on the CPU
    back = unijax.to_backend(t, "numpy")
    t[1] = -1.0
    assert back[1] == -1.0
    j = unijax.to_backend({"t": t}, "jax")["t"]
    assert str(j.dtype) == "float64" and float(j[0]) == 42.0
