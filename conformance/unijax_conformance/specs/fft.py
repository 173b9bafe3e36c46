"""OpSpec rows for the ``fft`` extension.

Complex inputs are built inside ``fn`` from two float64 arrays (real and imaginary
parts), and complex outputs are returned as their real and imaginary parts, so every
derivative check sees real functions of real arrays and covers both parts. Rows cover
``n``/``s`` that crop and that pad, explicit and negative ``axes``, and every ``norm``.
Every transform is linear, so any finite input is in its domain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from unijax_conformance.specs import OpSpec

__all__ = ["SPECS"]

ANY: dict[str, Any] = {"min_value": -3.0, "max_value": 3.0, "allow_nan": False,
                       "allow_infinity": False}


def arrays(count: int, *, min_dims: int = 1, max_dims: int = 3,
           min_side: int = 1) -> Callable[[Any], Any]:
    """``count`` float64 arrays of one random shape."""

    def strategy(xps: Any) -> Any:
        shapes = xps.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                                  max_side=4)
        return shapes.flatmap(lambda s: st.tuples(
            *(xps.arrays("float64", s, elements=ANY) for _ in range(count))))

    return strategy


REAL_OUT = ("irfft", "irfftn", "hfft")


def _complex(xp: Any, re: Any, im: Any) -> Any:
    i = xp.asarray(1j, dtype=xp.complex128)
    return xp.astype(re, xp.complex128) + xp.astype(im, xp.complex128) * i


def _parts(xp: Any, z: Any) -> tuple[Any, Any]:
    return xp.real(z), xp.imag(z)


def complex_in(name: str, **kw: Any) -> Callable[..., Any]:
    """``fft.name`` of a complex input; complex outputs split into parts."""

    def fn(xp: Any, re: Any, im: Any) -> Any:
        out = getattr(xp.fft, name)(_complex(xp, re, im), **kw)
        return out if name in REAL_OUT else _parts(xp, out)

    return fn


def real_in(name: str, **kw: Any) -> Callable[..., Any]:
    """``fft.name`` of a real input; complex outputs split into parts."""

    def fn(xp: Any, x: Any) -> Any:
        out = getattr(xp.fft, name)(x, **kw)
        return out if name in REAL_OUT else _parts(xp, out)

    return fn


def row(name: str, fn: Callable[..., Any], strategy: Callable[[Any], Any],
        **options: Any) -> OpSpec:
    return OpSpec(name, fn, strategy, **options)


C1, C2 = arrays(2), arrays(2, min_dims=2)
R1, R2 = arrays(1), arrays(1, min_dims=2)
# irfft/hfft default to n = 2 (m - 1), which needs m >= 2 along the transformed axis.
C1_HALF = arrays(2, min_side=2)
C2_HALF = arrays(2, min_dims=2, min_side=2)

SPECS: list[OpSpec] = [
    row("fft.fft", complex_in("fft"), C1),
    row("fft.fft#pad", complex_in("fft", n=5), C1),
    row("fft.fft#crop-axis", complex_in("fft", n=2, axis=0, norm="ortho"), C1),
    row("fft.ifft", complex_in("ifft"), C1),
    row("fft.ifft#forward", complex_in("ifft", n=3, axis=-1, norm="forward"), C1),
    row("fft.fftn", complex_in("fftn"), C1),
    row("fft.fftn#s", complex_in("fftn", s=(3, 5), axes=(0, -1), norm="ortho"), C2),
    row("fft.ifftn", complex_in("ifftn"), C1),
    row("fft.ifftn#axes", complex_in("ifftn", axes=(-1,), norm="forward"), C2),
    row("fft.rfft", real_in("rfft"), R1),
    row("fft.rfft#odd", real_in("rfft", n=5, axis=0, norm="ortho"), R1),
    row("fft.rfft#crop", real_in("rfft", n=2, norm="forward"), R1),
    row("fft.irfft", complex_in("irfft"), C1_HALF),
    row("fft.irfft#odd", complex_in("irfft", n=5, axis=0), C1),
    row("fft.irfft#ortho", complex_in("irfft", n=4, norm="ortho"), C1),
    row("fft.irfft#forward", complex_in("irfft", n=3, norm="forward"), C1),
    row("fft.rfftn", real_in("rfftn"), R1),
    row("fft.rfftn#s", real_in("rfftn", s=(2, 5), axes=(-1, 0), norm="ortho"), R2),
    row("fft.irfftn", complex_in("irfftn"), C1_HALF),
    row("fft.irfftn#s", complex_in("irfftn", s=(3, 5), axes=(0, 1), norm="forward"), C2),
    row("fft.irfftn#axes", complex_in("irfftn", axes=(0,)), C2_HALF),
    row("fft.hfft", complex_in("hfft"), C1_HALF),
    row("fft.hfft#odd", complex_in("hfft", n=5, norm="ortho"), C1),
    row("fft.hfft#forward", complex_in("hfft", n=4, axis=0, norm="forward"), C1),
    row("fft.ihfft", real_in("ihfft"), R1),
    row("fft.ihfft#n", real_in("ihfft", n=5, axis=0, norm="forward"), R1),
    row("fft.ihfft#ortho", real_in("ihfft", n=2, norm="ortho"), R1),
    row("fft.fftshift", lambda xp, x: xp.fft.fftshift(x), R1),
    row("fft.fftshift#axes", lambda xp, x: xp.fft.fftshift(x, axes=(0,)), R1),
    row("fft.ifftshift", lambda xp, x: xp.fft.ifftshift(x), R1),
    row("fft.ifftshift#axes", lambda xp, x: xp.fft.ifftshift(x, axes=-1), R1),
    row("fft.fftfreq",
        lambda xp, x: x * xp.fft.fftfreq(x.shape[-1], d=0.5, dtype=x.dtype), R1),
    row("fft.rfftfreq",
        lambda xp, x: x * xp.fft.rfftfreq(2 * x.shape[-1] - 1, dtype=x.dtype), R1),
]
