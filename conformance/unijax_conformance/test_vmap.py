"""vmap: every row batched, against stacking over a Python loop.

Three ways of batching; the thorough profile runs each row in all three, the ci profile
in one (a stable hash of the row's name picks it, spreading the three over the table):

``axis0`` maps every argument and output along axis 0; ``last`` along the last axis
(negative ``in_axes``/``out_axes``); ``mixed`` maps only the first argument (the others
are shared: ``in_axes=(0, None, ...)``), or for one argument maps axis 1, and puts the
batch axis at position 1 of the outputs where they have one.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given

from unijax import tree_util
from unijax.testing import check_vmap
from unijax_conformance import _state
from unijax_conformance._support import (
    batch_of,
    data_strategy,
    declared_limits,
    draw_args,
    hypothesis_settings,
    reference,
    spec_function,
    spec_params,
)
from unijax_conformance.specs import OpSpec

VARIANTS = ("axis0", "last", "mixed")


def _batched(members: list[tuple[np.ndarray, ...]], variant: str,
             out_ndim: int) -> tuple[tuple[np.ndarray, ...], Any, Any]:
    """The batched arguments, ``in_axes`` and ``out_axes`` of one variant."""
    columns = list(zip(*members, strict=True))
    if variant == "axis0":
        return tuple(np.stack(c) for c in columns), 0, 0
    if variant == "last":
        return tuple(np.stack(c, axis=-1) for c in columns), -1, -1
    out_axis = min(1, out_ndim)
    if len(columns) > 1:
        args = (np.stack(columns[0]), *(c[0] for c in columns[1:]))
        return args, (0, *([None] * (len(columns) - 1))), out_axis
    axis = min(1, columns[0][0].ndim)
    return (np.stack(columns[0], axis=axis),), (axis,), out_axis


def _cases() -> list[Any]:
    """Every row with every variant (thorough), or with one, chosen by a stable hash of the
    row's name so that the variants are spread evenly over the table (ci)."""
    cases = []
    for param in spec_params(lambda s: s.vmap):
        (spec,) = param.values
        chosen = VARIANTS if _state.profile == "thorough" else (
            VARIANTS[zlib.crc32(spec.name.encode()) % len(VARIANTS)],)
        cases += [pytest.param(spec, v, id=f"{spec.name}-{v}") for v in chosen]
    return cases


@pytest.mark.parametrize(("spec", "variant"), _cases())
@pytest.mark.unijax_transform("vmap")
@hypothesis_settings()
@given(data=data_strategy())
def test_vmap_matches_loop(unijax_selected: Any, spec: OpSpec, variant: str, data: Any) -> None:
    b = unijax_selected
    first = draw_args(data, spec)
    members = batch_of(data, spec, first)
    out_ndim = min((np.ndim(o) for o in _leaves(reference(spec, first))), default=0)
    args, in_axes, out_axes = _batched(members, variant, out_ndim)
    with declared_limits(spec, b):
        check_vmap(spec_function(spec), b.convert(args), in_axes=in_axes, out_axes=out_axes,
                   rtol=spec.rtol, atol=spec.atol)


def _leaves(tree: Any) -> list[Any]:
    return tree_util.tree_leaves(tree)
