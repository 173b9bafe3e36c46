"""Pytrees through grad, vmap and jit: dict, list, tuple, namedtuple, a dataclass registered
with ``unijax.tree.register_dataclass`` and a custom node (``register_pytree_node``).

Every container must come back as the same type with the same structure, and
``in_axes``/``out_axes`` work as pytree prefixes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax_conformance._support import assert_trees_close

A = np.array([0.5, -1.0, 2.0])
B = np.array([1.5, 0.25, -0.75])
TOL = {"rtol": 1e-10, "atol": 1e-12}


class Pair(NamedTuple):
    a: Any
    b: Any


@dataclasses.dataclass
class Params:
    a: Any
    b: Any
    label: str = "params"  # metadata: part of the structure, not a leaf


unijax.tree.register_dataclass(Params, data_fields=["a", "b"], meta_fields=["label"])


class Node:
    """A custom pytree node holding two arrays and a static tag."""

    def __init__(self, a: Any, b: Any, tag: str = "node") -> None:
        self.a, self.b, self.tag = a, b, tag


def _unflatten_node(tag: str, children: Any) -> Node:
    a, b = children
    return Node(a, b, tag=tag)


unijax.tree.register_pytree_node(Node, lambda n: ((n.a, n.b), n.tag), _unflatten_node)

# kind -> (build(a, b), unpack(tree) -> (a, b))
KINDS: dict[str, tuple[Callable[[Any, Any], Any], Callable[[Any], tuple[Any, Any]]]] = {
    "dict": (lambda a, b: {"a": a, "b": b}, lambda t: (t["a"], t["b"])),
    "list": (lambda a, b: [a, b], lambda t: (t[0], t[1])),
    "tuple": (lambda a, b: (a, b), lambda t: (t[0], t[1])),
    "namedtuple": (Pair, lambda t: (t.a, t.b)),
    "dataclass": (lambda a, b: Params(a, b, label="custom"), lambda t: (t.a, t.b)),
    "custom_node": (lambda a, b: Node(a, b, tag="custom"), lambda t: (t.a, t.b)),
}


def _check_container(got: Any, like: Any, what: str) -> None:
    assert type(got) is type(like), f"{what}: got a {type(got).__name__}, expected " \
                                    f"{type(like).__name__}"
    got_def, like_def = unijax.tree.tree_structure(got), unijax.tree.tree_structure(like)
    assert got_def == like_def, f"{what}: structure {got_def}, expected {like_def}"


def _loss(unpack: Callable[[Any], tuple[Any, Any]]) -> Callable[[Any], Any]:
    def loss(tree: Any) -> Any:
        a, b = unpack(tree)
        xp = array_namespace(a, b)
        return xp.sum(a**2 * b) + xp.sum(xp.sin(b))

    return loss


@pytest.mark.parametrize("kind", list(KINDS))
def test_pytree_grad(unijax_selected: Any, kind: str) -> None:
    bk = unijax_selected
    build, unpack = KINDS[kind]
    tree = build(bk.asarray(A), bk.asarray(B))
    g = unijax.grad(_loss(unpack))(tree)
    _check_container(g, tree, f"grad over a {kind} on {bk.name}")
    assert_trees_close(unpack(g), (2 * A * B, A**2 + np.cos(B)), **TOL,
                       what=f"grad over a {kind} on {bk.name}")


@pytest.mark.parametrize("kind", list(KINDS))
def test_pytree_vmap(unijax_selected: Any, kind: str) -> None:
    bk = unijax_selected
    build, unpack = KINDS[kind]
    a_batch, b_batch = np.stack([A, 2 * A]), np.stack([B, -B])
    tree = build(bk.asarray(a_batch), bk.asarray(b_batch))

    def swap(t: Any) -> Any:  # returns the same container type
        a, b = unpack(t)
        return build(a * b, b + 1.0)

    out = unijax.vmap(swap)(tree)
    _check_container(out, tree, f"vmap over a {kind} on {bk.name}")
    assert_trees_close(unpack(out), (a_batch * b_batch, b_batch + 1.0), **TOL,
                       what=f"vmap over a {kind} on {bk.name}")


@pytest.mark.parametrize("kind", list(KINDS))
def test_pytree_jit(unijax_selected: Any, kind: str) -> None:
    bk = unijax_selected
    build, unpack = KINDS[kind]
    tree = build(bk.asarray(A), bk.asarray(B))

    def step(t: Any) -> Any:
        a, b = unpack(t)
        return build(a - 0.1 * b, b * 2.0)

    jitted = unijax.jit(step)
    for call in (1, 2):
        out = jitted(tree)
        _check_container(out, tree, f"jit over a {kind} on {bk.name} (call {call})")
        assert_trees_close(unpack(out), (A - 0.1 * B, B * 2.0), **TOL,
                           what=f"jit over a {kind} on {bk.name}")


def test_in_axes_and_out_axes_as_prefixes(unijax_selected: Any) -> None:
    bk = unijax_selected
    a_batch = np.stack([A, 2 * A, -A])
    params = {"a": bk.asarray(a_batch), "b": bk.asarray(B)}

    def f(p: Any, scale: Any) -> Any:
        return {"prod": p["a"] * p["b"] * scale, "shared": p["b"] + 0.0}

    out = unijax.vmap(f, in_axes=({"a": 0, "b": None}, None),
                      out_axes={"prod": 1, "shared": None})(params, bk.asarray(np.asarray(2.0)))
    assert_trees_close(out, {"prod": (a_batch * B * 2.0).T, "shared": B}, **TOL,
                       what=f"vmap with pytree in_axes/out_axes on {bk.name}")


def test_grad_of_nested_pytree(unijax_selected: Any) -> None:
    bk = unijax_selected
    tree = {"layers": [Pair(bk.asarray(A), bk.asarray(B)), (bk.asarray(B),)],
            "meta": None, "params": Params(bk.asarray(A), bk.asarray(A), label="x")}

    def loss(t: Any) -> Any:
        first, (extra,) = t["layers"]
        xp = array_namespace(first.a)
        return xp.sum(first.a * first.b) + xp.sum(extra**2) + xp.sum(t["params"].a * 3.0)

    g = unijax.grad(loss)(tree)
    assert g["meta"] is None and isinstance(g["layers"][0], Pair)
    assert isinstance(g["params"], Params) and g["params"].label == "x"
    assert_trees_close(
        (g["layers"][0].a, g["layers"][0].b, g["layers"][1][0], g["params"].a, g["params"].b),
        (B, A, 2 * B, np.full(3, 3.0), np.zeros(3)), **TOL,
        what=f"grad of a nested pytree on {bk.name}")
