"""Compile generated kernels for real GPUs without a GPU: NVRTC to PTX, then ``ptxas``.

CUDA's compilers need no GPU. Each :class:`~unijax_cupy.kernels.KernelSpec` is turned
into the exact CUDA C CuPy would compile for it (CuPy's own ``ElementwiseKernel``/
``ReductionKernel`` code generation, with CuPy's headers prepended), compiled by NVRTC
with the options CuPy passes (``assemble_cupy_compiler_options`` plus ``-ftz=true`` and
``--device-as-default-execution-space``) to PTX for each architecture, and the PTX is
assembled by ``ptxas -v``, whose report gives each kernel's registers and spills.

Where this differs from CuPy at run time, and why: CuPy asks NVRTC for a cubin directly
(``-arch=sm_XX``, NVRTC runs the PTX assembler internally); here NVRTC writes PTX
(``-arch=compute_XX``) and the standalone ``ptxas`` assembles it, so that both stages are
checked and ``ptxas -v`` can report resources. NVRTC is called through ``ctypes``, not
through CuPy's compile functions, which ask the device for its architecture and load the
result into a CUDA context. And the toolchain is a fixed one, the
``nvidia-cuda-nvrtc-cu12``, ``nvidia-cuda-nvcc-cu12`` and ``nvidia-cuda-runtime-cu12``
wheels (unijax's ``cuda-compile`` extra) or a CUDA toolkit named by ``CUDA_PATH``, where
CuPy would use whichever NVRTC it finds first; its include directory replaces the one
CuPy would add.
"""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import unijax
from unijax_cupy.kernels import _TYPES, TEMPLATES, KernelSpec, generate

__all__ = ["ARCHS", "CompileReport", "Toolchain", "compile_specs", "cupy_source",
           "find_toolchain", "kernel_corpus", "run"]

#: The architectures every kernel is compiled for: Ampere (A100) and Hopper (H100).
ARCHS: tuple[str, ...] = ("80", "90")

# CuPy's default block size of a ReductionKernel launch (sizes its shared-memory array).
_REDUCTION_BLOCK = 512


@dataclass(frozen=True)
class Toolchain:
    """The CUDA compilers the check runs.

    Attributes:
        nvrtc: Path of the NVRTC shared library.
        ptxas: Path of the ``ptxas`` executable.
        include: CUDA's include directory (``cuda_fp16.h``, which CuPy's headers use).
    """

    nvrtc: Path
    ptxas: Path
    include: Path


def _candidates() -> Iterator[tuple[Path, Path, Path]]:
    import importlib.util

    spec = importlib.util.find_spec("nvidia")
    roots = spec.submodule_search_locations if spec is not None else None
    for root in (Path(p) for p in roots or ()):
        yield (root / "cuda_nvrtc" / "lib" / "libnvrtc.so.12",
               root / "cuda_nvcc" / "bin" / "ptxas", root / "cuda_runtime" / "include")
    cuda = os.environ.get("CUDA_PATH") or os.environ.get("CUDA_HOME")
    if cuda:
        yield (Path(cuda) / "lib64" / "libnvrtc.so", Path(cuda) / "bin" / "ptxas",
               Path(cuda) / "include")


def find_toolchain() -> Toolchain | str:
    """The CUDA compilers installed here, or a sentence saying what is missing."""
    try:
        import cupy._core  # noqa: F401  (CuPy writes the kernels' CUDA C)
    except Exception as err:  # not installed, or a broken install
        return f"CuPy is not importable ({err}); pip install cupy-cuda12x"
    for nvrtc, ptxas, include in _candidates():
        if nvrtc.exists() and ptxas.exists() and (include / "cuda_fp16.h").exists():
            return Toolchain(nvrtc, ptxas, include)
    return ("NVRTC, ptxas or CUDA's headers are missing: pip install nvidia-cuda-nvrtc-cu12 "
            "nvidia-cuda-nvcc-cu12 nvidia-cuda-runtime-cu12 (the cuda-compile extra), or set "
            "CUDA_PATH to a CUDA 12 toolkit")


