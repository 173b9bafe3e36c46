"""Eager draws on NumPy as one Numba loop: the same bits and floats, without the hundred
full-size temporaries that Threefry's rounds take as array operations.

Used only for NumPy keys outside transforms, for draws of at least ``MIN_SIZE`` elements,
when Numba is installed; every other case (and any failure to compile) takes the Array API
path, which computes the same values. The loops do per element what that path does per
array, in the same order and precision (no fast-math), and ``log1p`` stays NumPy's, so
the two agree bit for bit.
"""

from __future__ import annotations

import functools
from typing import Any

from unijax.random import _erfinv

#: Smaller draws are faster as array operations than through the call into Numba.
MIN_SIZE = 1 << 15


@functools.cache
def _kernels() -> Any:
    """Compile the loops on first use (and cache them on disk), or ``None`` without Numba."""
    try:
        import numba
        import numpy as np
    except ImportError:
        return None
    u32 = np.uint32

    @numba.njit(cache=True, inline="always")
    def rotl(x: Any, r: int) -> Any:
        return u32((x << u32(r)) | (x >> u32(32 - r)))

    @numba.njit(cache=True, inline="always")
    def hash2(k0: Any, k1: Any, x0: Any, x1: Any) -> Any:
        k2 = u32(k0 ^ k1 ^ u32(0x1BD11BDA))
        ks = (k0, k1, k2)
        x0 = u32(x0 + k0)
        x1 = u32(x1 + k1)
        for group in range(5):
            if group % 2 == 0:
                rs = (13, 15, 26, 6)
            else:
                rs = (17, 29, 16, 24)
            for r in rs:
                x0 = u32(x0 + x1)
                x1 = rotl(x1, r)
                x1 = u32(x0 ^ x1)
            x0 = u32(x0 + ks[(group + 1) % 3])
            x1 = u32(x1 + ks[(group + 2) % 3] + u32(group + 1))
        return x0, x1

    @numba.njit(cache=True)
    def words(k0: Any, k1: Any, n: int, out0: Any, out1: Any) -> None:
        for i in range(n):
            y0, y1 = hash2(k0, k1, u32(i >> 32), u32(i & 0xFFFFFFFF))
            out0[i] = y0
            out1[i] = y1

    @numba.njit(cache=True)
    def horner(coefficients: Any, w: float) -> float:
        p = coefficients[0]
        for j in range(1, len(coefficients)):
            p = coefficients[j] + p * w
        return p

    small64 = np.asarray(_erfinv._F64_SMALL)
    middle64 = np.asarray(_erfinv._F64_MIDDLE)
    large64 = np.asarray(_erfinv._F64_LARGE)
    small32 = np.asarray(_erfinv._F32_SMALL, dtype=np.float32)
    large32 = np.asarray(_erfinv._F32_LARGE, dtype=np.float32)

    @numba.njit(cache=True)
    def symmetric64(k0: Any, k1: Any, n: int, out: Any) -> None:
        lo = -1.0 + 2.0**-53
        for i in range(n):
            y0, y1 = hash2(k0, k1, u32(i >> 32), u32(i & 0xFFFFFFFF))
            f = (np.float64(y0) * 2.0**20 + np.float64(y1 >> u32(12))) * 2.0**-52
            out[i] = max(lo, f * 2.0 + lo)  # 1 - lo rounds to 2: no FMA question

    @numba.njit(cache=True)
    def symmetric32(k0: Any, k1: Any, n: int, out: Any) -> None:
        lo = np.float32(-1.0 + 2.0**-24)
        for i in range(n):
            y0, y1 = hash2(k0, k1, u32(i >> 32), u32(i & 0xFFFFFFFF))
            f = np.float32((y0 ^ y1) >> u32(9)) * np.float32(2.0**-23)
            out[i] = max(lo, f * np.float32(2.0) + lo)

    @numba.njit(cache=True)
    def scaled_erfinv64(u: Any, w: Any, s: Any, m: Any, la: Any) -> None:
        sqrt2 = np.sqrt(2.0)
        for i in range(len(u)):
            wi = w[i]
            if wi < 6.25:
                p = horner(s, wi - 3.125)
            elif wi < 16.0:
                p = horner(m, np.sqrt(wi) - 3.25)
            else:
                p = horner(la, np.sqrt(wi) - 5.0)
            u[i] = sqrt2 * (p * u[i])

    @numba.njit(cache=True)
    def scaled_erfinv32(u: Any, w: Any, s: Any, la: Any) -> None:
        sqrt2 = np.float32(np.sqrt(2.0))
        for i in range(len(u)):
            wi = w[i]
            if wi < np.float32(5.0):
                p = horner(s, wi - np.float32(2.5))
            else:
                p = horner(la, np.sqrt(wi) - np.float32(3.0))
            u[i] = sqrt2 * (p * u[i])

    def normal(k0: Any, k1: Any, n: int, out: Any) -> None:
        # log1p is NumPy's own, not the C library's that Numba calls, so that this path
        # and the array path give the same bits.
        if out.dtype == np.float64:
            symmetric64(k0, k1, n, out)
            scaled_erfinv64(out, -np.log1p(-(out * out)), small64, middle64, large64)
        else:
            symmetric32(k0, k1, n, out)
            scaled_erfinv32(out, -np.log1p(-(out * out)), small32, large32)

    return {"words": words, "normal": normal}


def usable(key: Any, size: int) -> bool:
    """Whether a draw of ``size`` elements with ``key`` takes the Numba loop."""
    if size < MIN_SIZE or type(key).__module__ != "numpy" or _kernels() is None:
        return False
    return True


def _key_words(key: Any) -> tuple[Any, Any]:
    import numpy as np

    return np.uint32(key[0]), np.uint32(key[1])


def draw_words(key: Any, shape: tuple[int, ...]) -> tuple[Any, Any]:
    """The two Threefry words of each element, as ``int32`` arrays (the Array API path's
    representation)."""
    import numpy as np

    size = int(np.prod(shape, dtype=np.int64))
    out0, out1 = np.empty(size, np.uint32), np.empty(size, np.uint32)
    _kernels()["words"](*_key_words(key), size, out0, out1)
    return out0.view(np.int32).reshape(shape), out1.view(np.int32).reshape(shape)


def normal(key: Any, shape: tuple[int, ...], dtype: str) -> Any:
    """Standard normal draws in ``float32`` or ``float64``."""
    import numpy as np

    size = int(np.prod(shape, dtype=np.int64))
    out = np.empty(size, np.float64 if dtype == "float64" else np.float32)
    _kernels()["normal"](*_key_words(key), size, out)
    return out.reshape(shape)
