"""The benchmark workloads: data, the variants that run them, and the targets.

A :class:`Workload` owns its data (generated with NumPy from fixed seeds) and a tuple of
:class:`Variant` objects. A variant is one way of computing the workload: unijax on a
backend (``grad``, ``jit(grad)``, ``vmap(grad)`` ...) or a native library used directly
(``autograd.grad``, ``jax.jit(jax.grad)``, the plain NumPy forward pass). Building a
variant converts the data to its library and returns a zero-argument callable; nothing is
imported until a variant is built, so listing workloads is free.

:data:`TARGETS` are the figures the project quotes (``benchmarks/README.md``); the harness
evaluates each from the same run's measurements.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import unijax
from unijax.cli.benchmarks import programs as P
from unijax.engine import lower_numba
from unijax.engine.core import namespace_for_value
from unijax.engine.lower import compile_python
from unijax.engine.subprogram import Body

__all__ = [
    "BACKENDS",
    "TARGETS",
    "WORKLOADS",
    "Target",
    "Variant",
    "Workload",
    "get_workload",
]

#: The unijax backends every workload runs on (those installed).
BACKENDS = ("numpy", "autograd", "jax", "array_api_strict", "torch")

Data = Any
Thunk = Callable[[], Any]


@dataclass(frozen=True)
class Variant:
    """One way of computing a workload.

    Attributes:
        key: Stable identifier, ``"unijax/<backend>/<transform>"`` or
            ``"native/<library>/<transform>"``.
        library: The array library it needs (the backend's name for unijax variants).
        kind: ``"unijax"`` or ``"native"``.
        transform: What is timed, e.g. ``"grad"``, ``"jit(grad)"``, ``"forward"``.
        output: What it returns (``"value"``, ``"grad"``): variants with the same output
            must agree numerically, which the harness checks before timing.
        build: Converts the workload's NumPy data and returns the zero-argument callable
            that is timed.
        baseline: Key of the native variant its ratio is taken against (the library a
            user of that array type would otherwise use), or None.
        slow_build: Why building it takes minutes (``torch.compile``), or None. Such
            variants run in full runs only.
    """

    key: str
    library: str
    kind: str
    transform: str
    output: str
    build: Callable[[Data], Thunk]
    baseline: str | None = None
    slow_build: str | None = None

    @property
    def label(self) -> str:
        """A short human label, e.g. ``"unijax jit(grad) [numpy]"``."""
        if self.kind == "unijax":
            return f"unijax {self.transform} [{self.library}]"
        return _NATIVE_LABELS.get(self.key.partition("/")[2], self.key)


@dataclass(frozen=True)
class Workload:
    """A benchmark: a program, its data at each size, and the variants that compute it.

    Attributes:
        name: Identifier used by ``unijax bench --workload``.
        title: One line shown in tables; ``{key}`` fields are filled from the size.
        sizes: Problem sizes per preset: ``"full"`` and ``"smoke"`` (tiny, for tests), and
            optionally ``"quick"`` (default: the full size).
        make_data: Builds the NumPy data from a size mapping (deterministic).
        variants: Every variant; those whose library is missing are skipped.
        rounds_factor: Runs this many times the preset's rounds. A per-call overhead of a
            microsecond on a call of tens of microseconds needs many paired rounds
            before the median difference settles.
    """

    name: str
    title: str
    sizes: Mapping[str, Mapping[str, int]]
    make_data: Callable[[Mapping[str, int]], Data]
    variants: tuple[Variant, ...] = field(default=())
    rounds_factor: int = 1


@dataclass(frozen=True)
class Target:
    """A quoted figure: a comparison of two variants of one workload.

    Attributes:
        id: Identifier in the JSON report.
        description: The claim, as quoted.
        workload: Workload name (``"memory"`` for the peak-memory comparison).
        numerator: Variant key measured.
        denominator: Variant key compared with.
        kind: ``"ratio"`` (numerator/denominator time <= threshold), ``"speedup"``
            (denominator/numerator >= threshold), ``"overhead"`` (numerator -
            denominator seconds per call <= threshold) or ``"memory"`` (peak-memory ratio
            <= threshold).
        threshold: The target value.
    """

    id: str
    description: str
    workload: str
    numerator: str
    denominator: str
    kind: str
    threshold: float


# --- building variants -----------------------------------------------------------------------


def _jax_sync(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` followed by ``block_until_ready``: JAX dispatches asynchronously."""
    import jax

    def call(*args: Any) -> Any:
        return jax.block_until_ready(fn(*args))

    return call


def _unijax_data(data: Data, backend: str) -> Data:
    return unijax.tree.tree_map(lambda a: unijax.asarray(a, backend=backend), data)


def _jax_data(data: Data) -> Data:
    import jax

    jax.config.update("jax_enable_x64", True)  # the workloads are float64 everywhere
    return jax.tree_util.tree_map(jax.numpy.asarray, data)


def _bind(fn: Callable[..., Any], data: Data) -> Thunk:
    return functools.partial(fn, *data)


def _unijax_transform(fun: Callable[..., Any], transform: str, backend: str,
                      in_axes: Any) -> Callable[..., Any]:
    grad = functools.partial(unijax.grad, backend=backend)
    jit = functools.partial(unijax.jit, backend=backend)
    vmap = functools.partial(unijax.vmap, in_axes=in_axes, backend=backend)
    table: dict[str, Callable[[], Callable[..., Any]]] = {
        "grad": lambda: grad(fun),
        "jit(grad)": lambda: jit(grad(fun)),
        "jit": lambda: jit(fun),
        "vmap(grad)": lambda: vmap(grad(fun)),
        "jit(vmap(grad))": lambda: jit(vmap(grad(fun))),
    }
    return table[transform]()


def _jax_transform(fun: Callable[..., Any], transform: str, in_axes: Any) -> Callable[..., Any]:
    import jax

    table: dict[str, Callable[[], Callable[..., Any]]] = {
        "grad": lambda: jax.grad(fun),
        "jit(grad)": lambda: jax.jit(jax.grad(fun)),
        "jit": lambda: jax.jit(fun),
        "vmap(grad)": lambda: jax.vmap(jax.grad(fun), in_axes=in_axes),
        "jit(vmap(grad))": lambda: jax.jit(jax.vmap(jax.grad(fun), in_axes=in_axes)),
    }
    return table[transform]()


def unijax_variant(fun: Callable[..., Any], backend: str, transform: str, *,
                   in_axes: Any = 0, baseline: str | None = None) -> Variant:
    """unijax's ``transform`` of the Array API function ``fun`` on ``backend``."""

    def build(data: Data) -> Thunk:
        fn = _unijax_transform(fun, transform, backend, in_axes)
        args = _unijax_data(data, backend)
        return _bind(_jax_sync(fn) if backend == "jax" else fn, args)

    output = "value" if transform == "jit" else "grad"
    return Variant(f"unijax/{backend}/{transform}", backend, "unijax", transform, output, build,
                   baseline)


def jax_variant(fun: Callable[..., Any], transform: str, *, in_axes: Any = 0) -> Variant:
    """Raw JAX: ``jax.grad``/``jax.jit``/``jax.vmap`` of the same Array API function."""

    def build(data: Data) -> Thunk:
        args = _jax_data(data)
        return _bind(_jax_sync(_jax_transform(fun, transform, in_axes)), args)

    output = "value" if transform == "jit" else "grad"
    return Variant(f"native/jax/{transform}", "jax", "native", transform, output, build)


def _torch_data(data: Data) -> Data:
    import torch

    return unijax.tree.tree_map(torch.from_numpy, data)  # float64, sharing memory


def _torch_transform(fun: Callable[..., Any], transform: str, in_axes: Any) -> Callable[..., Any]:
    import torch
    import torch.func as tf

    table: dict[str, Callable[[], Callable[..., Any]]] = {
        "grad": lambda: tf.grad(fun),
        "jit(grad)": lambda: torch.compile(tf.grad(fun), dynamic=False),
        "vmap(grad)": lambda: tf.vmap(tf.grad(fun), in_dims=in_axes),
    }
    return table[transform]()


def torch_variant(fun: Callable[..., Any], transform: str, *, in_axes: Any = 0) -> Variant:
    """Raw torch: ``torch.func.grad``/``vmap`` of the same Array API function, and
    ``torch.compile`` of ``torch.func.grad`` for ``jit(grad)``."""

    def build(data: Data) -> Thunk:
        return _bind(_torch_transform(fun, transform, in_axes), _torch_data(data))

    slow = "torch.compile builds for minutes: full runs only" if transform == "jit(grad)" else None
    return Variant(f"native/torch/{transform}", "torch", "native", transform, "grad", build,
                   slow_build=slow)


def numpy_forward(twin: Callable[..., Any]) -> Variant:
    """The plain NumPy forward pass (the twin with ``np=numpy``)."""

    def build(data: Data) -> Thunk:
        import numpy

        return _bind(functools.partial(twin, numpy), data)

    return Variant("native/numpy/forward", "numpy", "native", "forward", "value", build)


def autograd_grad(twin: Callable[..., Any]) -> Variant:
    """``autograd.grad`` of the twin with ``np=autograd.numpy``."""

    def build(data: Data) -> Thunk:
        import autograd
        import autograd.numpy as anp

        return _bind(autograd.grad(functools.partial(twin, anp)), data)

    return Variant("native/autograd/grad", "autograd", "native", "grad", "grad", build)


def autograd_loop(twin: Callable[..., Any]) -> Variant:
    """A Python loop of ``autograd.grad`` over the examples, stacked like ``vmap``'s output."""

    def build(data: Data) -> Thunk:
        import autograd
        import autograd.numpy as anp
        import numpy

        g = autograd.grad(functools.partial(twin, anp))
        params, x, onehot = data

        def per_example() -> Any:
            grads = [g(params, x[i], onehot[i]) for i in range(x.shape[0])]
            return {k: numpy.stack([gi[k] for gi in grads]) for k in grads[0]}

        return per_example

    return Variant("native/autograd/loop of grad", "autograd", "native", "loop of grad", "grad",
                   build)


def _baseline(backend: str, transform: str, numpy_family: str) -> str:
    # The library a user of these arrays would otherwise use: autograd for NumPy-like
    # arrays, JAX's and torch's own transforms for their arrays.
    if backend in ("jax", "torch"):
        return f"native/{backend}/{transform}"
    return numpy_family


def _standard_variants(fun: Callable[..., Any], twin: Callable[..., Any]) -> tuple[Variant, ...]:
    """forward, autograd.grad, jax.grad, jax.jit(jax.grad), unijax grad/jit(grad) everywhere."""
    natives = (numpy_forward(twin), autograd_grad(twin), jax_variant(fun, "grad"),
               jax_variant(fun, "jit(grad)"), torch_variant(fun, "grad"),
               torch_variant(fun, "jit(grad)"))
    ours = tuple(
        unijax_variant(fun, b, t, baseline=_baseline(b, t, "native/autograd/grad"))
        for b in BACKENDS for t in ("grad", "jit(grad)"))
    return natives + ours


# --- data ----------------------------------------------------------------------------------


def _mlp_params(rng: Any, d: int, h: int, c: int) -> dict[str, Any]:
    import numpy as np

    return {"w1": rng.standard_normal((d, h)) / np.sqrt(d), "b1": 0.1 * rng.standard_normal(h),
            "w2": rng.standard_normal((h, c)) / np.sqrt(h), "b2": 0.1 * rng.standard_normal(c)}


def mlp_data(size: Mapping[str, int]) -> Data:
    """``(params, x, onehot)`` for the MLP workloads (float64)."""
    import numpy as np

    rng = np.random.default_rng(0)
    params = _mlp_params(rng, size["D"], size["H"], size["C"])
    x = rng.standard_normal((size["B"], size["D"]))
    onehot = np.eye(size["C"])[rng.integers(0, size["C"], size["B"])]
    return params, x, onehot


def loop_data(size: Mapping[str, int]) -> Data:
    """``(x,)`` with ``n`` elements."""
    import numpy as np

    return (np.linspace(-1.0, 1.0, size["n"]),)


def gp_data(size: Mapping[str, int]) -> Data:
    """``(params, x, y)``: noisy samples of a smooth function in 2-d."""
    import numpy as np

    rng = np.random.default_rng(2)
    x = rng.uniform(-3.0, 3.0, (size["N"], 2))
    y = np.sin(x[:, 0]) * np.cos(x[:, 1]) + 0.1 * rng.standard_normal(size["N"])
    params = {"log_lengthscale": np.asarray(0.0), "log_variance": np.asarray(0.0),
              "log_noise": np.asarray(np.log(0.1))}
    return params, x, y


def elementwise_data(size: Mapping[str, int]) -> Data:
    """``(x,)`` with ``n`` elements."""
    import numpy as np

    return (np.random.default_rng(3).standard_normal(size["n"]),)


def tiny_data(size: Mapping[str, int]) -> Data:
    """``(x, y)`` with ``n`` elements each."""
    import numpy as np

    return np.linspace(0.1, 0.3, size["n"]), np.linspace(1.0, 2.0, size["n"])


# --- the workloads ---------------------------------------------------------------------------

_PER_EXAMPLE_AXES = (None, 0, 0)

_MLP_SIZES = {"full": {"D": 128, "H": 256, "C": 10, "B": 256},
              "smoke": {"D": 8, "H": 16, "C": 3, "B": 8}}

WORKLOADS: tuple[Workload, ...] = (
    Workload("mlp", "MLP softmax cross-entropy, gradient (D={D}, H={H}, C={C}, batch {B})",
             _MLP_SIZES, mlp_data, _standard_variants(P.mlp_loss, P.mlp_loss_native)),
    Workload(
        "per_example",
        "per-example gradients of the MLP loss, vmap(grad, in_axes=(None, 0, 0)), batch {B}",
        {"full": {**_MLP_SIZES["full"], "B": 128}, "smoke": {**_MLP_SIZES["smoke"], "B": 4}},
        mlp_data,
        (autograd_loop(P.example_loss_native),
         jax_variant(P.example_loss, "vmap(grad)", in_axes=_PER_EXAMPLE_AXES),
         jax_variant(P.example_loss, "jit(vmap(grad))", in_axes=_PER_EXAMPLE_AXES),
         torch_variant(P.example_loss, "vmap(grad)", in_axes=_PER_EXAMPLE_AXES),
         *(unijax_variant(P.example_loss, b, t, in_axes=_PER_EXAMPLE_AXES,
                          baseline=_baseline(b, t, "native/autograd/loop of grad")
                          if (b, t) != ("torch", "jit(vmap(grad))")
                          else "native/torch/vmap(grad)")
           for b in BACKENDS for t in ("vmap(grad)", "jit(vmap(grad))"))),
    ),
    Workload("loop", f"{P.LOOP_STEPS} steps of sin(x)*0.9 + cos(x)*0.1 on {{n}} elements, "
             "gradient (per-op overhead)", {"full": {"n": 16}, "smoke": {"n": 4}},
             loop_data, _standard_variants(P.loop, P.loop_native)),
    Workload("gp", "Gaussian-process NLL (RBF, N={N}, cholesky + solve), gradient",
             {"full": {"N": 400}, "smoke": {"N": 12}}, gp_data,
             _standard_variants(P.gp_nll, P.gp_nll_native)),
    Workload("elementwise", "sum(exp(-x*x)*sin(x) + 0.5*x) on {n:,} elements, gradient",
             # quick: 10^6, or this one workload alone would take the whole minute
             {"full": {"n": 10_000_000}, "quick": {"n": 1_000_000}, "smoke": {"n": 1000}},
             elementwise_data,
             _standard_variants(P.elementwise, P.elementwise_native)),
    Workload(
        "tiny", "per-call overhead: sum(sin(x)*y) on {n} elements, jit(f) and grad(f)",
        {"full": {"n": 3}, "smoke": {"n": 3}}, tiny_data,
        (numpy_forward(P.tiny_native), autograd_grad(P.tiny_native),
         jax_variant(P.tiny, "jit"), jax_variant(P.tiny, "grad"), torch_variant(P.tiny, "grad"),
         *(unijax_variant(P.tiny, b, t, baseline=_baseline(
             b, t, "native/numpy/forward" if t == "jit" else "native/autograd/grad")
             if (b, t) != ("torch", "jit") else None)
           for b in BACKENDS for t in ("jit", "grad"))),
        rounds_factor=6,
    ),
)

def rnn_data(size: Mapping[str, int]) -> Data:
    """``(params, h0, xs)`` for the ``scan`` recurrence: state ``S``, ``T`` steps."""
    import numpy as np

    rng = np.random.default_rng(4)
    s = size["S"]
    return ({"w": 0.9 * rng.standard_normal((s, s)) / np.sqrt(s)}, rng.standard_normal(s),
            0.5 * rng.standard_normal((size["T"], s)))


def _trace_and_compile(steps: int, transform: str) -> Variant:
    """Staging, optimising and generating the code of ``jit(f)`` (``transform`` ``"jit"``)
    or ``jit(grad(f))`` of a ``steps``-step scan (the program and its loop bodies), without
    running it."""

    def build(data: Data) -> Thunk:
        params, h0, xs = data
        xs = xs[:1].repeat(steps, axis=0)
        xp = namespace_for_value(h0)
        program_of = unijax.make_ir(unijax.grad(P.rnn_scan) if transform == "jit(grad)"
                                    else P.rnn_scan)

        def thunk() -> Any:
            program = program_of(params, h0, xs)
            compile_python(program, xp)
            for eqn in program.equations:
                for value in eqn.params.values():
                    if isinstance(value, Body):
                        value.compiled(xp)
            return len(program)

        return thunk

    what = f"{transform} trace+compile ({steps:,} steps)"
    return Variant(f"unijax/numpy/{what}", "numpy", "unijax", what,
                   f"{transform} program of {steps} steps", build)


def _chain_grad(checkpointed: bool) -> Variant:
    def build(data: Data) -> Thunk:
        (x,), segments, steps = data, 20, 50
        fn = unijax.grad(functools.partial(P.chain, segments=segments, steps=steps,
                                           checkpointed=checkpointed), backend="numpy")
        return functools.partial(fn, x)

    transform = "grad(checkpoint)" if checkpointed else "grad"
    return Variant(f"unijax/numpy/{transform} (chain)", "numpy", "unijax", transform, "grad",
                   build)


_CONTROL_FLOW: tuple[Workload, ...] = (
    Workload(
        "scan", "lax.scan recurrence tanh(W h + x), state {S}, {T} steps, gradient",
        {"full": {"S": 16, "T": 1000}, "smoke": {"S": 4, "T": 6}}, rnn_data,
        (autograd_grad(P.rnn_loop_native), jax_variant(P.rnn_scan, "jit(grad)"),
         *(unijax_variant(P.rnn_scan, b, t, baseline=_baseline(b, t, "native/autograd/grad"))
           for b, t in (("numpy", "grad"), ("numpy", "jit(grad)"), ("array_api_strict",
                                                                    "jit(grad)"),
                        ("autograd", "grad"), ("jax", "jit(grad)"))))),
    Workload(
        "scan_trace", "jit and jit(grad) of the scan recurrence: staging and code generation "
        "(state {S}), 100 against 10,000 steps", {"full": {"S": 16, "T": 1},
                                                  "smoke": {"S": 4, "T": 1}},
        rnn_data, tuple(_trace_and_compile(n, t) for t in ("jit", "jit(grad)")
                        for n in (100, 10_000))),
    Workload(
        "checkpoint", "20 segments x 50 elementwise steps on {n:,} elements, gradient, "
        "with and without checkpoint", {"full": {"n": 100_000}, "smoke": {"n": 100}},
        elementwise_data, (_chain_grad(False), _chain_grad(True))),
)
WORKLOADS = WORKLOADS + _CONTROL_FLOW


# --- the jit lowerings on NumPy side by side -----------------------------------------------


def _ew_step_scan(params: dict[str, Any], h0: Any, xs: Any) -> Any:
    """The scan recurrence with an elementwise step ``tanh(a * h + x)``, ``a`` a vector
    made from ``w`` (so that the gradient goes through the loop)."""
    xp = h0.__array_namespace__()
    a = 0.9 + 0.01 * xp.sum(params["w"], axis=0)

    def step(h: Any, x: Any) -> Any:
        return xp.tanh(a * h + x), None

    h, _ = unijax.lax.scan(step, h0, xs)
    return xp.sum(h * h)


def _ys_scan(params: dict[str, Any], h0: Any, xs: Any) -> Any:
    """The elementwise recurrence with a per-step output ``sum(h*h)``."""
    xp = h0.__array_namespace__()
    a = 0.9 + 0.01 * xp.sum(params["w"], axis=0)

    def step(h: Any, x: Any) -> Any:
        h = xp.tanh(a * h + x)
        return h, xp.sum(h * h)

    h, ys = unijax.lax.scan(step, h0, xs)
    return xp.sum(h * h) + xp.sum(ys)


def lowering_variant(fun: Callable[..., Any], transform: str, compiler: str, *,
                     in_axes: Any = 0, baseline: str | None = None) -> Variant:
    """unijax's ``transform`` on NumPy with ``jit_compiler`` set to ``compiler`` while the
    program compiles (its first call, made when the variant is built)."""

    def build(data: Data) -> Thunk:
        before = unijax.config.read("jit_compiler")
        unijax.config.update("jit_compiler", compiler)
        try:
            thunk = _bind(_unijax_transform(fun, transform, "numpy", in_axes),
                          _unijax_data(data, "numpy"))
            thunk()
        finally:
            unijax.config.update("jit_compiler", before)
        return thunk

    label = f"{transform} {compiler}"
    return Variant(f"unijax/numpy/{label}", "numpy", "unijax", label,
                   "value" if transform == "jit" else "grad", build, baseline)


def _cached_compile(fun: Callable[..., Any]) -> Variant:
    """Staging, code generation and loading the machine code of ``jit(grad(fun))`` from
    Numba's disk cache, then one run: what a new process pays for a compiled program."""

    def build(data: Data) -> Thunk:
        args = _unijax_data(data, "numpy")
        unijax.config.update("jit_compiler", "numba")
        try:
            unijax.jit(unijax.grad(fun))(*args)  # fills the disk cache
        finally:
            unijax.config.update("jit_compiler", None)

        def thunk() -> Any:
            lower_numba._modules.clear()  # as in a new process: load from disk
            unijax.config.update("jit_compiler", "numba")
            try:
                return unijax.jit(unijax.grad(fun))(*args)
            finally:
                unijax.config.update("jit_compiler", None)

        return thunk

    return Variant("unijax/numpy/jit(grad) compile (disk cache)", "numpy", "unijax",
                   "jit(grad) compile (disk cache)", "grad", build)


def _scan_lowerings(fun: Callable[..., Any], twin: Callable[..., Any]) -> tuple[Variant, ...]:
    return (autograd_grad(twin), jax_variant(fun, "jit(grad)"), jax_variant(fun, "jit"),
            *(lowering_variant(fun, t, c, baseline="native/jax/" + t)
              for t in ("jit(grad)", "jit") for c in ("numba", "python")))


def _ew_twin(np: Any, params: dict[str, Any], h0: Any, xs: Any) -> Any:
    h, a = h0, 0.9 + 0.01 * np.sum(params["w"], axis=0)
    for t in range(xs.shape[0]):
        h = np.tanh(a * h + xs[t])
    return np.sum(h * h)


def _ys_twin(np: Any, params: dict[str, Any], h0: Any, xs: Any) -> Any:
    h, total, a = h0, 0.0, 0.9 + 0.01 * np.sum(params["w"], axis=0)
    for t in range(xs.shape[0]):
        h = np.tanh(a * h + xs[t])
        total = total + np.sum(h * h)
    return np.sum(h * h) + total


_SCAN_SIZES = {"full": {"S": 16, "T": 1000}, "smoke": {"S": 4, "T": 6}}
_LOWERINGS: tuple[Workload, ...] = (
    Workload("scan_ew", "lax.scan recurrence tanh(a h + x), state {S}, {T} steps, gradient",
             _SCAN_SIZES, rnn_data, _scan_lowerings(_ew_step_scan, _ew_twin)),
    Workload("scan_ys", "lax.scan recurrence tanh(a h + x) with a per-step output "
             "sum(h*h), state {S}, {T} steps, gradient", _SCAN_SIZES, rnn_data,
             _scan_lowerings(_ys_scan, _ys_twin)),
)
#: The lowerings side by side on the existing workloads (added to their variants).
_LOWERING_VARIANTS: dict[str, tuple[Variant, ...]] = {
    "scan": (jax_variant(P.rnn_scan, "jit"),
             *(lowering_variant(P.rnn_scan, t, c, baseline="native/jax/" + t)
               for t in ("jit(grad)", "jit") for c in ("numba", "python")),
             _cached_compile(P.rnn_scan)),
    "loop": (jax_variant(P.loop, "jit"),
             *(lowering_variant(P.loop, t, c, baseline="native/jax/" + t)
               for t in ("jit(grad)", "jit") for c in ("numba", "python"))),
    "elementwise": tuple(lowering_variant(P.elementwise, "jit(grad)", c,
                                          baseline="native/jax/jit(grad)")
                         for c in ("numba", "python")),
    "mlp": tuple(lowering_variant(P.mlp_loss, "jit(grad)", c, baseline="native/jax/jit(grad)")
                 for c in ("numba", "python")),
    "per_example": tuple(lowering_variant(P.example_loss, "jit(vmap(grad))", c,
                                          in_axes=_PER_EXAMPLE_AXES,
                                          baseline="native/autograd/loop of grad")
                         for c in ("numba", "python")),
}
WORKLOADS = tuple(Workload(w.name, w.title, w.sizes, w.make_data,
                           w.variants + _LOWERING_VARIANTS.get(w.name, ()), w.rounds_factor)
                  for w in WORKLOADS) + _LOWERINGS

_NATIVE_LABELS = {
    "numpy/forward": "NumPy forward pass",
    "autograd/grad": "autograd.grad",
    "autograd/loop of grad": "Python loop of autograd.grad",
    "jax/grad": "jax.grad",
    "jax/jit(grad)": "jax.jit(jax.grad)",
    "jax/jit": "jax.jit",
    "jax/vmap(grad)": "jax.vmap(jax.grad)",
    "jax/jit(vmap(grad))": "jax.jit(jax.vmap(jax.grad))",
    "torch/grad": "torch.func.grad",
    "torch/jit(grad)": "torch.compile(torch.func.grad)",
    "torch/vmap(grad)": "torch.func.vmap(torch.func.grad)",
}


def get_workload(name: str) -> Workload:
    """The workload called ``name``.

    Raises:
        KeyError: No such workload; the message lists the valid names.
    """
    for w in WORKLOADS:
        if w.name == name:
            return w
    raise KeyError(f"no benchmark workload {name!r}; choose from "
                   f"{', '.join(w.name for w in WORKLOADS)}")


def _t(id: str, description: str, workload: str, numerator: str, denominator: str, kind: str,
       threshold: float) -> Target:
    return Target(id, description, workload, numerator, denominator, kind, threshold)


_AG, _NP = "native/autograd/grad", "unijax/numpy"

#: The figures quoted by the project, each evaluated from one run.
TARGETS: tuple[Target, ...] = (
    _t("scan_jit_grad_vs_autograd", "1,000-step scan, NumPy jit(grad) >= 10x faster than "
       "autograd.grad of the Python loop", "scan", f"{_NP}/jit(grad)", _AG, "speedup", 10.0),
    _t("scan_jit_grad_vs_jax_jit", "1,000-step scan, NumPy jit(grad) within 3x of "
       "jax.jit(jax.grad) of lax.scan", "scan", f"{_NP}/jit(grad)", "native/jax/jit(grad)",
       "ratio", 3.0),
    *(_t(f"scan_trace_{k}_10000_vs_100", f"{t} of a 10,000-step scan: trace and compile "
         "within 1.2x of a 100-step one", "scan_trace",
         f"unijax/numpy/{t} trace+compile (10,000 steps)",
         f"unijax/numpy/{t} trace+compile (100 steps)", "ratio", 1.2)
      for k, t in (("jit", "jit"), ("jit_grad", "jit(grad)"))),
    _t("checkpoint_peak_memory", "peak memory of grad through 20 checkpointed segments of a "
       "1,000-step chain <= 0.3x without checkpoint", "memory",
       "unijax/numpy/grad(checkpoint) (chain)", "unijax/numpy/grad (chain)", "memory", 0.3),
    *(_t(f"numpy_grad_vs_autograd_{w}", f"NumPy-engine grad <= 0.7x autograd.grad time ({w})",
         w, f"{_NP}/grad", _AG, "ratio", 0.7) for w in ("mlp", "loop", "gp")),
    _t("numpy_grad_vs_forward_mlp", "NumPy-engine grad <= 4x the NumPy forward pass (mlp)",
       "mlp", f"{_NP}/grad", "native/numpy/forward", "ratio", 4.0),
    _t("numpy_grad_peak_memory_mlp", "peak memory of grad on the MLP <= autograd's",
       "memory", f"{_NP}/grad", _AG, "memory", 1.0),
    _t("per_example_vs_autograd_loop", "per-example grads, NumPy vmap(grad) >= 10x faster "
       "than a Python loop of autograd.grad", "per_example", f"{_NP}/vmap(grad)",
       "native/autograd/loop of grad", "speedup", 10.0),
    _t("per_example_vs_jax_jit", "per-example grads, NumPy vmap(grad) within 2x of "
       "jax.jit(jax.vmap(jax.grad))", "per_example", f"{_NP}/vmap(grad)",
       "native/jax/jit(vmap(grad))", "ratio", 2.0),
    _t("per_example_jit_vs_jax_jit", "per-example grads, NumPy jit(vmap(grad)) within 2x of "
       "jax.jit(jax.vmap(jax.grad))", "per_example", f"{_NP}/jit(vmap(grad))",
       "native/jax/jit(vmap(grad))", "ratio", 2.0),
    _t("loop_jit_vs_autograd", "50-step loop, NumPy jit(grad) >= 8x faster than autograd.grad",
       "loop", f"{_NP}/jit(grad)", _AG, "speedup", 8.0),
    _t("loop_jit_vs_eager", "50-step loop, NumPy jit(grad) >= 4x faster than eager grad",
       "loop", f"{_NP}/jit(grad)", f"{_NP}/grad", "speedup", 4.0),
    _t("mlp_jit_vs_jax_jit", "MLP, NumPy jit(grad) within 1.5x of jax.jit(jax.grad)", "mlp",
       f"{_NP}/jit(grad)", "native/jax/jit(grad)", "ratio", 1.5),
    *(_t(f"{w}_numba_jit_grad_vs_jax_jit", f"{desc}, NumPy jit(grad) with Numba within 3x of "
         "jax.jit(jax.grad) of lax.scan", w, f"{_NP}/jit(grad) numba", "native/jax/jit(grad)",
         "ratio", 3.0) for w, desc in (("scan", "1,000-step scan tanh(W h + x)"),
                                       ("scan_ew", "1,000-step elementwise scan"),
                                       ("scan_ys", "1,000-step scan with a per-step output"))),
    _t("scan_numba_cached_compile", "scan jit(grad): staging and loading the Numba machine "
       "code from the disk cache (and one run) under 0.3 s", "scan",
       "unijax/numpy/jit(grad) compile (disk cache)", "native/jax/jit(grad)", "overhead",
       0.3),
    _t("loop_numba_jit_vs_jax_jit", "50-step loop, NumPy jit with Numba within 2x of jax.jit",
       "loop", f"{_NP}/jit numba", "native/jax/jit", "ratio", 2.0),
    _t("elementwise_numba_jit_vs_eager", "10^7 elements, NumPy jit(grad) with Numba >= 2x "
       "faster than eager grad", "elementwise", f"{_NP}/jit(grad) numba", f"{_NP}/grad",
       "speedup", 2.0),
    _t("elementwise_numba_jit_vs_jax_jit", "10^7 elements, NumPy jit(grad) with Numba within "
       "1.3x of jax.jit(jax.grad)", "elementwise", f"{_NP}/jit(grad) numba",
       "native/jax/jit(grad)", "ratio", 1.3),
    _t("mlp_numba_vs_python_lowering", "MLP, NumPy jit(grad) with Numba no slower than with "
       "the Python lowering", "mlp", f"{_NP}/jit(grad) numba", f"{_NP}/jit(grad) python",
       "ratio", 1.0),
    _t("per_example_numba_vs_autograd_loop", "per-example grads, NumPy jit(vmap(grad)) with "
       "Numba >= 15x faster than a Python loop of autograd.grad", "per_example",
       f"{_NP}/jit(vmap(grad)) numba", "native/autograd/loop of grad", "speedup", 15.0),
    _t("jax_jit_overhead_tiny", "unijax.jit on JAX <= 1 us extra per call vs jax.jit (tiny)",
       "tiny", "unijax/jax/jit", "native/jax/jit", "overhead", 1e-6),
    _t("jax_grad_overhead_tiny", "unijax.grad on JAX <= 1 us extra per call vs jax.grad "
       "(tiny)", "tiny", "unijax/jax/grad", "native/jax/grad", "overhead", 1e-6),
    _t("jax_grad_mlp", "unijax.grad on JAX <= 1.05x jax.grad (mlp)", "mlp", "unijax/jax/grad",
       "native/jax/grad", "ratio", 1.05),
    _t("jax_jit_grad_mlp", "unijax.jit(grad) on JAX <= 1.05x jax.jit(jax.grad) (mlp)", "mlp",
       "unijax/jax/jit(grad)", "native/jax/jit(grad)", "ratio", 1.05),
    *(_t(f"autograd_grad_{w}", f"unijax.grad on Autograd <= 1.05x autograd.grad ({w})", w,
         "unijax/autograd/grad", _AG, "ratio", 1.05) for w in ("mlp", "loop", "gp")),
    _t("torch_grad_mlp", "unijax.grad on torch <= 1.05x torch.func.grad (mlp)", "mlp",
       "unijax/torch/grad", "native/torch/grad", "ratio", 1.05),
    _t("torch_grad_overhead_tiny", "unijax.grad on torch <= 1 us extra per call vs "
       "torch.func.grad (tiny)", "tiny", "unijax/torch/grad", "native/torch/grad", "overhead",
       1e-6),
    _t("torch_vmap_grad_per_example", "per-example grads, unijax vmap(grad) on torch <= 1.05x "
       "torch.func.vmap(torch.func.grad)", "per_example", "unijax/torch/vmap(grad)",
       "native/torch/vmap(grad)", "ratio", 1.05),
    *(_t(f"torch_jit_grad_{w}_vs_{n}", f"unijax.jit(grad) on torch vs {label} ({w})", w,
         "unijax/torch/jit(grad)", f"native/torch/{n}", "ratio", limit)
      for w in ("mlp", "loop") for n, label, limit in (
          ("jit(grad)", "torch.compile(torch.func.grad)", 1.5),
          ("grad", "eager torch.func.grad", 1.0))),
    # On the figures of the opt-in "scaling" section (unijax.cli.benchmarks.scaling).
    _t("scaling_memory_flat", "Dask least squares: peak memory per worker at the largest "
       "size <= 1.5x the smallest", "scaling", "peak_mb_largest", "peak_mb_smallest",
       "memory", 1.5),
    _t("scaling_gradient_correct", "Dask least squares: every gradient within 6 standard "
       "errors of its expectation (worst error / allowed)", "scaling", "gradient_error_worst",
       "gradient_error_allowed", "ratio", 1.0),
)