# --- the CUDA C CuPy compiles ---------------------------------------------------------------


def cupy_source(spec: KernelSpec, name: str | None = None) -> str:
    """The translation unit CuPy compiles for ``spec`` (without CuPy's header prefix).

    Args:
        spec: The kernel.
        name: The ``__global__`` function's name (default ``spec.name``).

    Returns:
        CuPy's generated CUDA C for the kernel's arguments as one-dimensional contiguous
        arrays (and ``n``-dimensional ones for a reduction over ``n`` dimensions), the
        layout CuPy uses after it collapses contiguous dimensions.
    """
    import cupy
    import numpy as np
    from cupy._core import _carray, _kernel, _scalar

    def array(dtype: Any, ndim: int) -> Any:
        return _kernel._ArgInfo(1, cupy.ndarray, np.dtype(dtype).type, ndim, True, True)

    def info(params: tuple[Any, ...], vars_: Sequence[Any], ndim: int) -> list[Any]:
        out = []
        for p, v in zip(params, vars_, strict=True):
            if v is not None and v.weak:  # a Python scalar argument: a C scalar
                out.append(_kernel._ArgInfo(3, _scalar.CScalar, p.dtype.type, 0, True, True))
            else:
                out.append(array(p.dtype, ndim))
        return out

    name = name or spec.name
    ins = _kernel._get_param_info(spec.in_params, True)
    outs = _kernel._get_param_info(spec.out_params, False)
    fused = spec.fused
    assert fused is not None
    if spec.kind == "elementwise":
        params = ins + outs + _kernel._get_param_info("CIndexer _ind", False)
        arginfos = (*info(ins, spec.arguments, 1), *info(outs, [None] * len(outs), 1),
                    _kernel._ArgInfo(2, _carray.Indexer, None, 1, True, True))
        return str(_kernel._get_elementwise_kernel_code(
            tuple(arginfos), _kernel._TypeMap(()), params, spec.operation, name,
            spec.preamble))
    from cupy._core import _reduction

    assert fused.reduction is not None
    in_ndim = max(len(fused.members[-1].outputs[0].shape), 1)
    out_ndim = len(fused.reduction.outputs[0].shape)
    params = (ins + outs + _kernel._get_param_info("CIndexer _in_ind, CIndexer _out_ind", False)
              + _kernel._get_param_info("int32 _block_stride", True))
    arginfos = (*info(ins, spec.arguments, in_ndim), *info(outs, [None], out_ndim),
                _kernel._ArgInfo(2, _carray.Indexer, None, in_ndim, True, True),
                _kernel._ArgInfo(2, _carray.Indexer, None, out_ndim, True, True),
                _kernel._ArgInfo(3, _scalar.CScalar, np.int32, 0, True, True))
    # CuPy's reduction loop counts in IndexT, a typedef it adds: int32 unless one output
    # element reduces more than 2**31 - 1 inputs.
    type_map = _kernel._TypeMap((("IndexT", "int32"),))
    return str(_reduction._ReductionKernel_get_cached_function_code(
        len(ins), len(outs), params, tuple(arginfos), type_map, name,
        _REDUCTION_BLOCK, spec.reduce_type, spec.identity, spec.map_expr, spec.reduce_expr,
        spec.post_map_expr, spec.preamble, ()))


def _cupy_prefix_and_options(toolchain: Toolchain) -> tuple[str, list[str]]:
    """CuPy's header prefix, and the NVRTC options CuPy passes (bar ``-arch``)."""
    import cupy
    from cupy._core import core

    prefix = "".join(f"#include <{h}>\n" for h in core._cupy_header_list)
    # CuPy adds the include directory of the CUDA it found; use the toolchain's instead.
    cupy_dir = str(Path(cupy.__file__).parent)
    options = [o for o in core.assemble_cupy_compiler_options(())
               if not o.startswith("-I") or o[2:].startswith(cupy_dir)]
    options += [f"-I{toolchain.include}", "-ftz=true", "--device-as-default-execution-space"]
    return prefix, options


