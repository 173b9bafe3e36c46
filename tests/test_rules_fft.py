"""Rules of the ``fft`` extension, driven by the ``OpSpec`` rows of
``unijax_conformance.specs.fft`` (see ``linalg_fft_checks``); then targeted cases: the
transposes against JAX for every ``norm`` with cropping and padding, single precision,
batching on the transformed axis, argument errors and the sample-frequency constants.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import linalg_fft_checks as lc
import rules_checks as rc
from rules_checks import TRACED, jax, jnp
from unijax_conformance.specs.fft import SPECS

import unijax.engine.core as core
from unijax.engine.ad import jvp_flat, vjp_flat
from unijax.engine.batching import vmap_flat
from unijax.engine.registry import (
    API_FUNCTIONS,
    CREATION_FUNCTIONS,
    batch_rules,
    jvp_rules,
    vjp_rules,
)

IDS = [s.name for s in SPECS]
TRANSFORMS = """
fft ifft fftn ifftn rfft irfft rfftn irfftn hfft ihfft fftshift ifftshift
""".split()
RNG = np.random.default_rng(1)


def test_every_function_is_registered_with_rules() -> None:
    for name in TRANSFORMS:
        assert f"fft.{name}" in API_FUNCTIONS, name
        prim = core.PRIMITIVES[f"fft.{name}"]
        assert prim in batch_rules and prim in jvp_rules and prim in vjp_rules, name
    for name in ("fftfreq", "rfftfreq"):
        assert f"fft.{name}" in CREATION_FUNCTIONS, name


def test_every_function_has_a_spec_row() -> None:
    names = {f"fft.{n}" for n in (*TRANSFORMS, "fftfreq", "rfftfreq")}
    assert names <= {s.function for s in SPECS}
    assert len(IDS) == len(set(IDS))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_values_match_numpy_and_jax(spec: Any) -> None:
    lc.check_values(spec)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_derivatives_match_jax_and_finite_differences(spec: Any) -> None:
    lc.check_derivatives(spec)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_vmap_matches_a_python_loop(spec: Any) -> None:
    lc.check_vmap(spec)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_vmap_of_grad_matches_per_example_grads(spec: Any) -> None:
    lc.check_vmap_of_grad(spec)


JIT = [s for s in SPECS if s.name in ("fft.fft", "fft.rfft", "fft.irfftn#s", "fft.fftshift")]


@pytest.mark.parametrize("spec", JIT, ids=[s.name for s in JIT])
def test_jit_matches_eager(spec: Any) -> None:
    lc.check_jit(spec)


# --- transposes against JAX ----------------------------------------------------------------


def _complex(*shape: int, dtype: Any = np.complex128) -> np.ndarray:
    return (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(dtype)


def _real(*shape: int, dtype: Any = np.float64) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


CASES = [
    (name, norm, kw)
    for norm in ("backward", "ortho", "forward")
    for name, kw in [
        ("fft", {"n": 7}), ("ifft", {"n": 3, "axis": 0}), ("rfft", {"n": 6}),
        ("rfft", {"n": 3, "axis": 0}), ("irfft", {"n": 9}), ("irfft", {"n": 4}),
        ("hfft", {"n": 7}), ("hfft", {"n": 2}), ("ihfft", {"n": 6}), ("ihfft", {"n": 3}),
        ("fftn", {"s": (3, 6)}), ("ifftn", {"axes": (1, 0)}), ("rfftn", {"s": (5, 3)}),
        ("irfftn", {"s": (2, 7)}), ("irfftn", {"s": (6, 4), "axes": (1, 0)}),
    ]
]


@pytest.mark.parametrize("name, norm, kw", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_vjp_and_jvp_match_jax(name: str, norm: str, kw: dict[str, Any]) -> None:
    real_input = name in ("rfft", "rfftn", "ihfft")
    x = _real(4, 5) if real_input else _complex(4, 5)
    kw = dict(kw, norm=norm)
    outs, backward = vjp_flat(lambda xs: [getattr(TRACED.fft, name)(xs[0], **kw)], [x])
    out = np.asarray(outs[0])
    ct = _complex(*out.shape) if np.iscomplexobj(out) else _real(*out.shape)
    t = _real(*x.shape) if real_input else _complex(*x.shape)
    (got,) = backward([ct])
    _, (tangent,) = jvp_flat(lambda xs: [getattr(TRACED.fft, name)(xs[0], **kw)], [x], [t])

    def reference(a: Any, c: Any, d: Any) -> Any:
        f = lambda v: getattr(jnp.fft, name)(v, **kw)  # noqa: E731
        y, pullback = jax.vjp(f, a)
        return y, pullback(c)[0], jax.jvp(f, (a,), (d,))[1]

    ref_out, ref_ct, ref_t = jax.jit(reference)(jnp.asarray(x), jnp.asarray(ct), jnp.asarray(t))
    rc.assert_close([out, got, tangent], [ref_out, ref_ct, ref_t], rtol=1e-10, atol=1e-11)


# --- dtypes, batching, errors, constants ---------------------------------------------------


def test_single_precision_stays_single() -> None:
    x = _real(8, dtype=np.float32)

    def f(xs: list[Any]) -> list[Any]:
        spec = TRACED.fft.rfft(xs[0])
        return [TRACED.sum(TRACED.real(spec * TRACED.conj(spec)))]

    _, backward = vjp_flat(f, [x])
    (g,) = backward([np.asarray(1.0, dtype=np.float32)])
    assert g.dtype == np.float32
    _, backward64 = vjp_flat(f, [x.astype(np.float64)])
    np.testing.assert_allclose(g, backward64([np.asarray(1.0)])[0], rtol=1e-5, atol=1e-5)
    assert np.asarray(TRACED.fft.ifft(_complex(6, dtype=np.complex64))).dtype == np.complex64


@pytest.mark.parametrize("bdim", [0, 1, 2])
def test_vmap_with_the_batch_axis_among_the_transformed_ones(bdim: int) -> None:
    x = _complex(3, 4, 5)
    shape = list(x.shape)
    size = shape.pop(bdim)
    [(out, out_bdim)] = vmap_flat(
        lambda xs: [TRACED.fft.fftn(xs[0], s=(5, 3), axes=(1, 0), norm="ortho")],
        [x], [bdim], size)
    want = np.stack([np.fft.fftn(np.take(x, i, axis=bdim), s=(5, 3), axes=(1, 0),
                                 norm="ortho") for i in range(size)])
    np.testing.assert_allclose(np.moveaxis(out, out_bdim, 0), want)


def test_unknown_norm_is_an_error() -> None:
    with pytest.raises(ValueError, match="norm"):
        TRACED.fft.fft(_complex(4), norm="unitary")


def test_sample_frequencies_are_constants_of_the_backend() -> None:
    np.testing.assert_allclose(TRACED.fft.fftfreq(5, d=0.5), np.fft.fftfreq(5, d=0.5))
    np.testing.assert_allclose(TRACED.fft.rfftfreq(6), np.fft.rfftfreq(6))
    assert TRACED.fft.fftfreq(4, dtype=np.float32).dtype == np.float32


def test_shifts_are_inverse_of_each_other_under_grad() -> None:
    x = _real(5, 4)
    _outs, backward = vjp_flat(lambda xs: [TRACED.fft.fftshift(xs[0], axes=(0, -1))], [x])
    ct = _real(5, 4)
    (g,) = backward([ct])
    np.testing.assert_allclose(g, np.fft.ifftshift(ct, axes=(0, -1)))
