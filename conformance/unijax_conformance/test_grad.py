"""Derivatives: every differentiable row against finite differences and the reference.

* ``check_grads`` compares ``vjp`` (and in the thorough profile ``jvp``) with central
  finite differences, to the row's ``grad_order`` (the ci profile goes beyond first order
  on a fixed share of rows);
* one ``jvp`` and one ``vjp`` give the reference's primal values, satisfy
  ``<vjp(ct), t> == <ct, jvp(t)>`` to rounding (which finite differences cannot resolve),
  and equal the unijax engine on NumPy for the same tangent and cotangent, so a native
  backend (JAX, Autograd) agrees with the engine.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given

import unijax
from unijax.testing import check_grads
from unijax_conformance import _state
from unijax_conformance._support import (
    REFERENCE,
    assert_trees_close,
    data_strategy,
    declared_limits,
    draw_args,
    hypothesis_settings,
    numpy_tree,
    reference,
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
@pytest.mark.unijax_transform("grad")
@hypothesis_settings()
@given(data=data_strategy())
def test_grad_finite_differences(unijax_selected: Any, spec: OpSpec, data: Any) -> None:
    b = unijax_selected
    if not b.modes():
        pytest.skip(f"backend {b.name!r} declares no AD (Capabilities)")
    args = b.convert(draw_args(data, spec))
    modes = tuple(m for m in _state.PROFILES[_state.profile]["fd_modes"] if m in b.modes())
    if not modes:  # a backend with forward mode only
        modes = b.modes()
    with declared_limits(spec, b):
        check_grads(spec_function(spec), args, order=second_order(spec), modes=modes,
                    rtol=spec.grad_rtol, atol=spec.grad_rtol)


def _jvp_and_vjp(fn: Any, primals: tuple[Any, ...], tangents: tuple[Any, ...],
                 cotangents: Any) -> tuple[Any, Any, Any]:
    out, t_out = unijax.jvp(fn, primals, tangents)
    _, pullback = unijax.vjp(fn, *primals)
    return numpy_tree(out), numpy_tree(t_out), numpy_tree(pullback(cotangents))


@pytest.mark.parametrize("spec", DIFFERENTIABLE)
@pytest.mark.unijax_transform("grad")
@hypothesis_settings()
@given(data=data_strategy())
def test_jvp_vjp_match_reference(unijax_selected: Any, spec: OpSpec, data: Any) -> None:
    """One ``jvp`` and one ``vjp`` per example, checked three ways: the primal output
    against the NumPy values, ``<vjp(ct), t> == <ct, jvp(t)>``, and both against the
    unijax engine on NumPy (for every backend but the reference itself)."""
    b = unijax_selected
    _require(b, "fwd")
    _require(b, "rev")
    args = draw_args(data, spec)
    fn = spec_function(spec)
    want_out = reference(spec, args)
    tangents, cotangents = _directions(args, numpy_tree(want_out), seed=len(args))
    with declared_limits(spec, b):
        out, t_out, ct_in = _jvp_and_vjp(fn, b.convert(args), b.convert(tangents),
                                         b.convert(cotangents))
    assert_trees_close(out, want_out, rtol=spec.rtol, atol=spec.atol,
                       what=f"primal output of jvp({spec.name}) on {b.name}")
    lhs = sum(float(np.sum(np.real(c) * t)) for c, t in zip(ct_in, tangents, strict=True))
    rhs = sum(float(np.sum(np.real(np.asarray(c)) * np.real(np.asarray(t))))
              for c, t in zip(unijax.tree.tree_leaves(cotangents),
                              unijax.tree.tree_leaves(t_out), strict=True))
    assert abs(lhs - rhs) <= 1e-8 * max(1.0, abs(lhs), abs(rhs)), (
        f"{spec.name} on {b.name}: <vjp(ct), t> = {lhs!r} but <ct, jvp(t)> = {rhs!r}")
    if b.name == REFERENCE:
        return
    with unijax.use_backend(REFERENCE):
        _, want_t, want_ct = _jvp_and_vjp(fn, args, tangents, cotangents)
    tol = {"rtol": max(10 * spec.rtol, 1e-9), "atol": max(10 * spec.atol, 1e-11)}
    assert_trees_close(t_out, want_t, **tol, what=f"jvp({spec.name}) on {b.name} vs "
                       f"{REFERENCE}")
    assert_trees_close(ct_in, want_ct, **tol, what=f"vjp({spec.name}) on {b.name} vs "
                       f"{REFERENCE}")
