"""Chunk sizes: unknown ones are refused with an error that names the fix.

Boolean masking (``x[x > 0]``) and other data-dependent operations give dask arrays whose
chunk sizes, and so shape, are ``nan`` until computed. unijax's transforms need every
shape up front, as JAX's do; rather than derive a wrong shape from ``nan`` they raise
:class:`unijax.errors.ShapeError` and name ``compute_chunk_sizes()``.
"""

from __future__ import annotations

from typing import Any

from unijax.errors import ShapeError, message

__all__ = ["check_known_chunks", "jit_key", "raise_unknown_size"]


def check_known_chunks(x: Any, api: str) -> Any:
    """Return the dask array ``x``, or raise if any of its chunk sizes is unknown.

    Args:
        x: A dask array.
        api: The operation that met ``x``, for the message.

    Raises:
        ShapeError: ``x.shape`` holds ``nan``.

    Example:
        >>> import dask.array as da
        >>> x = da.arange(6, chunks=3)
        >>> check_known_chunks(x, "f").shape
        (6,)
        >>> check_known_chunks(x[x > 2], "f")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unijax.errors.ShapeError: f: a dask array has unknown chunk sizes (shape (nan,))...
        ...compute_chunk_sizes()...
    """
    for n in x.shape:
        if n != n:  # nan, the only value unequal to itself
            raise_unknown_size(api, f"a dask array has unknown chunk sizes (shape "
                                    f"{_shape_text(x.shape)})")
    return x


def raise_unknown_size(api: str, what: str = "a size is unknown (nan)") -> None:
    """Raise the error for unknown chunk sizes met by ``api``.

    Raises:
        ShapeError: Always; the message names ``compute_chunk_sizes()``.
    """
    raise ShapeError(message(
        f"{api}: {what}, as boolean masking or another data-dependent operation leaves "
        "them; unijax's transforms need every shape before they run",
        fix="Compute the sizes first: x.compute_chunk_sizes() (it runs the graph up to "
            "x). Inside a transformed function, keep shapes static: xp.where(mask, x, 0) "
            "instead of x[mask]."))


def _shape_text(shape: tuple[Any, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def jit_key(leaves: Any) -> tuple[Any, ...]:
    """The part of a ``jit`` cache key that a dask signature adds: each array's chunks.

    A program is staged once per shape, dtype, chunking and static arguments; unknown
    chunk sizes are refused here, before they would miss the cache on every call (``nan``
    equals nothing, not even itself).

    Example:
        >>> import dask.array as da
        >>> jit_key([da.ones(4, chunks=2), 1.0])
        (((2, 2),), None)
    """
    key = []
    for leaf in leaves:
        chunks = getattr(leaf, "chunks", None)
        if chunks is not None:
            check_known_chunks(leaf, "jit")
        key.append(chunks)
    return tuple(key)