# --- NVRTC and ptxas ------------------------------------------------------------------------


class _NVRTC:
    def __init__(self, path: Path) -> None:
        self.lib = ctypes.CDLL(str(path))
        self.lib.nvrtcGetErrorString.restype = ctypes.c_char_p

    def compile(self, source: str, options: Sequence[str]) -> tuple[bytes | None, str]:
        """``(ptx, log)``; ``ptx`` is ``None`` when NVRTC rejects the source."""
        lib, prog = self.lib, ctypes.c_void_p()
        status = lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"unijax.cu",
                                        0, None, None)
        if status:
            return None, lib.nvrtcGetErrorString(status).decode()
        try:
            opts = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
            status = lib.nvrtcCompileProgram(prog, len(options), opts)
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetProgramLog(prog, log)
            if status:
                return None, log.value.decode(errors="replace")
            lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
            ptx = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetPTX(prog, ptx)
            return ptx.value, log.value.decode(errors="replace")
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(prog))


_ENTRY = re.compile(r"Compiling entry function '(\w+)' for 'sm_(\d+)'")
_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
_REGS = re.compile(r"Used (\d+) registers")


def _ptxas(ptxas: Path, ptx: bytes, arch: str) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "k.ptx"
        src.write_bytes(ptx)
        done = subprocess.run([str(ptxas), f"-arch=sm_{arch}", "-v", str(src),
                               "-o", str(Path(tmp) / "k.cubin")],
                              capture_output=True, text=True, check=False)
    return done.returncode == 0, done.stdout + done.stderr


def _resources(log: str) -> dict[str, tuple[int, int, int]]:
    """``ptxas -v``'s ``{kernel: (registers, spill store bytes, spill load bytes)}``."""
    out: dict[str, tuple[int, int, int]] = {}
    current, spills = None, (0, 0)
    for line in log.splitlines():
        if m := _ENTRY.search(line):
            current, spills = m.group(1), (0, 0)
        elif (m := _SPILLS.search(line)) and current:
            spills = (int(m.group(1)), int(m.group(2)))
        elif (m := _REGS.search(line)) and current:
            out[current] = (int(m.group(1)), *spills)
    return out


@dataclass
class CompileReport:
    """What the compile check found.

    Attributes:
        compiled: Per architecture, how many kernels NVRTC and ptxas accepted.
        failures: ``(label, arch, stage, cuda_source, compiler_message)`` per rejection.
        resources: Per architecture, ``{label: (registers, spill stores, spill loads)}``.

    Example:
        >>> report = CompileReport({"80": 2}, [], {"80": {"a": (40, 0, 0), "b": (224, 0, 0)}})
        >>> report.largest("80", 1), report.describe_failures()
        ([('b', (224, 0, 0))], '')
    """

    compiled: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    resources: dict[str, dict[str, tuple[int, int, int]]] = field(default_factory=dict)

    def describe_failures(self) -> str:
        """Every failure with its kernel's CUDA C and the compiler's message."""
        parts = []
        for label, arch, stage, source, message in self.failures:
            parts.append(f"=== {label}: {stage} rejected it for sm_{arch}\n--- compiler:\n"
                         f"{message.strip()}\n--- CUDA C:\n{source}")
        return "\n".join(parts)

    def largest(self, arch: str, n: int = 5) -> list[tuple[str, tuple[int, int, int]]]:
        """The ``n`` kernels using the most registers on ``arch``."""
        return sorted(self.resources.get(arch, {}).items(), key=lambda kv: -kv[1][0])[:n]


