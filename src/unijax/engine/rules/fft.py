"""The ``fft`` extension: discrete Fourier transforms, their derivatives and batching.

Every transform is linear (over the reals), so its JVP applies the same transform to the
tangent. VJPs follow JAX's convention, the transpose (not the adjoint) of the linear
map: the DFT matrix is symmetric, so the transpose of ``fft`` is ``fft`` itself with the
same ``norm``; ``rfft`` is a complex FFT keeping the first ``n // 2 + 1`` outputs, whose
transpose zero-pads the cotangent (``fft``'s own ``n`` does that) and keeps the real part;
``irfft``'s transpose is an ``rfft`` whose entries standing for two conjugate-symmetric
terms count twice (JAX's mask), conjugated. When ``n``/``s`` crops or pads the input,
the transpose pads or crops the cotangent back.

Batching only renumbers the transformed axes around the mapped one; nothing moves.
``fftfreq``/``rfftfreq`` make constants, so they run on the concrete backend.
"""

from __future__ import annotations

from typing import Any

from unijax.engine.core import Primitive
from unijax.engine.registry import def_api, def_batch, def_creation, def_jvp, def_vjp
from unijax.engine.rules._helpers import ndim_of, ops, shape_of, unbroadcast
from unijax.engine.rules._linalg_helpers import constant

__all__ = [
    "fft",
    "fftn",
    "fftshift",
    "hfft",
    "ifft",
    "ifftn",
    "ifftshift",
    "ihfft",
    "irfft",
    "irfftn",
    "rfft",
    "rfftn",
]

_NORMS = ("backward", "ortho", "forward")
_SWAP = {"backward": "forward", "ortho": "ortho", "forward": "backward"}

# --- primitives and their canonical parameters ----------------------------------------------

_ONE_AXIS = ("fft", "ifft", "rfft", "irfft", "hfft", "ihfft")
_MANY_AXES = ("fftn", "ifftn", "rfftn", "irfftn")
PRIMS: dict[str, Primitive] = {
    name: Primitive(name, namespace="fft") for name in (*_ONE_AXIS, *_MANY_AXES)
}


def _check_norm(name: str, norm: str) -> str:
    if norm not in _NORMS:
        raise ValueError(f"fft.{name}: norm must be one of {_NORMS}, got {norm!r}")
    return norm


def _half_input(name: str) -> bool:
    """Whether the input's last transformed axis holds only ``n // 2 + 1`` entries."""
    return name in ("irfft", "irfftn", "hfft")


def _bind_one(name: str, x: Any, n: int | None, axis: int, norm: str) -> Any:
    nd = ndim_of(x)
    axis = axis + nd if axis < 0 else axis
    if n is None:
        m = shape_of(x)[axis]
        n = 2 * (m - 1) if _half_input(name) else m
    return PRIMS[name].bind(x, n=int(n), axis=axis, norm=_check_norm(name, norm))


def _bind_many(name: str, x: Any, s: Any, axes: Any, norm: str) -> Any:
    nd = ndim_of(x)
    if axes is None:
        axes = tuple(range(nd)) if s is None else tuple(range(nd - len(s), nd))
    axes = tuple(a + nd if a < 0 else a for a in axes)
    shape = shape_of(x)
    sizes = [shape[a] for a in axes] if s is None else list(s)
    for i, a in enumerate(axes):
        if s is None or sizes[i] == -1:
            sizes[i] = shape[a]
            if i == len(axes) - 1 and _half_input(name):
                sizes[i] = 2 * (shape[a] - 1)
    return PRIMS[name].bind(x, s=tuple(int(d) for d in sizes), axes=axes,
                            norm=_check_norm(name, norm))


