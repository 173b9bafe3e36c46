"""What unijax adds per call in front of ``torch.func``, resolved to tenths of a µs.

Run: ``python benchmarks/torch_overhead.py [rounds]``.

A call of ``torch.func.grad`` on a tiny input costs tens of microseconds with a spread of
more than one on a shared machine, so ``unijax bench``'s ``tiny`` comparison cannot
resolve a microsecond. As ``dispatch_overhead.py`` does for JAX, this script replaces what
unijax finally calls by a function that returns at once, here one level lower: the
``torch.func`` transforms themselves are stubbed *before* the unijax transforms are built,
so the torch plugin's own adapters (the type checks in front of ``torch.func.grad``) are
part of what is measured. Each unijax transform is called once to warm its caches; then
its calls are compared with a bare call of the same stub, in alternating blocks, and the
median of the paired differences is reported with its quartiles.

Then, unstubbed, ``unijax.grad`` and ``torch.func.grad`` of the benchmark MLP are timed in
alternating blocks of ten calls on the same tensors, and the median ratio is reported:
the ``mlp`` comparison of ``unijax bench``, with pairing tight enough to see through the
load of a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.func

import unijax
from unijax.cli.benchmarks.programs import example_loss, mlp_loss, tiny
from unijax.cli.benchmarks.workloads import get_workload

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from dispatch_overhead import _no_op, paired_overhead_us


def _stub(*args: Any, **kwargs: Any) -> Callable[..., Any]:
    return _no_op


def main(rounds: int = 21) -> None:
    real = torch.func.grad, torch.func.grad_and_value, torch.func.vmap
    torch.func.grad = torch.func.grad_and_value = torch.func.vmap = _stub  # type: ignore[assignment]
    try:
        x, y = (unijax.asarray([0.5, 1.0, 2.0], backend="torch"),
                unijax.asarray([1.0, 2.0, 3.0], backend="torch"))
        params = {k: unijax.asarray(torch.ones(s, dtype=torch.float64), backend="torch")
                  for k, s in (("w1", (3, 4)), ("b1", (4,)), ("w2", (4, 2)), ("b2", (2,)))}
        xs, ys = torch.ones(5, 3, dtype=torch.float64), torch.ones(5, 2, dtype=torch.float64)
        with unijax.use_backend("torch"):
            g = unijax.grad(tiny)
            g(x, y)
            per_example = unijax.vmap(unijax.grad(example_loss), in_axes=(None, 0, 0))
            per_example(params, xs, ys)
            loss = unijax.grad(example_loss)
            loss(params, xs[0], ys[0])
            cases = [("unijax.grad on torch", lambda: g(x, y), lambda: _no_op(x, y)),
                     ("unijax.grad, dict of params", lambda: loss(params, xs[0], ys[0]),
                      lambda: _no_op(params, xs[0], ys[0])),
                     ("unijax.vmap(grad) on torch", lambda: per_example(params, xs, ys),
                      lambda: _no_op(params, xs, ys))]
            print(f"{'transform':28s} {'extra per call':>16s}  [quartiles]  "
                  f"({rounds} paired rounds)")
            for label, call, bare in cases:
                median, q1, q3 = paired_overhead_us(call, bare, rounds)
                print(f"{label:28s} {median:+13.2f} µs  [{q1:+.2f}, {q3:+.2f}]")
    finally:
        torch.func.grad, torch.func.grad_and_value, torch.func.vmap = real
    mlp_ratio(rounds)


def mlp_ratio(rounds: int) -> None:
    """The median time ratio of ``unijax.grad`` to ``torch.func.grad`` on the MLP."""
    mlp = get_workload("mlp")
    params, x, onehot = unijax.tree.tree_map(torch.from_numpy, mlp.make_data(mlp.sizes["full"]))
    native, ours = torch.func.grad(mlp_loss), unijax.grad(mlp_loss, backend="torch")
    ratios = []
    for r in range(rounds):
        times = {}
        for name, fn in ((("ours", ours), ("native", native)) if r % 2 else
                         (("native", native), ("ours", ours))):
            start = time.perf_counter()
            for _ in range(10):
                fn(params, x, onehot)
            times[name] = time.perf_counter() - start
        ratios.append(times["ours"] / times["native"])
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    print(f"{'unijax.grad / torch.func.grad (mlp)':36s} {median:.3f}x  [{q1:.3f}, {q3:.3f}]")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=21,
                        help="paired rounds per comparison (default 21)")
    main(parser.parse_args().rounds)