def compile_specs(specs: Iterable[tuple[str, KernelSpec]], toolchain: Toolchain, *,
                  archs: Sequence[str] = ARCHS, batch: int = 200) -> CompileReport:
    """Compile every kernel for every architecture, ``batch`` kernels per NVRTC program.

    Each kernel keeps CuPy's code but is renamed ``k<i>`` and put in its own namespace, so
    that many fit in one translation unit (NVRTC's start-up and CuPy's headers are paid
    once per batch). Batches compile in parallel threads (NVRTC and ``ptxas`` release the
    GIL). A batch that fails is compiled one kernel at a time, to name the kernels at
    fault.

    Args:
        specs: ``(label, spec)`` pairs.
        toolchain: From :func:`find_toolchain`.
        archs: Compute capabilities, e.g. ``("80", "90")``.
        batch: Kernels per NVRTC program.

    Returns:
        The report.
    """
    from concurrent.futures import ThreadPoolExecutor

    nvrtc = _NVRTC(toolchain.nvrtc)
    prefix, options = _cupy_prefix_and_options(toolchain)
    units = [(label, cupy_source(spec, f"k{i}")) for i, (label, spec) in enumerate(specs)]
    report = CompileReport()
    jobs = [(arch, units[i:i + batch]) for arch in archs for i in range(0, len(units), batch)]

    def job(arch: str, chunk: list[tuple[str, str]]) -> list[_Outcome]:
        outcome = _compile_batch(chunk, nvrtc, toolchain, prefix, options, arch)
        if outcome.ok or len(chunk) == 1:
            return [outcome]
        return [_compile_batch([unit], nvrtc, toolchain, prefix, options, arch)
                for unit in chunk]

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda j: job(*j), jobs))
    for arch in archs:
        report.compiled[arch] = 0
        report.resources[arch] = {}
    for (arch, _), outcomes in zip(jobs, results, strict=True):
        for outcome in outcomes:
            if outcome.ok:
                report.compiled[arch] += outcome.count
                report.resources[arch].update(outcome.resources)
            else:
                report.failures.append((outcome.label, arch, outcome.stage, outcome.source,
                                        outcome.log))
    return report


@dataclass
class _Outcome:
    ok: bool
    count: int
    stage: str = ""
    log: str = ""
    label: str = ""
    source: str = ""
    resources: dict[str, tuple[int, int, int]] = field(default_factory=dict)


def _wrap(index: int, source: str) -> str:
    # Reduction kernels #define REDUCE/POST_MAP/_REDUCE and typedef _type_reduce: a
    # namespace and #undefs keep kernels of one translation unit apart.
    return (f"namespace unijax_k{index} {{\n{source}\n}}\n"
            "#undef REDUCE\n#undef POST_MAP\n#undef _REDUCE\n")


def _compile_batch(chunk: list[tuple[str, str]], nvrtc: _NVRTC, toolchain: Toolchain,
                   prefix: str, options: list[str], arch: str) -> _Outcome:
    # CuPy's code #includes its float16 header where needed: included once, at the top.
    includes = sorted({line.strip() for _, src in chunk for line in src.splitlines()
                       if line.strip().startswith("#include")})
    bodies = ["\n".join(line for line in src.splitlines()
                        if not line.strip().startswith("#include")) for _, src in chunk]
    text = prefix + "".join(f"{line}\n" for line in includes) + "".join(
        _wrap(i, body) for i, body in enumerate(bodies))
    ptx, log = nvrtc.compile(text, [*options, f"-arch=compute_{arch}"])
    stage, ok = "NVRTC", ptx is not None
    if ptx is not None:
        stage = "ptxas"
        ok, log = _ptxas(toolchain.ptxas, ptx, arch)
    label, source = chunk[0]
    if not ok:
        return _Outcome(False, len(chunk), stage, log, label, source)
    labels = {src.split("__global__ void ", 1)[1].split("(", 1)[0]: label
              for label, src in chunk}
    usage = {labels[k]: u for k, u in _resources(log).items() if k in labels}
    return _Outcome(True, len(chunk), resources=usage)


# --- the kernels the generator can emit -----------------------------------------------------


def _xp(x: Any) -> Any:
    return x.__array_namespace__()


