"""Pytrees: nested containers whose leaves are arrays, with JAX's semantics.

Built on optree in the namespace ``"unijax"``. Containers are ``tuple``, ``list``,
``dict``, ``namedtuple``, ``OrderedDict``, ``defaultdict``, ``deque``, classes registered
with :func:`register_pytree_node` and dataclasses registered with
:func:`register_dataclass`. ``None`` is a container with no children, not a leaf (as in
``jax.tree_util``).

Every registration is also made with ``jax.tree_util`` when JAX is imported, and replayed
when the JAX backend loads, so one registration works with unijax and JAX transforms.

Example:
    >>> from unijax import tree_util
    >>> leaves, treedef = tree_util.tree_flatten({"b": (1, None), "a": [2.0, 3.0]})
    >>> leaves  # dict leaves in sorted key order, as in JAX
    [2.0, 3.0, 1]
    >>> tree_util.tree_unflatten(treedef, [x * 10 for x in leaves]) == {
    ...     "a": [20.0, 30.0], "b": (10, None)}
    True
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, overload

import optree

__all__ = [
    "PyTreeDef",
    "broadcast_prefix",
    "register_dataclass",
    "register_pytree_node",
    "tree_flatten",
    "tree_leaves",
    "tree_map",
    "tree_structure",
    "tree_unflatten",
]

NAMESPACE = "unijax"
PyTreeDef = optree.PyTreeSpec

T = TypeVar("T")
IsLeaf = Callable[[Any], bool] | None

# (cls, flatten, unflatten) in registration order, replayed into jax.tree_util.
_REGISTERED: list[tuple[type, Callable[..., Any], Callable[..., Any]]] = []
_IN_JAX: set[type] = set()
_lock = threading.Lock()


def tree_flatten(tree: Any, is_leaf: IsLeaf = None) -> tuple[list[Any], PyTreeDef]:
    """Flatten a pytree into its leaves and its structure.

    Args:
        tree: A pytree.
        is_leaf: Optional predicate; a subtree for which it is true is taken as a leaf.

    Returns:
        ``(leaves, treedef)``; leaves in the order of keys (sorted for dicts).

    Example:
        >>> tree_flatten((1, {"x": 2}))[0]
        [1, 2]
    """
    return optree.tree_flatten(tree, is_leaf, none_is_leaf=False, namespace=NAMESPACE)


def tree_unflatten(treedef: PyTreeDef, leaves: Iterable[Any]) -> Any:
    """Rebuild a pytree of structure ``treedef`` from ``leaves``.

    Example:
        >>> _, treedef = tree_flatten([1, (2, 3)])
        >>> tree_unflatten(treedef, "abc")
        ['a', ('b', 'c')]
    """
    return optree.tree_unflatten(treedef, leaves)


def tree_leaves(tree: Any, is_leaf: IsLeaf = None) -> list[Any]:
    """The leaves of ``tree``, in flattening order.

    Example:
        >>> tree_leaves([1, None, (2,)])
        [1, 2]
    """
    return optree.tree_leaves(tree, is_leaf, none_is_leaf=False, namespace=NAMESPACE)


def tree_structure(tree: Any, is_leaf: IsLeaf = None) -> PyTreeDef:
    """The structure of ``tree`` (compare with ``==``; ``.num_leaves`` counts leaves).

    Example:
        >>> tree_structure((1, [2, 3])).num_leaves
        3
    """
    return optree.tree_structure(tree, is_leaf, none_is_leaf=False, namespace=NAMESPACE)


def tree_map(f: Callable[..., Any], tree: Any, *rest: Any, is_leaf: IsLeaf = None) -> Any:
    """Apply ``f`` to the leaves of ``tree`` (and the matching leaves of ``rest``).

    Args:
        f: Called as ``f(leaf, *matching_leaves_of_rest)``.
        tree: The pytree whose structure the result has.
        *rest: Pytrees with ``tree``'s structure (or with it as a prefix).
        is_leaf: Optional predicate marking subtrees as leaves.

    Example:
        >>> tree_map(lambda a, b: a + b, {"x": 1, "y": (2,)}, {"x": 10, "y": (20,)})
        {'x': 11, 'y': (22,)}
    """
    return optree.tree_map(f, tree, *rest, is_leaf=is_leaf, none_is_leaf=False,
                           namespace=NAMESPACE)


def broadcast_prefix(prefix: Any, full: Any, is_leaf: IsLeaf = None) -> list[Any]:
    """Repeat each leaf of ``prefix`` once per leaf of the matching subtree of ``full``.

    This is how ``in_axes=(0, None)``-style arguments are matched to arguments.

    Args:
        prefix: A pytree whose structure is a prefix of ``full``'s.
        full: The full pytree.
        is_leaf: Optional predicate for ``prefix`` (``lambda x: x is None`` makes ``None``
            a leaf, as ``in_axes`` needs).

    Returns:
        A list with one entry per leaf of ``full``.

    Raises:
        ValueError: ``prefix`` is not a prefix of ``full``.

    Example:
        >>> broadcast_prefix((0, 1), ([10, 20], {"a": 30}))
        [0, 0, 1]
    """
    result: list[Any] = []

    def add(x: Any, subtree: Any) -> None:
        result.extend([x] * tree_structure(subtree).num_leaves)

    # None inside `full` (below a prefix leaf) has no leaves, so it contributes nothing.
    tree_map(add, prefix, full, is_leaf=is_leaf)
    return result


def register_pytree_node(cls: type, flatten: Callable[[Any], tuple[Iterable[Any], Any]],
                         unflatten: Callable[[Any, Iterable[Any]], Any]) -> None:
    """Register ``cls`` as a pytree container (same convention as ``jax.tree_util``).

    Args:
        cls: The container type.
        flatten: ``flatten(x) -> (children, aux_data)``; ``aux_data`` is hashable
            metadata kept in the tree structure.
        unflatten: ``unflatten(aux_data, children) -> x``.

    Raises:
        ValueError: ``cls`` is already registered.

    Example:
        >>> class Pair:
        ...     def __init__(self, a, b):
        ...         self.a, self.b = a, b
        >>> register_pytree_node(Pair, lambda p: ((p.a, p.b), None),
        ...                      lambda _, ch: Pair(*ch))
        >>> tree_leaves(Pair(1, [2, 3]))
        [1, 2, 3]
    """
    optree.register_pytree_node(cls, flatten, lambda aux, ch: unflatten(aux, ch),
                                namespace=NAMESPACE)
    with _lock:
        _REGISTERED.append((cls, flatten, unflatten))
    if "jax" in sys.modules:
        _register_with_jax(cls, flatten, unflatten)


@overload
def register_dataclass(cls: type[T], data_fields: Sequence[str] | None = None,
                       meta_fields: Sequence[str] | None = None) -> type[T]: ...
@overload
def register_dataclass(cls: None = None, data_fields: Sequence[str] | None = None,
                       meta_fields: Sequence[str] | None = None
                       ) -> Callable[[type[T]], type[T]]: ...


def register_dataclass(cls: type[T] | None = None, data_fields: Sequence[str] | None = None,
                       meta_fields: Sequence[str] | None = None) -> Any:
    """Register a dataclass as a pytree: data fields are children, meta fields metadata.

    Usable as ``@register_dataclass`` or ``register_dataclass(cls, data_fields=...,
    meta_fields=...)``. Without field lists, fields declared with
    ``dataclasses.field(metadata={"static": True})`` are metadata, the rest data (as in
    ``jax.tree_util.register_dataclass``).

    Returns:
        ``cls`` itself, so it can decorate.

    Raises:
        TypeError: ``cls`` is not a dataclass, or the fields named do not cover its
            ``__init__`` fields.

    Example:
        >>> import dataclasses
        >>> @register_dataclass
        ... @dataclasses.dataclass
        ... class Params:
        ...     w: float
        ...     name: str = dataclasses.field(default="p", metadata={"static": True})
        >>> tree_leaves(Params(w=1.5))
        [1.5]
    """
    if cls is None:
        return lambda c: register_dataclass(c, data_fields, meta_fields)
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"register_dataclass expects a dataclass, got {cls!r}")
    fields = [f for f in dataclasses.fields(cls) if f.init]
    if data_fields is None and meta_fields is None:
        meta = [f.name for f in fields if f.metadata.get("static", False)]
        data = [f.name for f in fields if not f.metadata.get("static", False)]
    else:
        data, meta = list(data_fields or ()), list(meta_fields or ())
        missing = {f.name for f in fields} - set(data) - set(meta)
        if missing:
            raise TypeError(f"register_dataclass({cls.__name__}): init fields "
                            f"{sorted(missing)} are neither data_fields nor meta_fields")

    def flatten(x: Any) -> tuple[list[Any], tuple[Any, ...]]:
        return [getattr(x, n) for n in data], tuple(getattr(x, n) for n in meta)

    def unflatten(aux: tuple[Any, ...], children: Iterable[Any]) -> Any:
        kwargs = dict(zip(data, children, strict=True))
        kwargs.update(zip(meta, aux, strict=True))
        return cls(**kwargs)

    register_pytree_node(cls, flatten, unflatten)
    return cls


# --- the bridge to jax.tree_util -----------------------------------------------------------


def _register_with_jax(cls: type, flatten: Callable[..., Any],
                       unflatten: Callable[..., Any]) -> None:
    with _lock:
        if cls in _IN_JAX:
            return
        import jax.tree_util

        try:
            jax.tree_util.register_pytree_node(cls, flatten, unflatten)
        except ValueError:
            pass  # registered with JAX directly by the user: theirs stands
        _IN_JAX.add(cls)


def _replay_into_jax() -> None:
    """Register every unijax pytree with ``jax.tree_util`` (called by the JAX plugin)."""
    for cls, flatten, unflatten in list(_REGISTERED):
        _register_with_jax(cls, flatten, unflatten)
