"""Every kernel the CuPy generator can emit is valid CUDA: NVRTC and ptxas, no GPU needed.

The NumPy evaluator (``cuda_emulator``, in ``test_cupy.py``) checks what the kernels
compute; this profile proves they compile for real GPUs. Each kernel becomes the CUDA C
CuPy itself writes for it, compiled by NVRTC with CuPy's options to PTX for ``sm_80`` and
``sm_90`` and assembled by ``ptxas``. Skipped, with the reason, where CuPy or the CUDA
compilers (unijax's ``cuda-compile`` extra) are missing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import unijax

pytestmark = pytest.mark.cuda_compile

compile_check = pytest.importorskip("unijax_cupy.compile_check")
kernels = pytest.importorskip("unijax_cupy.kernels")


@pytest.fixture(scope="module")
def toolchain() -> Any:
    found = compile_check.find_toolchain()
    if isinstance(found, str):
        pytest.skip(found)
    return found


def _bench_and_conformance_programs() -> list[tuple[str, Any]]:
    """Fused chains of ``unijax bench``'s workloads and of the conformance-style programs."""
    from unijax.cli.benchmarks import programs as P
    from unijax.cli.benchmarks import workloads as W

    def xp(x: Any) -> Any:
        return x.__array_namespace__()

    def specs(label: str, fun: Any, *args: Any) -> list[tuple[str, Any]]:
        _, found, _ = kernels.generate(unijax.make_ir(fun)(*args))
        return [(f"{label}/{s.name}", s) for s in found]

    mlp = W.mlp_data({"D": 8, "H": 16, "C": 3, "B": 8})
    x = np.linspace(-1.0, 1.0, 16)
    out = [*specs("bench-mlp", unijax.grad(P.mlp_loss), *mlp),
           *specs("bench-per-example", unijax.vmap(unijax.grad(P.example_loss),
                                                   in_axes=(None, 0, 0)), *mlp),
           *specs("bench-loop", unijax.grad(P.loop), x),
           *specs("bench-elementwise", unijax.grad(P.elementwise), x),
           *specs("bench-tiny", unijax.grad(P.tiny), x[:3], x[3:6]),
           *specs("bench-mlp-forward", P.mlp_loss, *mlp)]
    chains = {
        "softmax": (lambda a: xp(a).exp(a - xp(a).max(a, axis=1, keepdims=True))
                    / xp(a).sum(xp(a).exp(a), axis=1, keepdims=True),
                    (np.linspace(-3, 3, 24).reshape(4, 6),)),
        "broadcast-producer": (lambda a, v: xp(a).sin(a) * (xp(v).exp(v) * 2.0 + 1.0) - a,
                               (np.ones((4, 3)), np.ones((4, 1)))),
        "float16": (lambda a: xp(a).exp(a) * 0.5 + xp(a).sin(a),
                    (np.linspace(-2, 2, 33, dtype=np.float16),)),
        "weak-scalars": (lambda a, s, n: (xp(a).exp(a * s) + n, xp(a).less(a, s)),
                         (np.linspace(0, 1, 5, dtype=np.float32), 0.1, 3)),
        "int8-wraps": (lambda a: xp(a).abs(-a) + a * 3 - xp(a).maximum(a, 5),
                       (np.asarray([-128, -7, 0, 5, 127], np.int8),)),
        "special-literals": (lambda a: xp(a).where(xp(a).isnan(a), np.nan, a) * -np.inf,
                             (np.ones(4, np.float32),)),
        "hessian": (unijax.hessian(lambda a: xp(a).sum(xp(a).tanh(a) ** 2)), (x[:4],)),
    }
    for name, (fun, args) in chains.items():
        out += specs(name, fun, *args)
    return out


@pytest.fixture(scope="module")
def corpus(toolchain: Any) -> list[tuple[str, Any]]:
    return compile_check.kernel_corpus(extra=_bench_and_conformance_programs())


