"""The CuPy backend: the fusing compiler, the plugin contract and device transfers.

Everything that needs no GPU runs here on the CPU. Kernel generation is pure string work
on the IR, so programs are staged with NumPy and compiled with ``compile_cupy``; the CUDA
C it writes is then *executed* by ``cuda_emulator`` (a NumPy evaluator of the same
strings, following C's typing rules), which proves that the fusion plan and every
template compute the eager values. That the same strings are valid CUDA is proven by
``test_cuda_compile.py`` (NVRTC and ptxas, no GPU). Tests marked ``gpu`` run the same
programs through real CuPy kernels and are skipped, with the reason, where CuPy or a CUDA
device is missing; CuPy installed without a device makes the backend unavailable.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any

import array_api_compat.numpy as xnp
import numpy as np
import pytest
from array_api_compat import array_namespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cuda_emulator as emu
from unijax_cupy.kernels import TEMPLATES, compile_cupy, generate

import unijax
from unijax import tree_util
from unijax.engine.namespace import array_functions as ops
from unijax.engine.optimize import optimize
from unijax.engine.staging import stage

HAS_CUPY = importlib.util.find_spec("cupy") is not None


def _cuda_devices() -> int:
    """How many CUDA devices CuPy sees (0 without CuPy, a driver or a device)."""
    if not HAS_CUPY:
        return 0
    import cupy

    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no driver, or no device
        return 0


HAS_DEVICE = _cuda_devices() > 0


def staged(fun: Any, *args: Any, optimized: bool = True) -> Any:
    program, _ = stage(lambda xs: list(tree_util.tree_leaves(fun(*xs))), list(args))
    return optimize(program) if optimized else program


def emulated(fun: Any, *args: Any, optimized: bool = True) -> tuple[Any, list[Any]]:
    """``fun`` compiled for CuPy, run on NumPy with emulated kernels: (compiled, outputs)."""
    compiled = compile_cupy(staged(fun, *args, optimized=optimized), xnp,
                            make_kernel=emu.make_kernel)
    return compiled, compiled(*args)


def assert_same(got: Any, want: Any, **tol: Any) -> None:
    for g, w in zip(got, tree_util.tree_leaves(want), strict=True):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape
        if tol:
            np.testing.assert_allclose(g, w, **tol)
        else:
            np.testing.assert_array_equal(g, w)  # NaNs compare equal here
            if g.dtype.kind == "f":  # and so do 0.0 and -0.0, unless asked
                numbers = ~np.isnan(w)
                np.testing.assert_array_equal(np.signbit(g[numbers]), np.signbit(w[numbers]))


def workload(x: Any) -> Any:
    xp = array_namespace(x)
    return xp.sum(xp.exp(-x * x) * xp.sin(x) + 0.5 * x)


def mlp_loss(params: Any, x: Any, y: Any) -> Any:
    w1, b1, w2, b2 = params
    xp = array_namespace(x)
    h = xp.tanh(x @ w1 + b1)
    logits = h @ w2 + b2
    m = xp.max(logits, axis=1, keepdims=True)
    lse = xp.log(xp.sum(xp.exp(logits - m), axis=1, keepdims=True)) + m
    return -xp.mean(xp.sum((logits - lse) * y, axis=1))


def mlp_data(xp: Any = np, d: int = 16, h: int = 32, c: int = 10, b: int = 8) -> tuple:
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(d, h)) * 0.1, np.zeros(h), rng.normal(size=(h, c)) * 0.1,
              np.zeros(c)]
    x, y = rng.normal(size=(b, d)), np.eye(c)[rng.integers(0, c, b)]
    return tuple(tree_util.tree_map(xp.asarray, (params, x, y)))


# --- fusion plans and kernel sources ---------------------------------------------------------


def test_elementwise_chain_and_sum_become_one_reduction_kernel():
    x = np.linspace(0.0, 2.0, 64, dtype=np.float32)
    compiled, out = emulated(workload, x)
    assert_same(out, [workload(x)], rtol=1e-6)
    (spec,) = compiled.kernel_specs
    assert spec.kind == "reduction" and len(spec.fused.members) == 7
    assert spec.in_params == "float32 v_a"
    assert (spec.reduce_expr, spec.identity, spec.reduce_type) == ("(a + b)", "0.0f", "float")
    for piece in ("exp(", "sin(", "(0.5f * v_a)", "return v_h;"):
        assert piece in spec.preamble
    assert compiled.source.count("_k") == 1 and "xp." not in compiled.source


def test_grad_is_one_elementwise_kernel_with_the_uniform_constant_inlined():
    x = np.linspace(0.0, 2.0, 64, dtype=np.float32)
    grad = unijax.grad(workload)
    compiled, out = emulated(grad, x)
    assert_same(out, [grad(x)], rtol=1e-6)
    (name, source), = compiled.kernels
    assert re.fullmatch(r"unijax_fused_\d+", name)
    spec = compiled.kernel_specs[0]
    assert (spec.in_params, spec.out_params) == ("float32 v_a", "float32 o_n")
    assert "(0.5f + v_g)" in source and "cos(v_a)" in source
    assert not compiled.program.constants.keys() & set(spec.arguments)


def test_float64_literals_are_double_and_float32_literals_are_suffixed():
    for dtype, literal in ((np.float64, "(0.5 * v_a)"), (np.float32, "(0.5f * v_a)")):
        _, specs, _ = generate(staged(workload, np.ones(4, dtype)))
        assert literal in specs[0].preamble


def test_kernels_take_external_inputs_and_write_only_values_used_elsewhere():
    def f(x, y, w):
        a = ops.sin(x) * y          # a program output
        b = ops.exp(a) + 1.0        # used by matmul only
        c = ops.tanh(b) * 2.0       # internal
        return a, ops.matmul(b, w), c - a
    args = (np.linspace(0, 1, 12).reshape(3, 4), np.full((3, 4), 0.5), np.ones((4, 2)))
    compiled, out = emulated(f, *args)
    assert_same(out, f(*args), rtol=1e-12)
    (spec,) = compiled.kernel_specs
    assert spec.in_params == "float64 v_a, float64 v_b"
    assert spec.out_params.split(", ")[:2] == ["float64 o_e", "float64 o_g"]
    assert "o_h" not in spec.out_params  # tanh(b) * 2 stays a local


def test_a_path_through_an_unfused_operation_splits_the_region():
    def softmax(x):
        e = ops.exp(x - ops.max(x, axis=1, keepdims=True))
        return e / ops.sum(e, axis=1, keepdims=True)
    x = np.linspace(-3, 3, 24).reshape(4, 6)
    compiled, out = emulated(softmax, x)
    assert_same(out, [softmax(x)], rtol=1e-12)
    lines = compiled.source.splitlines()
    assert any("xp.max(a" in line for line in lines)  # max reads x itself: not fused
    kernels = [s.fused for s in compiled.kernel_specs]
    assert all(not ({e.primitive.name for e in k.members} >= {"subtract", "divide"})
               for k in kernels)


def test_a_smaller_broadcast_producer_is_folded_into_its_consumer():
    def f(x, v):
        scale = ops.exp(v) * 2.0 + 1.0      # shape (4, 1), used only below
        return ops.sin(x) * scale - x
    args = (np.linspace(0, 1, 12).reshape(4, 3), np.linspace(0, 1, 4).reshape(4, 1))
    compiled, out = emulated(f, *args)
    assert_same(out, [f(*args)], rtol=1e-12)
    (spec,) = compiled.kernel_specs
    assert {e.outputs[0].shape for e in spec.fused.members} == {(4, 1), (4, 3)}
    assert spec.fused.shape == (4, 3)


@pytest.mark.parametrize("name", ["sum", "prod", "max", "min", "mean"])
@pytest.mark.parametrize("axis", [None, 0, 2, (0, 2), (1, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_of_a_fused_region(name, axis, keepdims):
    def f(x, y):
        return getattr(ops, name)(ops.sin(x) * y + 0.25, axis=axis, keepdims=keepdims)
    x = np.linspace(-1, 1, 24).reshape(2, 3, 4)
    y = np.linspace(0.5, 1.5, 4)
    compiled, out = emulated(f, x, y)
    assert_same(out, [f(x, y)], rtol=1e-12)
    assert [s.kind for s in compiled.kernel_specs] == ["reduction"]


def test_max_reduction_propagates_nan_and_float32_accumulates_in_float():
    def f(x):
        return ops.max(x * 2.0, axis=0), ops.sum(x * 3.0, axis=1)
    x = np.array([[1.0, np.nan, -np.inf], [3.0, 2.0, -1.0]], dtype=np.float32)
    compiled, out = emulated(f, x)
    assert_same(out, f(x))
    assert {s.reduce_type for s in compiled.kernel_specs} == {"float"}


def test_a_reduced_value_that_is_also_used_elsewhere_is_written_not_recomputed():
    def f(x):
        y = ops.exp(x) * 2.0
        return ops.sum(y), y
    x = np.linspace(0, 1, 8)
    compiled, out = emulated(f, x)
    assert_same(out, f(x), rtol=1e-12)
    assert [s.kind for s in compiled.kernel_specs] == ["elementwise"]
    assert "xp.sum(" in compiled.source


def test_outputs_are_allocated_when_arguments_do_not_span_the_index_space():
    def f(t):
        return ops.broadcast_to(t * 2.0, (3, 4)) + 1.0
    t = np.arange(3.0).reshape(3, 1)
    compiled, out = emulated(f, t)
    assert_same(out, [f(t)])
    assert "xp.empty((3, 4)" in compiled.source


def test_weak_python_scalars_keep_the_array_dtype():
    def f(x, s, n):
        return ops.exp(x * s) + n, ops.less(x, s)
    x = np.linspace(0, 1, 5, dtype=np.float32)
    compiled, out = emulated(f, x, 0.1, 3)
    assert_same(out, f(x, 0.1, 3))
    assert "float64 v_b, int64 v_c" in compiled.kernel_specs[0].in_params
    assert "((float)v_b)" in compiled.kernel_specs[0].operation


def test_float16_computes_in_float_and_rounds_every_step():
    def f(x):
        return ops.exp(x) * 0.5 + ops.sin(x)
    x = np.linspace(-2, 2, 33, dtype=np.float16)
    compiled, out = emulated(f, x)
    assert_same(out, [f(x)])
    assert "float16 v_b = (float16)(exp(((float)v_a)));" in compiled.kernel_specs[0].operation


def test_inputs_constants_and_literals_as_outputs():
    c = np.arange(3.0)

    def f(x):
        return x, c, ops.sin(x) * c + 1.0
    x = np.ones(3)
    compiled, out = emulated(f, x)
    assert_same(out, f(x))
    out[1][0] = 99.0  # the program's constant must not be handed out
    assert compiled(x)[1][0] == 0.0


def test_a_kernel_the_cuda_compiler_rejects_runs_unfused_with_a_warning():
    class CompileException(Exception):
        pass

    def broken(spec):
        def kernel(*args, **kwargs):
            raise CompileException("nvrtc: error")
        return kernel
    x = np.linspace(0, 1, 8)
    compiled = compile_cupy(staged(workload, x), xnp, make_kernel=broken)
    with pytest.warns(RuntimeWarning, match="unijax_reduce_0"):
        assert_same(compiled(x), [workload(x)], rtol=1e-12)
    assert_same(compiled(x), [workload(x)], rtol=1e-12)


@pytest.mark.parametrize("fun,args", [
    (unijax.grad(mlp_loss), mlp_data()),
    (mlp_loss, mlp_data()),
    (unijax.vmap(unijax.grad(workload)), (np.linspace(0, 1, 12).reshape(3, 4),)),
    (unijax.jacfwd(lambda x: ops.tanh(x) * ops.sum(x * x)), (np.linspace(0, 1, 5),)),
])
def test_transformed_programs_compute_the_eager_values(fun, args):
    leaves = tree_util.tree_leaves(args)
    program, _ = stage(lambda xs: tree_util.tree_leaves(
        fun(*tree_util.tree_unflatten(tree_util.tree_structure(args), xs))), leaves)
    compiled = compile_cupy(optimize(program), xnp, make_kernel=emu.make_kernel)
    assert_same(compiled(*leaves), fun(*args), rtol=1e-10, atol=1e-12)
    assert compiled.kernels


def test_generating_kernels_imports_no_cupy():
    out = run_python("""
        import sys, numpy as np
        import array_api_compat.numpy as xp
        from unijax.engine.jit import make_ir
        from unijax_cupy.kernels import compile_cupy
        def f(x):
            xp = x.__array_namespace__()
            return xp.sum(xp.exp(-x * x) + 0.5 * x)
        compiled = compile_cupy(make_ir(f)(np.ones(3)), xp)
        print(len(compiled.kernels), "cupy" in sys.modules)
    """)
    assert out.split() == ["1", "False"]


# --- the template table, executed ------------------------------------------------------------

_VALUES = {
    "f": [-np.inf, -2.5, -1.0, -0.5, -0.0, 0.0, 0.25, 1.0, 3.0, np.inf, np.nan],
    "i": [-128, -7, -1, 0, 1, 2, 5, 127],
    "u": [0, 1, 2, 7, 200, 255],
    "b": [False, True],
}
_DTYPES = {"f": [np.float32, np.float64], "i": [np.int8, np.int32, np.int64],
           "u": [np.uint8, np.uint32], "b": [np.bool_]}
_SPECIAL = {"broadcast_to", "stop_gradient", "where", "reciprocal"}


def _template_cases() -> list[Any]:
    cases = []
    for name, (typing, by_kind) in sorted(TEMPLATES.items()):
        if name in _SPECIAL or not hasattr(ops, name):
            continue
        kinds = "b" if typing == "logical" else "".join(by_kind)
        for kind in kinds:
            cases += [pytest.param(name, dt, id=f"{name}-{np.dtype(dt).name}")
                      for dt in _DTYPES[kind]]
    return cases


def template_args(name: str, dtype: Any) -> tuple[Any, ...]:
    values = np.asarray(_VALUES[np.dtype(dtype).kind.replace("i", "i")
                                if np.dtype(dtype).kind != "?" else "b"]).astype(dtype)
    arity = 2 if "{1}" in next(iter(TEMPLATES[name][1].values())) else 1
    x = values[:, None] if arity == 2 else values
    args = (x, values[None, :])[:arity]
    mask = np.resize([True, False, True], np.broadcast_shapes(*(a.shape for a in args)))
    return (*args, mask)


@pytest.mark.parametrize("name,dtype", _template_cases())
def test_template_matches_the_eager_function(name, dtype):
    op = getattr(ops, name)

    def f(*args):
        *xs, mask = args
        r = op(*xs)
        return (ops.where(mask, r, r),)
    args = template_args(name, dtype)
    with np.errstate(all="ignore"):
        want = f(*args)
        compiled, got = emulated(f, *args, optimized=False)
    assert_same(got, want)
    assert len(compiled.kernels) == 1, compiled.source


@pytest.mark.parametrize("src", [np.bool_, np.int8, np.int32, np.uint8, np.float16,
                                 np.float32, np.float64])
@pytest.mark.parametrize("dst", [np.bool_, np.int16, np.int64, np.uint16, np.float16,
                                 np.float32, np.float64])
def test_astype_matches_eager(src, dst):
    x = np.asarray([0, 1, 3, 7, 100], dtype=src)

    def f(x):
        return ops.astype(x, dst) * ops.astype(x, dst)
    with np.errstate(all="ignore"):
        _, got = emulated(f, x)
        assert_same(got, [f(x)])


def test_special_float_literals():
    def f(x):
        return (ops.maximum(x, -np.inf) + ops.minimum(x, np.inf) * -0.0,
                ops.where(ops.isnan(x), np.nan, x) * 1.5)
    x = np.asarray([np.nan, -1.0, 0.0, np.inf], dtype=np.float32)
    with np.errstate(all="ignore"):
        compiled, got = emulated(f, x)
        assert_same(got, f(x))
    text = "".join(source for _, source in compiled.kernels)
    assert "__int_as_float(0x7f800000)" in text and "__int_as_float(0x7fc00000)" in text


# --- the plugin contract ---------------------------------------------------------------------


def run_python(code: str, *, path: str | None = None) -> str:
    """Run ``code`` in a fresh interpreter (``path`` first on ``sys.path``); its stdout."""
    prelude = f"import sys; sys.path.insert(0, {path!r})\n" if path else ""
    result = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_entry_point_names_the_plugin_module():
    (ep,) = [ep for ep in metadata.entry_points(group="unijax.backends") if ep.name == "cupy"]
    assert ep.value == "unijax_cupy"


def test_backend_declares_engine_transforms_a_compiler_and_gpu_devices():
    from unijax.dispatch.plugins import get_backend

    backend = get_backend("cupy", require_available=False)
    assert backend.array_modules == ("cupy",)
    caps = backend.capabilities
    assert caps.native == frozenset() and caps.compiler and caps.mutable_arrays
    assert backend.compiler is not None and backend.install_hint == 'pip install cupy-cuda12x'
    assert backend.extras["default_device_kind"]() == "gpu"
    assert backend.extras["parse_device"]("cpu") == "cpu"  # not a GPU name: unchanged


def test_import_and_plugin_load_import_no_cupy_and_no_numpy():
    out = run_python("""
        import sys, unijax
        before = "cupy" in sys.modules
        from unijax.dispatch.plugins import get_backend
        backend = get_backend("cupy", require_available=False)
        print(before, "cupy" in sys.modules, "numpy" in sys.modules, backend.available)
    """)
    before, after, numpy_loaded, available = out.split()
    assert (before, after, numpy_loaded) == ("False", "False", "False")
    assert available == str(HAS_CUPY and HAS_DEVICE)  # installed is not enough: usable


def test_missing_cupy_is_unavailable_with_the_install_hint(clean_plugins, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec  # CuPy may be installed: hide it from this test
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "cupy"
                        else find_spec(name, *rest))
    from unijax.dispatch.plugins import get_backend, list_backends
    from unijax.errors import BackendUnavailableError

    info = {p.name: p for p in list_backends()}["cupy"]
    assert info.backend is not None and not info.available
    with pytest.raises(BackendUnavailableError, match=re.escape('pip install cupy-cuda12x')):
        get_backend("cupy")
    with pytest.raises(BackendUnavailableError, match="'cupy' needs cupy"):
        unijax.jit(lambda x: x * 2.0, backend="cupy")(np.ones(3))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux probe")
def test_usable_needs_the_driver_library_and_a_device_node(monkeypatch):
    import ctypes
    import glob

    import unijax_cupy

    def no_driver(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_driver)
    assert "no CUDA driver" in unijax_cupy._unusable()
    monkeypatch.setattr(ctypes, "CDLL", lambda name: object())
    monkeypatch.setattr(glob, "glob", lambda pattern: [])
    monkeypatch.setattr("os.path.exists", lambda path: False)
    assert unijax_cupy._unusable() == "no CUDA device"
    monkeypatch.setattr(glob, "glob", lambda pattern: ["/dev/nvidia0"])
    assert unijax_cupy._unusable() is None


@pytest.mark.skipif(not HAS_CUPY or HAS_DEVICE, reason="needs CuPy installed and no device")
def test_installed_cupy_without_a_device_is_unavailable_with_the_reason(capsys):
    from unijax.cli.info import main as info_main
    from unijax.dispatch.plugins import get_backend, list_backends
    from unijax.errors import BackendUnavailableError

    info = {p.name: p for p in list_backends()}["cupy"]
    assert info.backend is not None and not info.available
    reason = info.backend.unusable
    assert reason is not None and ("no CUDA device" in reason or "no CUDA driver" in reason)
    with pytest.raises(BackendUnavailableError, match="installed but cannot compute here"):
        get_backend("cupy")
    with pytest.raises(BackendUnavailableError, match=re.escape(reason)):
        unijax.jit(lambda x: x * 2.0, backend="cupy")(np.ones(3))
    info_main(["--plain"])
    assert f"  cupy: unavailable: {reason}" in capsys.readouterr().out
    from unijax.testing import check_backends

    report = check_backends(lambda x: ops.sum(x * x), np.ones(3), backends=["numpy", "cupy"])
    assert reason in report.skipped["cupy"] and not any(r.backend == "cupy"
                                                        for r in report.rows)


@pytest.mark.skipif(not HAS_CUPY or HAS_DEVICE, reason="needs CuPy installed and no device")
def test_check_runs_the_offline_check_of_a_backend_that_cannot_compute(monkeypatch, capsys):
    from unijax.cli import check
    from unijax.dispatch.plugins import get_backend

    backend = get_backend("cupy", require_available=False)
    calls = []
    monkeypatch.setitem(backend.extras, "offline_check", lambda: calls.append(1) or 0)
    assert check._offline_checks(["cupy"]) == 0 and calls == [1]
    assert "cupy: cannot compute here" in capsys.readouterr().out
    monkeypatch.setitem(backend.extras, "offline_check", lambda: 1)
    assert check._offline_checks([]) == 1  # every installed backend by default
    assert check._offline_checks(["numpy"]) == 0  # cupy not asked for


# Stands for CuPy: unijax recognises arrays by their type's module alone.
FAKE_CUPY = """
class ndarray:
    def __init__(self, shape):
        self.shape, self.dtype = shape, "float64"

