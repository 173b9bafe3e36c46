"""unijax on CuPy against eager CuPy and JAX, on one GPU.

Two workloads, each differentiated with respect to its array inputs:

* ``mlp``: a two-layer tanh MLP with softmax cross-entropy (D=128, H=256, C=10,
  batch 256): launch overhead and small matrix products dominate.
* ``elementwise``: ``sum(exp(-x*x)*sin(x) + 0.5*x)`` over 10**7 elements: memory
  bandwidth dominates, so fusion (one kernel instead of a dozen) is what counts.

Variants, timed in interleaved repetitions (one call of each variant per round, so drift
of clocks and temperature hits all alike), with the device synchronised before and after
every call (``cupy.cuda.Device().synchronize()``, ``block_until_ready``):

* ``unijax.jit(grad)`` on CuPy arrays (staged once, fused CuPy kernels),
* ``unijax.grad`` on CuPy arrays, eager (one CuPy call per operation),
* ``jax.jit(jax.grad)`` on JAX arrays on the same GPU, if JAX sees a GPU.

Run on a GPU machine::

    python benchmarks/bench_cupy.py --json bench_cupy.json

It prints a table of medians (ms) and ratios and writes everything, with the device and
library versions and the fused kernels' names, to the ``--json`` path.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from array_api_compat import array_namespace

import unijax
from unijax import tree_util


def mlp_loss(params: Any, x: Any, y: Any) -> Any:
    w1, b1, w2, b2 = params
    xp = array_namespace(x)
    h = xp.tanh(x @ w1 + b1)
    logits = h @ w2 + b2
    m = xp.max(logits, axis=1, keepdims=True)
    lse = xp.log(xp.sum(xp.exp(logits - m), axis=1, keepdims=True)) + m
    return -xp.mean(xp.sum((logits - lse) * y, axis=1))


def elementwise_loss(x: Any) -> Any:
    xp = array_namespace(x)
    return xp.sum(xp.exp(-x * x) * xp.sin(x) + 0.5 * x)


def workloads(n: int, dtype: str) -> dict[str, tuple[Callable[..., Any], tuple[Any, ...]]]:
    """Host (NumPy) inputs of each workload."""
    rng = np.random.default_rng(0)
    d, h, c, b = 128, 256, 10, 256
    params = [rng.normal(size=(d, h)) / np.sqrt(d), np.zeros(h),
              rng.normal(size=(h, c)) / np.sqrt(h), np.zeros(c)]
    x, y = rng.normal(size=(b, d)), np.eye(c)[rng.integers(0, c, b)]
    mlp_args = tree_util.tree_map(lambda a: a.astype(dtype), (params, x, y))
    big = rng.uniform(-2.0, 2.0, size=n).astype(dtype)
    return {"mlp": (mlp_loss, mlp_args), "elementwise": (elementwise_loss, (big,))}


def variants(fun: Callable[..., Any], host_args: tuple[Any, ...]) -> dict[str, Callable[[], Any]]:
    """Zero-argument callables, each running one variant once and waiting for the device."""
    import cupy

    sync = cupy.cuda.Device().synchronize
    args = tree_util.tree_map(cupy.asarray, host_args)
    jitted = unijax.jit(unijax.grad(fun))
    eager = unijax.grad(fun)

    def run_cupy(f: Callable[..., Any]) -> Callable[[], Any]:
        def call() -> Any:
            out = f(*args)
            sync()
            return out
        return call

    out = {"unijax.jit(grad) cupy": run_cupy(jitted), "unijax.grad cupy (eager)": run_cupy(eager)}
    try:
        import jax

        if jax.default_backend() == "gpu":
            if any(leaf.dtype == np.float64 for leaf in tree_util.tree_leaves(host_args)):
                jax.config.update("jax_enable_x64", True)
            jargs = tree_util.tree_map(jax.numpy.asarray, host_args)
            jgrad = jax.jit(jax.grad(fun))

            def run_jax() -> Any:
                return jax.block_until_ready(jgrad(*jargs))

            out["jax.jit(jax.grad) gpu"] = run_jax
    except ImportError:
        pass
    return out


def to_host(tree: Any) -> list[np.ndarray]:
    return [np.asarray(leaf.get() if hasattr(leaf, "get") else leaf)
            for leaf in tree_util.tree_leaves(tree)]


def measure(name: str, runs: dict[str, Callable[[], Any]], reps: int,
            warmup: int) -> dict[str, Any]:
    results = {k: run() for k, run in runs.items()}  # also compiles everything
    reference = to_host(results["unijax.grad cupy (eager)"])
    for k, value in results.items():  # every variant must compute the same gradient
        for got, want in zip(to_host(value), reference, strict=True):
            scale = float(np.max(np.abs(want))) or 1.0
            err = float(np.max(np.abs(got - want))) / scale
            if err > 1e-3:
                raise AssertionError(f"{name}: {k} differs from eager CuPy by {err:.2e}")
    for _ in range(warmup):
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(reps):
        for k, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - t0)
    medians = {k: statistics.median(v) for k, v in times.items()}
    base = medians["unijax.jit(grad) cupy"]
    return {
        "median_ms": {k: v * 1e3 for k, v in medians.items()},
        "min_ms": {k: min(v) * 1e3 for k, v in times.items()},
        "times_ms": {k: [t * 1e3 for t in v] for k, v in times.items()},
        "ratio_to_unijax_jit": {k: v / base for k, v in medians.items()},
    }


def fused_kernels(fun: Callable[..., Any], host_args: tuple[Any, ...]) -> list[str]:
    """The names of the CuPy kernels ``unijax.jit(grad(fun))`` runs."""
    import cupy
    from unijax_cupy.kernels import generate

    from unijax.engine.jit import make_ir

    args = tree_util.tree_map(cupy.asarray, host_args)
    _, specs, _ = generate(make_ir(unijax.grad(fun))(*args))
    return [f"{s.name} ({s.kind}, {len(s.fused.members) if s.fused else 0} equations)"
            for s in specs]


def environment() -> dict[str, Any]:
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    env = {"gpu": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
           "cupy": cupy.__version__, "numpy": np.__version__, "unijax": unijax.__version__,
           "python": platform.python_version()}
    try:
        import jax

        env["jax"] = jax.__version__
        env["jax_backend"] = jax.default_backend()
    except ImportError:
        env["jax"] = None
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write the results to this path")
    parser.add_argument("--reps", type=int, default=30, help="timed rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds (default 3)")
    parser.add_argument("--size", type=int, default=10**7,
                        help="elements of the elementwise workload (default 10**7)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    opts = parser.parse_args(argv)
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
    except Exception as err:
        print(f"bench_cupy needs CuPy and a CUDA device: {err}", file=sys.stderr)
        return 2
    report: dict[str, Any] = {"environment": environment(), "dtype": opts.dtype,
                              "reps": opts.reps, "workloads": {}}
    for name, (fun, host_args) in workloads(opts.size, opts.dtype).items():
        result = measure(name, variants(fun, host_args), opts.reps, opts.warmup)
        result["kernels"] = fused_kernels(fun, host_args)
        report["workloads"][name] = result
    print(f"device: {report['environment']['gpu']}, dtype {opts.dtype}, "
          f"{opts.reps} interleaved rounds, medians")
    print(f"{'workload':<12} {'variant':<28} {'median ms':>10} {'x jit':>8}")
    for name, result in report["workloads"].items():
        for k, ms in result["median_ms"].items():
            print(f"{name:<12} {k:<28} {ms:>10.3f} {result['ratio_to_unijax_jit'][k]:>8.2f}")
        print(f"{'':<12} kernels: {', '.join(result['kernels'])}")
    if opts.json:
        with open(opts.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