def _specs(label: str, fun: Callable[..., Any], *args: Any) -> list[tuple[str, KernelSpec]]:
    _, specs, _ = generate(unijax.make_ir(fun)(*args))
    return [(f"{label}/{s.name}", s) for s in specs]


_KIND_DTYPES = {"b": ["bool"], "i": ["int8", "int16", "int32", "int64"],
                "u": ["uint8", "uint16", "uint32", "uint64"],
                "f": ["float16", "float32", "float64"]}


def _values(dtype: str) -> Any:
    import numpy as np

    return np.asarray([0, 1, 1, 0, 1, 1], dtype=dtype).reshape(2, 3)


def _template_programs() -> Iterator[tuple[str, KernelSpec]]:
    import numpy as np

    for name, (typing, by_kind) in sorted(TEMPLATES.items()):
        kinds = "b" if typing == "logical" else "".join(by_kind)
        for dtype in (d for k in kinds for d in _KIND_DTYPES[k]):
            x = _values(dtype)
            mask = np.asarray([True, False, True])
            if name == "where":
                yield from _specs(f"where-{dtype}", lambda m, a, b: _xp(a).where(
                    m, a * a, b), mask, x, x)
                continue
            if name == "stop_gradient":
                yield from _specs(f"{name}-{dtype}", lambda a: unijax.stop_gradient(a * a), x)
                continue
            if name == "broadcast_to":  # a smaller producer folded into its consumer
                def bcast(r: Any, a: Any, logical: bool = dtype == "bool") -> Any:
                    xp = _xp(a)
                    if logical:
                        return xp.logical_and(xp.broadcast_to(xp.logical_not(r), (2, 3)), a)
                    return xp.broadcast_to(r * r, (2, 3)) * a
                yield from _specs(f"{name}-{dtype}", bcast, x[:1], x)
                continue
            arity = 2 if "{1}" in next(iter(by_kind.values())) else 1

            def f(m: Any, *xs: Any, name: str = name) -> Any:
                r = getattr(_xp(m), name)(*xs)
                return _xp(m).where(m, r, r), r
            yield from _specs(f"{name}-{dtype}", f, mask, *[x] * arity)
            if arity == 2 and dtype in ("int32", "float32", "uint8"):  # weak Python scalars
                scalar = 2 if typing == "result" and by_kind.get("f") is None else 0.5
                if dtype != "float32" and isinstance(scalar, float) and typing == "result":
                    scalar = 2
                yield from _specs(f"{name}-{dtype}-scalar", lambda a, s, name=name: getattr(
                    _xp(a), name)(a, s), x, scalar)


def _astype_programs() -> Iterator[tuple[str, KernelSpec]]:
    import numpy as np

    names = sorted({t[0] for t in _TYPES.values()})
    for src in names:
        for dst in names:
            yield from _specs(f"astype-{src}-{dst}", lambda a, dst=dst: _xp(a).astype(
                a, getattr(np, dst)) == _xp(a).astype(a, getattr(np, dst)), _values(src))


def _reduction_programs() -> Iterator[tuple[str, KernelSpec]]:
    import numpy as np

    for name in ("sum", "prod", "max", "min", "mean"):
        dtypes = ["float16", "float32", "float64"] + (
            [] if name == "mean" else ["int8", "int32", "int64", "uint8", "uint64"])
        for dtype in dtypes:
            x = np.ones((2, 3, 4), dtype=dtype)
            for axis in (None, 1, (0, 2)):
                yield from _specs(f"{name}-{dtype}-axis{axis}", lambda a, name=name, axis=axis:
                                  getattr(_xp(a), name)(a * a, axis=axis), x)