ndarray.__module__ = "cupy"
"""


def test_a_numpy_array_meeting_a_cupy_array_is_a_device_transfer_error(tmp_path):
    (tmp_path / "cupy").mkdir()
    (tmp_path / "cupy" / "__init__.py").write_text(FAKE_CUPY)
    out = run_python("""
        import numpy as np, cupy, unijax, unijax_cupy
        from unijax.errors import DeviceTransferError
        unijax_cupy._unusable = lambda: None  # the fake stands for a CuPy with a GPU
        try:
            unijax.grad(lambda x, y: (x * y).sum())(cupy.ndarray((3,)), np.ones(3))
        except DeviceTransferError as err:
            print(err)
    """, path=str(tmp_path))
    assert "numpy array on cpu" in out and "'cupy' computes on gpu" in out
    assert "unijax.to_backend(x, 'cupy')" in out


# --- on the GPU ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cp() -> Any:
    if not HAS_CUPY:
        pytest.skip("CuPy is not installed")
    if not HAS_DEVICE:
        pytest.skip("no CUDA device")
    import cupy

    return cupy


def jit_twice(fun: Any, *args: Any) -> Any:
    """The second call of ``unijax.jit(fun)``: the first one only stages."""
    jitted = unijax.jit(fun)
    jitted(*args)
    return jitted(*args)


def host(tree: Any) -> list[Any]:
    return [np.asarray(leaf.get()) if hasattr(leaf, "get") else np.asarray(leaf)
            for leaf in tree_util.tree_leaves(tree)]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gpu_fused_kernels_match_eager(cp, dtype):
    x = cp.linspace(0.0, 2.0, 100_003, dtype=dtype)
    tol = {"rtol": 1e-5} if dtype == "float32" else {"rtol": 1e-12}
    cases = [(workload, x), (unijax.grad(workload), x),
             (unijax.vmap(unijax.grad(workload)), x.reshape(-1, 1))]
    for fun, arg in cases:
        for g, w in zip(host(jit_twice(fun, arg)), host(fun(arg)), strict=True):
            np.testing.assert_allclose(g, w, **tol)


@pytest.mark.gpu
def test_gpu_kernels_are_cupy_kernels_and_sources_are_inspectable(cp):
    x = cp.linspace(0.0, 2.0, 1000)
    jitted = unijax.jit(unijax.grad(workload))
    jitted(x)
    jitted(x)
    (compiled, _), = jitted._jit_state._engine_jits["cupy"]._cache.values()
    kernels = [v for k, v in compiled.__globals__.items() if k.startswith("_k")]
    assert [type(k).__name__ for k in kernels] == ["ElementwiseKernel"]
    assert "cos(v_a)" in compiled.kernels[0][1]


@pytest.mark.gpu
@pytest.mark.parametrize("name,dtype", _template_cases())
def test_gpu_template_matches_cupy_eager(cp, name, dtype):
    op = getattr(ops, name)

    def f(*args):
        *xs, mask = args
        r = op(*xs)
        return ops.where(mask, r, r)
    args = tuple(cp.asarray(a) for a in template_args(name, dtype))
    got, want = host(jit_twice(f, *args)), host(f(*args))
    for g, w in zip(got, want, strict=True):
        if np.dtype(dtype).kind == "f":
            np.testing.assert_allclose(g, w, rtol=2e-7 if dtype == np.float64 else 1e-6)
        else:
            np.testing.assert_array_equal(g, w)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["sum", "prod", "max", "min", "mean"])
@pytest.mark.parametrize("axis", [None, 0, (1, 2)])
def test_gpu_reductions_match_eager(cp, name, axis):
    def f(x, y):
        return getattr(ops, name)(ops.sin(x) * y + 0.25, axis=axis, keepdims=axis == 0)
    x = cp.linspace(-1, 1, 4 * 50 * 30).reshape(4, 50, 30)
    y = cp.linspace(0.5, 1.5, 30)
    np.testing.assert_allclose(host(jit_twice(f, x, y))[0], host(f(x, y))[0], rtol=1e-10)


@pytest.mark.gpu
def test_gpu_grad_matches_finite_differences(cp):
    x = cp.linspace(0.1, 1.9, 7)
    g = host(jit_twice(unijax.grad(workload), x))[0]
    eps = 1e-6
    fd = [(float(workload(x + eps * e)) - float(workload(x - eps * e))) / (2 * eps)
          for e in cp.eye(7)]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.gpu
def test_gpu_vmap_matches_a_loop_and_jit_grad_mlp_matches_numpy(cp):
    xs = cp.linspace(0.0, 1.0, 15).reshape(3, 5)
    got = host(jit_twice(unijax.vmap(unijax.grad(workload)), xs))[0]
    loop = np.stack([host(unijax.grad(workload)(x))[0] for x in xs])
    np.testing.assert_allclose(got, loop, rtol=1e-12)
    gpu = host(jit_twice(unijax.grad(mlp_loss), *mlp_data(cp)))
    cpu = host(unijax.grad(mlp_loss)(*mlp_data(np)))
    for g, c in zip(gpu, cpu, strict=True):
        np.testing.assert_allclose(g, c, rtol=1e-10, atol=1e-12)


@pytest.mark.gpu
def test_gpu_devices_and_explicit_transfers_with_numpy(cp):
    from unijax.dispatch.plugins import get_backend

    assert get_backend("cupy").devices()[0] == "gpu:0"
    x = np.arange(4.0)
    on_gpu = unijax.to_backend(x, "cupy", device="gpu:0")
    assert type(on_gpu).__module__.startswith("cupy") and on_gpu.device.id == 0
    np.testing.assert_array_equal(unijax.to_backend(on_gpu, "numpy"), x)


@pytest.mark.gpu
def test_gpu_transfers_with_jax_stay_on_the_device(cp):
    jax = pytest.importorskip("jax")
    if jax.default_backend() != "gpu":
        pytest.skip("JAX has no GPU here")
    x = cp.arange(4.0)
    j = unijax.to_backend(x, "jax")  # DLPack, on the device; a copy (JAX arrays are immutable)
    assert next(iter(j.devices())).platform == "gpu"
    x[0] = 7.0
    assert float(j[0]) == 0.0
    back = unijax.to_backend(j, "cupy")
    np.testing.assert_array_equal(back.get(), [0.0, 1.0, 2.0, 3.0])


@pytest.mark.gpu
def test_gpu_implicit_host_to_device_copy_is_refused(cp):
    from unijax.errors import DeviceTransferError

    with pytest.raises(DeviceTransferError, match=re.escape("unijax.to_backend(x, 'cupy')")):
        unijax.grad(lambda x, y: (x * y).sum())(cp.ones(3), np.ones(3))


def _softmax(x):
    e = ops.exp(x - ops.max(x, axis=1, keepdims=True))
    return e / ops.sum(e, axis=1, keepdims=True)


GPU_CASES: dict[str, tuple[Any, Any]] = {
    "softmax": (_softmax, lambda: (np.linspace(-3, 3, 24).reshape(4, 6),)),
    "broadcast-producer": (lambda x, v: ops.sin(x) * (ops.exp(v) * 2.0 + 1.0) - x,
                           lambda: (np.linspace(0, 1, 12).reshape(4, 3),
                                    np.linspace(0, 1, 4).reshape(4, 1))),
    "allocated-outputs": (lambda t: ops.broadcast_to(t * 2.0, (3, 4)) + 1.0,
                          lambda: (np.arange(3.0).reshape(3, 1),)),
    "several-outputs": (lambda x, w: (ops.sin(x) * 2.0, ops.matmul(ops.exp(x) + 1.0, w)),
                        lambda: (np.linspace(0, 1, 12).reshape(3, 4), np.ones((4, 2)))),
    "special-literals": (lambda x: (ops.maximum(x, -np.inf) + ops.minimum(x, np.inf) * -0.0,
                                    ops.where(ops.isnan(x), np.nan, x) * 1.5),
                         lambda: (np.asarray([np.nan, -1.0, 0.0, np.inf], np.float32),)),
    "float16": (lambda x: ops.exp(x) * 0.5 + ops.sin(x),
                lambda: (np.linspace(-2, 2, 33, dtype=np.float16),)),
    "weak-scalars": (lambda x, s, n: (ops.exp(x * s) + n, ops.less(x, s)),
                     lambda: (np.linspace(0, 1, 5, dtype=np.float32), 0.1, 3)),
    "int8-wraps": (lambda x: ops.abs(-x) + x * 3 - ops.maximum(x, 5),
                   lambda: (np.asarray([-128, -7, 0, 5, 127], np.int8),)),
    "bool-logic": (lambda a, b: ops.logical_xor(ops.logical_and(a, b), ops.logical_not(b)),
                   lambda: (np.asarray([True, False, True]), np.asarray([True, True, False]))),
}


@pytest.mark.gpu
@pytest.mark.parametrize("case", sorted(GPU_CASES))
def test_gpu_plans_match_cupy_eager(cp, case):
    fun, make_args = GPU_CASES[case]
    args = tuple(cp.asarray(a) if isinstance(a, np.ndarray) else a for a in make_args())
    for g, w in zip(host(jit_twice(fun, *args)), host(fun(*args)), strict=True):
        assert g.dtype == w.dtype
        if g.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=1e-3 if g.dtype == np.float16 else 1e-6)
        else:
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("case", sorted(GPU_CASES))
def test_the_gpu_cases_emulated(case):
    fun, make_args = GPU_CASES[case]
    args = make_args()
    with np.errstate(all="ignore"):
        compiled, got = emulated(fun, *args)
        assert_same(got, fun(*args))
    assert compiled.kernels


@pytest.mark.gpu
@pytest.mark.parametrize("src", ["bool", "int8", "uint8", "float16", "float32", "float64"])
@pytest.mark.parametrize("dst", ["bool", "int16", "uint16", "float16", "float32", "float64"])
def test_gpu_astype_matches_cupy_eager(cp, src, dst):
    def f(x):
        return ops.astype(x, getattr(np, dst)) + ops.astype(x, getattr(np, dst))
    x = cp.asarray([0, 1, 3, 7, 100], dtype=src)
    np.testing.assert_array_equal(host(jit_twice(f, x))[0], host(f(x))[0])
