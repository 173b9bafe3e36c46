"""Helpers shared by the suite's test modules: the backend under test, inputs, comparisons.

Inputs are drawn as float64 NumPy arrays from the OpSpec table (``specs``) and converted
to the backend under test with :func:`unijax.asarray`; results come back with
:func:`unijax.testing.to_numpy`. The float64 reference is the spec's function evaluated by
``array_api_compat.numpy``; the reference for derivatives is the unijax engine on NumPy.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra.array_api import make_strategies_namespace

import unijax
from unijax import tree_util
from unijax._dtypes import dtype_name
from unijax.dispatch.backend import _no_devices
from unijax.dispatch.plugins import backend_for_type, get_backend
from unijax.errors import BackendUnavailableError
from unijax.testing import to_numpy
from unijax_conformance import _state
from unijax_conformance._state import REFERENCE
from unijax_conformance.specs import OpSpec, all_specs
from unijax_conformance.specs.indexing import BEYOND_STANDARD

__all__ = [
    "BATCH",
    "REFERENCE",
    "BackendUnderTest",
    "assert_trees_close",
    "declared_limits",
    "draw_args",
    "eager",
    "hypothesis_settings",
    "load_backend",
    "reference",
    "spec_function",
    "spec_params",
    "to_numpy",
]

#: The batch size of every vmap check.
BATCH = 3

XPS = make_strategies_namespace(np)


# --- the backend under test -----------------------------------------------------------------


class BackendUnderTest:
    """The backend a test runs on, with conversions to and from NumPy.

    (A plain class: hypothesis prints failing examples, and a dataclass would be printed
    field by field, the whole Backend included.)

    Attributes:
        name: The backend's name.
        backend: Its :class:`unijax.extend.Backend`.
    """

    def __init__(self, name: str, backend: Any) -> None:
        self.name = name
        self.backend = backend

    @cached_property
    def xp(self) -> Any:
        """The backend's Array API namespace."""
        return self.backend.namespace

    @property
    def native(self) -> frozenset[str]:
        """The transforms the backend runs natively."""
        return frozenset(self.backend.capabilities.native)

    def asarray(self, value: Any, dtype: str | None = None) -> Any:
        """``value`` (NumPy data) as an array of this backend, dtype kept unless given."""
        if dtype is not None:
            value = np.asarray(value, dtype=dtype)
        return unijax.asarray(value, backend=self.name)

    def convert(self, tree: Any) -> Any:
        """Every NumPy leaf of ``tree`` as an array of this backend."""
        return tree_util.tree_map(
            lambda v: self.asarray(v) if isinstance(v, np.ndarray) else v, tree)

    def owns(self, x: Any) -> bool:
        """Whether ``x`` is an array of this backend (by type, as unijax recognises it)."""
        owner = backend_for_type(type(x))
        if owner is not None and owner.name == self.name:
            return True
        # Backends computing on another library's arrays (autograd on NumPy) say so.
        root = type(x).__module__.partition(".")[0]
        return root in self.backend.extras.get("accepts", ()) or (
            self.backend.owns_type(type(x)))

    def __repr__(self) -> str:
        return f"<backend {self.name!r} under test>"

    def modes(self) -> tuple[str, ...]:
        """The AD modes the backend declares (``"fwd"``, ``"rev"``)."""
        caps = self.backend.capabilities
        return tuple(m for m, on in (("fwd", caps.forward_ad), ("rev", caps.reverse_ad)) if on)


def load_backend(name: str) -> BackendUnderTest:
    """The backend called ``name``; skips the test, with the reason, when it cannot run."""
    try:
        backend = get_backend(name)
    except BackendUnavailableError as err:
        pytest.skip(f"backend {name!r} is not available here: {err}")
    try:
        devices = list(backend.devices())
    except Exception as err:  # e.g. CuPy installed on a machine without a CUDA device
        pytest.skip(f"backend {name!r} has no usable device here: {type(err).__name__}: "
                    f"{err}")
    if backend.devices is not _no_devices_default() and not devices:
        pytest.skip(f"backend {name!r} reports no devices here")
    return BackendUnderTest(name, backend)


