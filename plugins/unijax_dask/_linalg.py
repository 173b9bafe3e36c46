"""The standard's ``linalg`` functions on dask arrays, with NumPy's results.

``array_api_compat.dask.array.linalg`` passes most calls straight to ``dask.array.linalg``,
which differs from the standard in ways that give silently wrong values:

* dask's ``cholesky`` returns the *upper* factor unless asked for ``lower=True``; the
  standard (and NumPy, JAX, torch) returns the lower one, and the engine's gradient rule
  assumes it. ``upper=True`` fails inside array_api_compat.
* dask's ``inv`` computes in float64 whatever the input's dtype.

and it refuses stacks of matrices (which ``vmap``, and the backward pass of a ``scan``,
hand to these functions, and the gradient rules of ``cholesky``, ``inv`` and ``det`` to
``solve``) and lacks ``det``, ``slogdet``, ``eigh`` and ``eigvalsh``. Each
function here maps NumPy's own routine over the matrices of the stack with
``dask.array.apply_gufunc`` (one task per block of the leading axes; each matrix is one
chunk), except where dask has a blocked algorithm for one large 2-D matrix (``cholesky``
of square chunks, ``inv``, ``solve``), which is kept.
"""

from __future__ import annotations

from typing import Any

__all__ = ["linalg_overrides"]


def _stacked(fn: Any, signature: str, *xs: Any, **kwargs: Any) -> Any:
    """NumPy's ``fn`` over the matrices of ``xs`` (last two axes), one task per block."""
    import dask.array as da

    return da.apply_gufunc(fn, signature, *xs, allow_rechunk=True, **kwargs)


def linalg_overrides(results: Any) -> dict[str, Any]:
    """The functions that replace ``array_api_compat.dask.array.linalg``'s.

    Args:
        results: That module, for the standard's named-tuple result types.

    Returns:
        A mapping of function name to function.

    Example:
        >>> import dask.array as da
        >>> import array_api_compat.dask.array as xp
        >>> cholesky = linalg_overrides(xp.linalg)["cholesky"]
        >>> a = da.asarray([[4.0, 2.0], [2.0, 3.0]])
        >>> cholesky(a).compute().round(3).tolist()  # the lower factor, as NumPy's
        [[2.0, 0.0], [1.0, 1.414]]
    """
    import dask.array as da
    import numpy as np

    def _matrix_t(x: Any) -> Any:
        return da.swapaxes(x, -1, -2)

    def cholesky(x: Any, /, *, upper: bool = False) -> Any:
        if x.ndim == 2 and x.chunks[0] == x.chunks[1]:
            factor = da.linalg.cholesky(x, lower=True)
        else:
            factor = _stacked(np.linalg.cholesky, "(i,j)->(i,j)", x, output_dtypes=x.dtype)
        if upper:
            factor = _matrix_t(factor)
            if np.issubdtype(x.dtype, np.complexfloating):
                factor = da.conj(factor)
        return factor

    def inv(x: Any, /) -> Any:
        if x.ndim == 2 and (len(x.chunks[0]) > 1 or len(x.chunks[1]) > 1):
            # dask's blocked inverse computes in float64: cast back to the input's dtype.
            return da.linalg.inv(x).astype(x.dtype, copy=False)
        return _stacked(np.linalg.inv, "(i,j)->(i,j)", x, output_dtypes=x.dtype)

    def det(x: Any, /) -> Any:
        return _stacked(np.linalg.det, "(i,j)->()", x, output_dtypes=x.dtype)

    def slogdet(x: Any, /) -> Any:
        real = np.empty((), dtype=x.dtype).real.dtype
        sign, logabsdet = _stacked(np.linalg.slogdet, "(i,j)->(),()", x,
                                   output_dtypes=(x.dtype, real))
        return results.SlogdetResult(sign, logabsdet)

    def eigh(x: Any, /) -> Any:
        real = np.empty((), dtype=x.dtype).real.dtype
        w, v = _stacked(np.linalg.eigh, "(i,j)->(i),(i,j)", x, output_dtypes=(real, x.dtype))
        return results.EighResult(w, v)

    def eigvalsh(x: Any, /) -> Any:
        real = np.empty((), dtype=x.dtype).real.dtype
        return _stacked(np.linalg.eigvalsh, "(i,j)->(i)", x, output_dtypes=real)

    def solve(x1: Any, x2: Any, /) -> Any:
        if x1.ndim == 2 and x2.ndim <= 2:
            return da.linalg.solve(x1, x2)
        dtype = np.result_type(x1.dtype, x2.dtype)
        signature = "(i,j),(j)->(i)" if x2.ndim == 1 else "(i,j),(j,k)->(i,k)"
        return _stacked(np.linalg.solve, signature, x1, x2, output_dtypes=dtype)

    return {"cholesky": cholesky, "inv": inv, "det": det, "slogdet": slogdet,
            "eigh": eigh, "eigvalsh": eigvalsh, "solve": solve}