def _chain_programs() -> Iterator[tuple[str, KernelSpec]]:
    import numpy as np

    def workload(x: Any) -> Any:
        xp = _xp(x)
        return xp.sum(xp.exp(-x * x) * xp.sin(x) + 0.5 * x)

    def mlp_loss(params: Any, x: Any, y: Any) -> Any:
        w1, b1, w2, b2 = params
        xp = _xp(x)
        h = xp.tanh(x @ w1 + b1)
        logits = h @ w2 + b2
        m = xp.max(logits, axis=1, keepdims=True)
        lse = xp.log(xp.sum(xp.exp(logits - m), axis=1, keepdims=True)) + m
        return -xp.mean(xp.sum((logits - lse) * y, axis=1))

    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):
        x = np.linspace(0, 2, 64, dtype=dtype)
        params = [rng.normal(size=s).astype(dtype) for s in ((8, 16), (16,), (16, 4), (4,))]
        xb = rng.normal(size=(6, 8)).astype(dtype)
        yb = np.eye(4, dtype=dtype)[rng.integers(0, 4, 6)]
        yield from _specs(f"workload-{dtype}", workload, x)
        yield from _specs(f"grad(workload)-{dtype}", unijax.grad(workload), x)
        yield from _specs(f"vmap(grad(workload))-{dtype}", unijax.vmap(unijax.grad(workload)),
                          x.reshape(8, 8))
        yield from _specs(f"mlp-{dtype}", mlp_loss, params, xb, yb)
        yield from _specs(f"grad(mlp)-{dtype}", unijax.grad(mlp_loss), params, xb, yb)
        yield from _specs(f"jacfwd-{dtype}", unijax.jacfwd(
            lambda v: _xp(v).tanh(v) * _xp(v).sum(v * v)), x[:5])
        yield from _specs(f"grad(grad)-{dtype}", unijax.grad(unijax.grad(
            lambda v: _xp(v).sum(_xp(v).sin(v) * _xp(v).exp(v)))), x[0])


def kernel_corpus(extra: Iterable[tuple[str, KernelSpec]] = ()) -> list[tuple[str, KernelSpec]]:
    """Every kind of kernel the generator can emit, as ``(label, spec)`` pairs.

    Each elementwise template for every dtype it claims (and with weak Python scalars),
    every ``astype`` pair, every fused reduction for its dtypes and axes, and the forward
    and backward programs of ``grad``, ``vmap`` and ``jacfwd`` over fused chains.

    Args:
        extra: More ``(label, spec)`` pairs to append.

    Example:
        >>> corpus = kernel_corpus()
        >>> sorted({spec.kind for _, spec in corpus})
        ['elementwise', 'reduction']
        >>> [label for label, _ in corpus if label.startswith("grad(workload)-float32")]
        ['grad(workload)-float32/unijax_fused_0']
    """
    import numpy as np

    with np.errstate(all="ignore"):
        return [*_template_programs(), *_astype_programs(), *_reduction_programs(),
                *_chain_programs(), *extra]


def run(archs: Sequence[str] = ARCHS, print_: Callable[[str], Any] = print,
        specs: Sequence[tuple[str, KernelSpec]] | None = None) -> int:
    """Compile ``specs`` (default: :func:`kernel_corpus`) and print what was compiled.

    Returns:
        0 if every kernel compiled for every architecture, 1 if one did not (its CUDA C
        and the compiler's message are printed), 3 when the compilers are not installed.
    """
    toolchain = find_toolchain()
    if isinstance(toolchain, str):
        print_(f"cupy: kernels not compiled: {toolchain}")
        return 3
    report = compile_specs(kernel_corpus() if specs is None else specs, toolchain,
                           archs=archs)
    for arch in archs:
        print_(f"cupy: {report.compiled[arch]} generated kernels compiled for sm_{arch} "
               "(NVRTC to PTX, then ptxas); compiled, not run: no CUDA device here")
        for label, (regs, stores, loads) in report.largest(arch, 3):
            print_(f"  {label}: {regs} registers, {stores}/{loads} bytes spilled "
                   "(stores/loads)")
    if report.failures:
        print_(report.describe_failures())
        print_(f"cupy: {len(report.failures)} kernel compilations FAILED")
        return 1
    return 0
