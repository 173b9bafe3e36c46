"""Pytrees with jax.tree_util's semantics, and the bridge to jax.tree_util."""

from __future__ import annotations

import collections
import dataclasses
import subprocess
import sys
import textwrap
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from unijax import tree_util as tu
from unijax.dispatch import options as _config
from unijax.dispatch import plugins as _plugins
from unijax.dispatch.selection import prepare_call


class Point(NamedTuple):
    x: Any
    y: Any


class Pair:
    """A custom container registered with unijax (and so with JAX)."""

    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b


tu.register_pytree_node(Pair, lambda p: ((p.a, p.b), "pair-meta"),
                        lambda meta, children: Pair(*children))


@tu.register_dataclass
@dataclasses.dataclass
class Params:
    w: Any
    b: Any
    name: str = dataclasses.field(default="layer", metadata={"static": True})


@dataclasses.dataclass
class Explicit:
    data: Any
    meta: int


tu.register_dataclass(Explicit, data_fields=["data"], meta_fields=["meta"])


class JaxOnly:
    """Equinox/Flax style: registered with jax.tree_util only."""

    def __init__(self, w: Any) -> None:
        self.w = w


jax.tree_util.register_pytree_node(JaxOnly, lambda m: ((m.w,), None),
                                   lambda _, children: JaxOnly(*children))


@pytest.fixture(autouse=True)
def jax_backend_loaded():
    _config._reset()
    assert _plugins.get_backend("jax").namespace is jnp  # replays into jax.tree_util


TREES = [
    1,
    None,
    [1, None, (2, 3)],
    {"b": 1, "a": [2, {"c": 3}]},
    Point(1, (2, None)),
    collections.OrderedDict([("z", 1), ("a", 2)]),
    collections.defaultdict(list, {"k": [1, 2]}),
    Pair(1, [2, 3]),
    Params(w=1, b=(2, 3)),
    Explicit(data=[1, 2], meta=7),
    {"p": Pair(Params(1, 2), None), "q": [Explicit(3, 0)]},
]


@pytest.mark.parametrize("tree", TREES, ids=range(len(TREES)))
def test_flatten_matches_jax_tree_util(tree):
    leaves, treedef = tu.tree_flatten(tree)
    jax_leaves, jax_treedef = jax.tree_util.tree_flatten(tree)
    assert leaves == jax_leaves
    assert treedef.num_leaves == jax_treedef.num_leaves
    rebuilt = tu.tree_unflatten(treedef, leaves)
    assert tu.tree_structure(rebuilt) == treedef
    assert jax.tree_util.tree_structure(rebuilt) == jax_treedef


def test_none_is_an_empty_node_not_a_leaf():
    assert tu.tree_leaves([None, 1, None]) == [1]
    assert tu.tree_map(lambda x: x * 2, {"a": None, "b": 2}) == {"a": None, "b": 4}
    assert tu.tree_structure(None).num_leaves == 0


def test_custom_node_keeps_aux_data():
    treedef = tu.tree_structure(Pair(1, 2))
    rebuilt = tu.tree_unflatten(treedef, [10, 20])
    assert isinstance(rebuilt, Pair) and (rebuilt.a, rebuilt.b) == (10, 20)


def test_dataclass_static_fields_are_metadata():
    p = Params(w=np.ones(2), b=3.0, name="dense")
    leaves, treedef = tu.tree_flatten(p)
    assert len(leaves) == 2
    rebuilt = tu.tree_unflatten(treedef, [1, 2])
    assert rebuilt == Params(w=1, b=2, name="dense")
    assert tu.tree_structure(Params(1, 2, "a")) != tu.tree_structure(Params(1, 2, "b"))


def test_register_dataclass_rejects_non_dataclass_and_missing_fields():
    with pytest.raises(TypeError, match="expects a dataclass"):
        tu.register_dataclass(Pair)

    @dataclasses.dataclass
    class Partial:
        a: int
        b: int

    with pytest.raises(TypeError, match=r"\['b'\] are neither"):
        tu.register_dataclass(Partial, data_fields=["a"])