@pytest.fixture(scope="module")
def report(toolchain: Any, corpus: list[tuple[str, Any]]) -> Any:
    return compile_check.compile_specs(corpus, toolchain)


# One test holds the whole compile, so that pytest-xdist workers do not repeat it.
def test_every_generated_kernel_compiles_for_sm80_and_sm90(report, corpus):
    assert not report.failures, report.describe_failures()
    assert report.compiled == {arch: len(corpus) for arch in compile_check.ARCHS}
    for arch in compile_check.ARCHS:  # ptxas -v: registers and spills of every kernel
        assert len(report.resources[arch]) == len(corpus)
        (label, (registers, stores, loads)), *_ = report.largest(arch, 1)
        assert 0 < registers <= 255 and stores >= 0 and loads >= 0, label
        # CuPy launches a ReductionKernel with 512 threads: 65536 registers per block
        # allow 128 a thread, or the launch fails with "too many resources requested".
        kinds = {label: spec.kind for label, spec in corpus}
        hungry = {label: usage for label, usage in report.resources[arch].items()
                  if kinds[label] == "reduction" and usage[0] > 128}
        assert not hungry, hungry


def test_the_corpus_covers_every_template_and_every_reduction(corpus):
    members = {eqn.primitive.name for _, spec in corpus
               for eqn in (*spec.fused.members,
                           *([spec.fused.reduction] if spec.fused.reduction else []))}
    missing = (set(kernels.TEMPLATES) | {"astype", "sum", "prod", "max", "min", "mean"}) - members
    assert not missing, f"no kernel of the corpus uses {sorted(missing)}"
    assert {spec.kind for _, spec in corpus} == {"elementwise", "reduction"}


def test_a_template_that_breaks_cuda_syntax_fails_with_the_source_and_message(
        toolchain, monkeypatch):
    typing, _ = kernels.TEMPLATES["hypot"]
    monkeypatch.setitem(kernels.TEMPLATES, "hypot", (typing, {"f": "hypot({0}, {1}"}))
    _, specs, _ = kernels.generate(unijax.make_ir(
        lambda a, b: a.__array_namespace__().hypot(a, b) * 2.0)(np.ones(3), np.ones(3)))
    report = compile_check.compile_specs([("broken-hypot", specs[0])], toolchain, archs=("80",))
    ((label, arch, stage, source, message),) = report.failures
    assert (label, arch, stage) == ("broken-hypot", "80", "NVRTC")
    assert "hypot(v_a, v_b" in source and "error" in message
    text = report.describe_failures()
    assert "broken-hypot" in text and "sm_80" in text and "hypot(v_a, v_b" in text


def test_a_kernel_ptxas_rejects_is_reported_by_stage(toolchain):
    # sm_80 cannot run PTX written for sm_90 features: ptxas, not NVRTC, refuses it.
    _, specs, _ = kernels.generate(unijax.make_ir(
        lambda a: a.__array_namespace__().sin(a) * 2.0)(np.ones(3)))
    nvrtc = compile_check._NVRTC(toolchain.nvrtc)
    prefix, options = compile_check._cupy_prefix_and_options(toolchain)
    ptx, log = nvrtc.compile(prefix + compile_check.cupy_source(specs[0]),
                             [*options, "-arch=compute_90"])
    assert ptx is not None, log
    ok, message = compile_check._ptxas(toolchain.ptxas, ptx, "80")
    assert not ok, message
    assert "sm_90" in message or "target" in message


def test_run_says_the_kernels_were_compiled_not_run(toolchain):
    _, specs, _ = kernels.generate(unijax.make_ir(
        lambda a: a.__array_namespace__().sum(a * a))(np.ones(4, np.float32)))
    lines: list[str] = []
    assert compile_check.run(print_=lines.append, specs=[("sum", specs[0])]) == 0
    assert "1 generated kernels compiled for sm_80" in lines[0]
    assert "compiled, not run" in lines[0]
    assert any("registers" in line for line in lines)