def _geometry(params: dict[str, Any]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(sizes, axes)`` of either parameter form."""
    if "axis" in params:
        return (params["n"],), (params["axis"],)
    return params["s"], params["axes"]


def _transform(name: str, x: Any, sizes: tuple[int, ...], axes: tuple[int, ...],
               norm: str) -> Any:
    """Bind transform ``name`` (``"fft"``, ``"rfft"``, ...) over ``axes`` in its own form."""
    if name in _ONE_AXIS:
        return PRIMS[name].bind(x, n=sizes[0], axis=axes[0], norm=norm)
    return PRIMS[name].bind(x, s=sizes, axes=axes, norm=norm)


# --- the traced-namespace functions -------------------------------------------------------


@def_api("fft", "fft")
def fft(x: Any, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Any:
    """One-dimensional discrete Fourier transform along ``axis`` (cropped/padded to n)."""
    return _bind_one("fft", x, n, axis, norm)


@def_api("ifft", "fft")
def ifft(x: Any, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Any:
    """One-dimensional inverse discrete Fourier transform along ``axis``."""
    return _bind_one("ifft", x, n, axis, norm)


@def_api("rfft", "fft")
def rfft(x: Any, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Any:
    """Fourier transform of real input: the ``n // 2 + 1`` non-negative frequencies."""
    return _bind_one("rfft", x, n, axis, norm)


@def_api("irfft", "fft")
def irfft(x: Any, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Any:
    """Inverse of :func:`rfft`: real output of length ``n`` (default ``2 * (m - 1)``)."""
    return _bind_one("irfft", x, n, axis, norm)


@def_api("hfft", "fft")
def hfft(x: Any, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Any:
    """Fourier transform of a Hermitian-symmetric signal given by its first half."""
    return _bind_one("hfft", x, n, axis, norm)


@def_api("ihfft", "fft")
def ihfft(x: Any, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Any:
    """Inverse of :func:`hfft`: the first half of the spectrum of a real signal."""
    return _bind_one("ihfft", x, n, axis, norm)


@def_api("fftn", "fft")
def fftn(x: Any, /, *, s: Any = None, axes: Any = None, norm: str = "backward") -> Any:
    """N-dimensional discrete Fourier transform over ``axes`` (sizes ``s``)."""
    return _bind_many("fftn", x, s, axes, norm)


@def_api("ifftn", "fft")
def ifftn(x: Any, /, *, s: Any = None, axes: Any = None, norm: str = "backward") -> Any:
    """N-dimensional inverse discrete Fourier transform over ``axes``."""
    return _bind_many("ifftn", x, s, axes, norm)


@def_api("rfftn", "fft")
def rfftn(x: Any, /, *, s: Any = None, axes: Any = None, norm: str = "backward") -> Any:
    """N-dimensional transform of real input (last axis halved)."""
    return _bind_many("rfftn", x, s, axes, norm)


@def_api("irfftn", "fft")
def irfftn(x: Any, /, *, s: Any = None, axes: Any = None, norm: str = "backward") -> Any:
    """Inverse of :func:`rfftn`: real output of sizes ``s``."""
    return _bind_many("irfftn", x, s, axes, norm)


# --- derivatives --------------------------------------------------------------------------


def _fit(x: Any, axes: tuple[int, ...], sizes: tuple[int, ...]) -> Any:
    """Crop or zero-pad ``x`` along ``axes`` to ``sizes`` (the transpose of the reverse)."""
    for axis, size in zip(axes, sizes, strict=True):
        shape = shape_of(x)
        have = shape[axis]
        if have > size:
            x = x[(*(slice(None),) * axis, slice(0, size), Ellipsis)]
        elif have < size:
            pad = (*shape[:axis], size - have, *shape[axis + 1:])
            x = ops.concat([x, _zeros(x, pad)], axis=axis)
    return x


def _zeros(like: Any, shape: tuple[int, ...]) -> Any:
    return constant(like, lambda xp: xp.zeros(shape))


def _twice_mask(like: Any, n: int, axis: int) -> Any:
    """Weights of the ``n // 2 + 1`` half-spectrum entries: 2 for the paired frequencies."""
    half = n // 2 + 1
    trailing = (1,) * (ndim_of(like) - 1 - axis)

    def make(xp: Any) -> Any:
        idx = xp.arange(half)
        single = (idx == 0) | (idx == n // 2) if n % 2 == 0 else idx == 0
        return xp.reshape(2.0 - xp.astype(single, xp.float64), (half, *trailing))

    return constant(like, make)


def _transpose(name: str, ct: Any, sizes: tuple[int, ...], axes: tuple[int, ...],
               norm: str) -> Any:
    """The transpose of transform ``name`` applied to ``ct`` (before cropping/padding)."""
    one = name in _ONE_AXIS
    if name in ("fft", "ifft", "fftn", "ifftn"):
        return _transform(name, ct, sizes, axes, norm)
    if name in ("rfft", "rfftn"):
        return ops.real(_transform("fft" if one else "fftn", ct, sizes, axes, norm))
    if name in ("irfft", "irfftn"):
        spec = _transform("rfft" if one else "rfftn", ct, sizes, axes, _SWAP[norm])
        return ops.conj(ops.multiply(spec, _twice_mask(spec, sizes[-1], axes[-1])))
    if name == "hfft":  # hfft(x) = irfft(conj(x)) with the swapped norm
        spec = _transform("rfft", ct, sizes, axes, norm)
        return ops.multiply(spec, _twice_mask(spec, sizes[-1], axes[-1]))
    # ihfft(x) = conj(rfft(x)) with the swapped norm
    return ops.real(_transform("fft", ops.conj(ct), sizes, axes, _SWAP[norm]))


def _register(name: str) -> None:
    prim = PRIMS[name]

    @def_jvp(prim)
    def jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], **params: Any) -> Any:
        return prim.bind(primals[0], **params), prim.bind(tangents[0], **params)

    @def_vjp(prim)
    def vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, **params: Any) -> Any:
        x = primals[0]
        sizes, axes = _geometry(params)
        ct_x = _transpose(name, ct, sizes, axes, params["norm"])
        ct_x = _fit(ct_x, axes, tuple(shape_of(x)[a] for a in axes))
        return (unbroadcast(ct_x, x),)

    @def_batch(prim)
    def batch(args: tuple[Any, ...], bdims: tuple[Any, ...], **params: Any) -> Any:
        (x,), (b,) = args, bdims
        if "axis" in params:
            params["axis"] += int(params["axis"] >= b)
        else:
            params["axes"] = tuple(a + (a >= b) for a in params["axes"])
        return prim.bind(x, **params), b


for _name in PRIMS:
    _register(_name)


# --- shifts -------------------------------------------------------------------------------

fftshift_p = Primitive("fftshift", namespace="fft")
ifftshift_p = Primitive("ifftshift", namespace="fft")


def _shift_axes(x: Any, axes: Any) -> tuple[int, ...]:
    nd = ndim_of(x)
    if axes is None:
        return tuple(range(nd))
    items = (axes,) if isinstance(axes, int) else tuple(axes)
    return tuple(a + nd if a < 0 else a for a in items)


@def_api("fftshift", "fft")
def fftshift(x: Any, /, *, axes: int | tuple[int, ...] | None = None) -> Any:
    """Move the zero frequency to the centre of ``axes`` (all axes by default)."""
    return fftshift_p.bind(x, axes=_shift_axes(x, axes))


@def_api("ifftshift", "fft")
def ifftshift(x: Any, /, *, axes: int | tuple[int, ...] | None = None) -> Any:
    """Inverse of :func:`fftshift`."""
    return ifftshift_p.bind(x, axes=_shift_axes(x, axes))


def _register_shift(prim: Primitive, inverse: Primitive) -> None:
    @def_jvp(prim)
    def jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, axes: Any) -> Any:
        return prim.bind(primals[0], axes=axes), prim.bind(tangents[0], axes=axes)

    @def_vjp(prim)
    def vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axes: Any) -> Any:
        return (inverse.bind(ct, axes=axes),)

    @def_batch(prim)
    def batch(args: tuple[Any, ...], bdims: tuple[Any, ...], *, axes: Any) -> Any:
        b = bdims[0]
        return prim.bind(args[0], axes=tuple(a + (a >= b) for a in axes)), b


_register_shift(fftshift_p, ifftshift_p)
_register_shift(ifftshift_p, fftshift_p)


# --- sample frequencies (constants) --------------------------------------------------------


def _freq(name: str) -> None:
    @def_creation(name, "fft")
    def make(xp: Any, n: int, /, *, d: float = 1.0, dtype: Any = None,
             device: Any = None) -> Any:
        extra = {k: v for k, v in (("dtype", dtype), ("device", device)) if v is not None}
        return getattr(xp.fft, name)(n, d=d, **extra)

    make.__name__ = make.__qualname__ = name
    make.__doc__ = f"``fft.{name}`` of the backend: sample frequencies (not traced)."


_freq("fftfreq")
_freq("rfftfreq")