def test_register_twice_raises():
    with pytest.raises(ValueError):
        tu.register_pytree_node(Pair, lambda p: ((), None), lambda m, c: Pair(0, 0))


def test_tree_map_over_several_trees():
    out = tu.tree_map(lambda a, b: a + b, {"x": 1, "y": (2, 3)}, {"x": 10, "y": (20, 30)})
    assert out == {"x": 11, "y": (22, 33)}


def test_broadcast_prefix_repeats_prefix_leaves():
    assert tu.broadcast_prefix((0, 1), ([10, 20], {"a": 30})) == [0, 0, 1]
    assert tu.broadcast_prefix(0, {"a": [1, 2], "b": 3}) == [0, 0, 0]
    axes = tu.broadcast_prefix((0, None), (np.ones(2), [1, 2]), is_leaf=lambda x: x is None)
    assert axes == [0, None, None]
    with pytest.raises(ValueError):
        tu.broadcast_prefix((0, 1, 2), (1, 2))


leaf_values = st.integers() | st.floats(allow_nan=False) | st.none()
trees = st.recursive(
    leaf_values,
    lambda children: st.lists(children, max_size=3)
    | st.tuples(children, children)
    | st.dictionaries(st.text("abc", min_size=1, max_size=2), children, max_size=3)
    | st.builds(Point, children, children)
    | st.builds(Pair, children, children),
    max_leaves=12,
)


@given(trees)
def test_flatten_unflatten_round_trips_like_jax(tree):
    leaves, treedef = tu.tree_flatten(tree)
    assert leaves == jax.tree_util.tree_leaves(tree)
    assert tu.tree_structure(tu.tree_unflatten(treedef, leaves)) == treedef
    assert len(tu.broadcast_prefix(0, tree)) == len(leaves)


# --- the bridge to JAX ------------------------------------------------------------------


def test_registered_classes_work_under_jax_transforms():
    def loss(tree):
        p, pair = tree["params"], tree["pair"]
        return jnp.sum(p.w * 2.0) + p.b + pair.a * pair.b

    tree = {"params": Params(w=jnp.ones(3), b=1.0), "pair": Pair(2.0, 3.0)}
    grads = jax.grad(loss)(tree)
    assert isinstance(grads["params"], Params) and isinstance(grads["pair"], Pair)
    np.testing.assert_allclose(grads["params"].w, 2.0 * np.ones(3))
    assert (float(grads["pair"].a), float(grads["pair"].b)) == (3.0, 2.0)


def test_jax_only_class_passes_through_jax_native_transforms():
    model = JaxOnly(jnp.arange(3.0))
    backend, use_engine, args = prepare_call((model,), "jax", "grad(loss)")
    assert backend.name == "jax" and not use_engine and args[0] is model
    grad = backend.native_transforms.grad(lambda m: jnp.sum(m.w ** 2))(*args)
    assert isinstance(grad, JaxOnly)
    np.testing.assert_allclose(grad.w, 2.0 * np.arange(3.0))


def test_registrations_made_before_jax_are_replayed_when_the_plugin_loads():
    code = """
        import sys
        from unijax import tree_util
        class Box:
            def __init__(self, v):
                self.v = v
        tree_util.register_pytree_node(Box, lambda b: ((b.v,), None), lambda _, c: Box(*c))
        assert "jax" not in sys.modules
        from unijax.dispatch.plugins import get_backend
        get_backend("jax").namespace
        import jax
        print(jax.tree_util.tree_leaves([Box(1), Box(2)]))
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[1, 2]"


def test_registration_after_jax_import_reaches_jax_at_once():
    class Late:
        def __init__(self, v: Any) -> None:
            self.v = v

    tu.register_pytree_node(Late, lambda b: ((b.v,), None), lambda _, c: Late(*c))
    assert jax.tree_util.tree_leaves(Late(5)) == [5]
    tu._replay_into_jax()  # idempotent
    assert jax.tree_util.tree_leaves(Late(6)) == [6]