def _no_devices_default() -> Any:
    return _no_devices


# --- the operation table --------------------------------------------------------------------


def spec_params(predicate: Callable[[OpSpec], bool] = lambda s: True) -> list[Any]:
    """``pytest.param(spec, id=spec.name)`` for every row satisfying ``predicate``."""
    return [pytest.param(s, id=s.name) for s in all_specs() if predicate(s)]


def draw_args(data: Any, spec: OpSpec) -> tuple[np.ndarray, ...]:
    """One input tuple of ``spec`` (float64 NumPy arrays) from hypothesis ``data``."""
    args = data.draw(spec.arrays(XPS), label=spec.name)
    return tuple(np.asarray(a) for a in args)


def spec_function(spec: OpSpec) -> Callable[..., Any]:
    """``spec.fn`` as library code calls it: the namespace comes from the arguments."""
    from array_api_compat import array_namespace

    def f(*xs: Any) -> Any:
        return spec.fn(array_namespace(*xs), *xs)

    f.__name__ = spec.name.replace("#", "_").replace(".", "_")
    return f


def _beyond_standard() -> frozenset[str]:
    return frozenset(BEYOND_STANDARD)


@contextmanager
def declared_limits(spec: OpSpec, b: BackendUnderTest) -> Iterator[None]:
    """Turn a failure the backend is entitled to into a skip that says why.

    Two kinds only: ``x[key] = v`` on a backend declaring ``mutable_arrays=False`` (the
    plugin tests check that declaration), and rows the table marks as indexing beyond the
    standard, which a backend's own arrays may refuse (array-api-strict does).
    """
    try:
        yield
    except (IndexError, TypeError, ValueError, NotImplementedError) as err:
        if spec.function == "__setitem__" and not b.backend.capabilities.mutable_arrays:
            pytest.skip(f"{b.name} declares mutable_arrays=False: {type(err).__name__}: {err}")
        if spec.name in _beyond_standard() and isinstance(err, IndexError | TypeError):
            pytest.skip(f"{b.name}'s arrays refuse indexing beyond the 2024.12 standard "
                        f"({spec.name}): {err}")
        raise


def eager(spec: OpSpec, b: BackendUnderTest, args: Sequence[np.ndarray]) -> Any:
    """``spec.fn`` through the backend's own namespace, on its own arrays."""
    with declared_limits(spec, b):
        return spec.fn(b.xp, *b.convert(args))


def reference(spec: OpSpec, args: Sequence[np.ndarray]) -> Any:
    """The spec's function on NumPy (``array_api_compat.numpy``) at float64."""
    import array_api_compat.numpy as cnp

    return spec.fn(cnp, *args)


def second_order(spec: OpSpec) -> int:
    """The highest derivative order checked for ``spec`` under the active profile.

    A stable hash picks the share of rows that the profile checks beyond first order, so
    the ci profile covers a fixed, spread-out sample and the thorough profile all rows.
    """
    share = _state.PROFILES[_state.profile]["second_order_share"]
    if spec.grad_order <= 1 or share <= 0:
        return 1
    picked = share >= 1 or (zlib.crc32(spec.name.encode()) % 1000) < share * 1000
    return spec.grad_order if picked else 1


_DATABASE: list[Any] = []


