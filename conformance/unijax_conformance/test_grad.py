"""Derivatives: every differentiable row against finite differences and the reference.

* ``check_grads`` compares ``jvp`` and ``vjp`` with central finite differences, to the
  row's ``grad_order`` (the ci profile goes beyond first order on a fixed share of rows);
* the same tangent and cotangent give the same ``jvp`` and ``vjp`` as the unijax engine
  on NumPy (the reference), so a native backend (JAX, Autograd) agrees with the engine;
* ``<vjp(ct), t> == <ct, jvp(t)>`` to rounding, which finite differences cannot resolve.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given

import unijax
from unijax.testing import check_grads
from unijax_conformance._support import (
    REFERENCE,
    assert_trees_close,
    data_strategy,
    draw_args,
    hypothesis_settings,
    numpy_tree,
    second_order,
    spec_function,
    spec_params,
)
from unijax_conformance.specs import OpSpec

DIFFERENTIABLE = spec_params(lambda s: s.grad)


def _directions(args: tuple[np.ndarray, ...], out: Any, seed: int) -> tuple[Any, Any]:
    """A random tangent per input and cotangent per output (float64 NumPy)."""
    rng = np.random.default_rng(seed)
    tangents = tuple(rng.standard_normal(a.shape) for a in args)
    cotangents = unijax.tree.tree_map(
        lambda o: rng.standard_normal(np.shape(o)).astype(np.asarray(o).dtype), out)
    return tangents, cotangents


def _require(b: Any, mode: str) -> None:
    if mode not in b.modes():
        pytest.skip(f"backend {b.name!r} declares no {'forward' if mode == 'fwd' else 'reverse'}"
                    "-mode AD (Capabilities)")


@pytest.mark.parametrize("spec", DIFFERENTIABLE)
@hypothesis_settings()
@given(data=data_strategy())
def test_grad_finite_differences(unijax_selected: Any, spec: OpSpec, data: Any) -> None:
    b = unijax_selected
    if not b.modes():
        pytest.skip(f"backend {b.name!r} declares no AD (Capabilities)")
    args = b.convert(draw_args(data, spec))
    check_grads(spec_function(spec), args, order=second_order(spec), modes=b.modes(),
                rtol=spec.grad_rtol, atol=spec.grad_rtol)


def _jvp_and_vjp(fn: Any, primals: tuple[Any, ...], tangents: tuple[Any, ...],
                 cotangents: Any) -> tuple[Any, Any]:
    _, t_out = unijax.jvp(fn, primals, tangents)
    _, pullback = unijax.vjp(fn, *primals)
    return numpy_tree(t_out), numpy_tree(pullback(cotangents))


@pytest.mark.unijax_not_reference
@pytest.mark.parametrize("spec", DIFFERENTIABLE)
@hypothesis_settings()
@given(data=data_strategy())
def test_grad_matches_reference(unijax_selected: Any, spec: OpSpec, data: Any) -> None:
    b = unijax_selected
    _require(b, "fwd")
    _require(b, "rev")
    args = draw_args(data, spec)
    fn = spec_function(spec)
    out = spec.fn(b.xp, *b.convert(args))
    tangents, cotangents = _directions(args, numpy_tree(out), seed=len(args))
    got = _jvp_and_vjp(fn, b.convert(args), b.convert(tangents), b.convert(cotangents))
    with unijax.use_backend(REFERENCE):
        want = _jvp_and_vjp(fn, args, tangents, cotangents)
    tol = {"rtol": max(10 * spec.rtol, 1e-9), "atol": max(10 * spec.atol, 1e-11)}
    assert_trees_close(got[0], want[0], **tol, what=f"jvp({spec.name}) on {b.name} vs "
                       f"{REFERENCE}")
    assert_trees_close(got[1], want[1], **tol, what=f"vjp({spec.name}) on {b.name} vs "
                       f"{REFERENCE}")


@pytest.mark.parametrize("spec", DIFFERENTIABLE)
@hypothesis_settings()
@given(data=data_strategy())
def test_jvp_vjp_transpose(unijax_selected: Any, spec: OpSpec, data: Any) -> None:
    b = unijax_selected
    _require(b, "fwd")
    _require(b, "rev")
    args = draw_args(data, spec)
    primals = b.convert(args)
    out = numpy_tree(spec.fn(b.xp, *primals))
    tangents, cotangents = _directions(args, out, seed=7)
    t_out, ct_in = _jvp_and_vjp(spec_function(spec), primals, b.convert(tangents),
                                b.convert(cotangents))
    lhs = sum(float(np.sum(np.real(c) * t)) for c, t in zip(ct_in, tangents, strict=True))
    rhs = sum(float(np.sum(np.real(np.asarray(c)) * np.real(np.asarray(t))))
              for c, t in zip(unijax.tree.tree_leaves(cotangents),
                              unijax.tree.tree_leaves(t_out), strict=True))
    scale = max(1.0, abs(lhs), abs(rhs))
    assert abs(lhs - rhs) <= 1e-8 * scale, (
        f"{spec.name} on {b.name}: <vjp(ct), t> = {lhs!r} but <ct, jvp(t)> = {rhs!r}")