def hypothesis_settings(examples_scale: float = 1.0) -> Callable[[Any], Any]:
    """The active profile's hypothesis settings and seed (a decorator).

    The ci profile is reproducible (a fixed seed); the thorough profile draws fresh
    examples and remembers failing ones in memory: the suite runs inside other projects
    and must not write ``.hypothesis/`` there.
    """
    from hypothesis import Phase, seed
    from hypothesis.database import InMemoryExampleDatabase

    if not _DATABASE:
        _DATABASE.append(InMemoryExampleDatabase())
    profile = _state.PROFILES[_state.profile]
    chosen = settings(
        max_examples=max(1, round(profile["max_examples"] * examples_scale)),
        deadline=None,
        database=_DATABASE[0],
        print_blob=False,
        # Shrinking and explaining a failure cost seconds per failing test, on every run
        # of every expected failure; the ci profile reports the example as found.
        phases=(tuple(Phase) if profile["shrink"] else
                (Phase.explicit, Phase.reuse, Phase.generate)),
        # Fixtures are per backend and session-scoped in effect; spec strategies filter.
        suppress_health_check=list(HealthCheck),
    )

    def decorate(test: Any) -> Any:
        test = chosen(test)
        return seed(0)(test) if profile["seeded"] else test

    return decorate


def data_strategy() -> Any:
    """``st.data()``, for tests whose strategy depends on a parametrized spec."""
    return st.data()


# --- comparisons ----------------------------------------------------------------------------


def numpy_tree(tree: Any) -> Any:
    """``tree`` with every array leaf as a NumPy array."""
    return tree_util.tree_map(lambda v: np.asarray(to_numpy(v)), tree)


def assert_trees_close(got: Any, want: Any, *, rtol: float, atol: float, what: str) -> None:
    """Assert two pytrees of arrays agree in structure, shapes and values (NaN == NaN).

    Raises:
        AssertionError: Naming ``what``, the leaf and the largest difference.
    """
    got_leaves, got_def = tree_util.tree_flatten(got)
    want_leaves, want_def = tree_util.tree_flatten(want)
    if len(got_leaves) != len(want_leaves):
        raise AssertionError(f"{what}: got {len(got_leaves)} arrays ({got_def}), expected "
                             f"{len(want_leaves)} ({want_def})")
    for i, (g, w) in enumerate(zip(got_leaves, want_leaves, strict=True)):
        g_np, w_np = np.asarray(to_numpy(g)), np.asarray(to_numpy(w))
        where = f"{what}, output {i}" if len(got_leaves) > 1 else what
        if g_np.shape != w_np.shape:
            raise AssertionError(f"{where}: shape {g_np.shape}, expected {w_np.shape}")
        if g_np.dtype.kind in "biu" and w_np.dtype.kind in "biu":
            if not np.array_equal(g_np, w_np):
                raise AssertionError(f"{where}: got\n{g_np}\nexpected\n{w_np}")
            continue
        np.testing.assert_allclose(g_np, w_np, rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=where)


def dtype_names(tree: Any) -> list[str]:
    """The dtype name of every array leaf (``"float64"``), in leaf order."""
    return [dtype_name(v.dtype) for v in tree_util.tree_leaves(tree)]


def batch_of(data: Any, spec: OpSpec, first: tuple[np.ndarray, ...]) -> list[tuple[Any, ...]]:
    """``BATCH`` input tuples of equal shapes and dtypes, starting with ``first``.

    Later members are fresh draws when they happen to have the same shapes; otherwise
    ``first`` scaled by ``1 + 0.03 k`` (positive factors near one keep most domains: signs,
    intervals around zero, positive definiteness), with integer arrays permuted instead.
    """
    members: list[tuple[Any, ...]] = [first]
    signature = [(a.shape, a.dtype) for a in first]
    rng = np.random.default_rng(len(first))
    for k in range(1, BATCH):
        fresh = draw_args(data, spec)
        if [(a.shape, a.dtype) for a in fresh] == signature:
            members.append(fresh)
            continue
        scaled = []
        for a in first:
            if a.dtype.kind == "f":
                scaled.append(a * (1 + 0.03 * k))
            else:
                scaled.append(rng.permutation(a.ravel()).reshape(a.shape))
        members.append(tuple(scaled))
    return members
