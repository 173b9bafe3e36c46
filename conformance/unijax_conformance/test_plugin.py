"""The plugin contract: valid hooks, honest capabilities, lazy imports, usable devices.

What a plugin declares in its :class:`~unijax.extend.Capabilities` must be what the suite
observes: a transform declared native really runs natively (and one not declared runs on
the engine), native ``jit`` really compiles, ``mutable_arrays`` says whether ``x[0] = v``
works (eagerly and under ``grad``), ``x64`` whether float64 computes in float64.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from typing import Any

import numpy as np
import pluggy
from array_api_compat import array_namespace

import unijax
from unijax.dispatch import hookspecs as _hookspecs
from unijax.dispatch.backend import Backend, Capabilities, NativeTransforms
from unijax.engine.core import Tracer
from unijax.testing import to_numpy
from unijax_conformance._support import BackendUnderTest, assert_trees_close


def _entry_point(name: str) -> metadata.EntryPoint:
    for ep in metadata.entry_points(group="unijax.backends"):
        if ep.name == name:
            return ep
    raise AssertionError(f"backend {name!r} has no entry point in group unijax.backends")


def test_plugin_hooks_validate(unijax_backend: BackendUnderTest) -> None:
    b = unijax_backend
    module = _entry_point(b.name).load()
    pm = pluggy.PluginManager(_hookspecs.PROJECT_NAME)
    pm.add_hookspecs(_hookspecs)
    pm.register(module, name=f"conformance-{b.name}")
    pm.check_pending()  # raises on a hook the contract does not know
    backend = pm.hook.unijax_backend()
    assert isinstance(backend, Backend), f"unijax_backend returned {type(backend).__name__}"
    assert backend.name == b.name, f"the entry point {b.name!r} returned {backend.name!r}"
    assert backend.array_modules and all(isinstance(m, str) for m in backend.array_modules)
    assert all(isinstance(m, str) for m in backend.requires)
    assert isinstance(backend.install_hint, str) and backend.install_hint
    assert callable(backend.load_namespace)
    assert isinstance(backend.capabilities, Capabilities)
    unknown = set(backend.capabilities.native) - {f.name for f in
                                                  dataclasses.fields(NativeTransforms)}
    assert not unknown, f"capabilities.native names unknown transforms {sorted(unknown)}"


def test_namespace_is_an_array_api_namespace(unijax_backend: BackendUnderTest) -> None:
    xp = unijax_backend.xp
    assert isinstance(getattr(xp, "__array_api_version__", None), str)
    missing = [name for name in ("asarray", "zeros", "sin", "sum", "matmul", "reshape",
                                 "astype", "where", "__array_namespace_info__")
               if not hasattr(xp, name)]
    assert not missing, f"{unijax_backend.name}'s namespace lacks {missing}"


def test_native_transforms_match_declaration(unijax_backend: BackendUnderTest) -> None:
    b = unijax_backend
    native = b.backend.native_transforms
    provided = {f.name for f in dataclasses.fields(native) if getattr(native, f.name)}
    assert provided == set(b.native), (
        f"{b.name} declares native {sorted(b.native)} but its load_native provides "
        f"{sorted(provided)}")


def _inner_types(kind: str, b: BackendUnderTest) -> list[type]:
    seen: list[type] = []

    def f(x: Any) -> Any:
        seen.append(type(x))
        return array_namespace(x).sum(x * x)

    x = b.asarray(np.array([1.0, 2.0]))
    with unijax.use_backend(b.name):
        if kind in ("grad", "value_and_grad", "jacrev", "jacfwd", "hessian"):
            getattr(unijax, kind)(f)(x)
        elif kind == "jvp":
            unijax.jvp(f, (x,), (x,))
        elif kind == "vjp":
            unijax.vjp(f, x)
        elif kind == "vmap":
            unijax.vmap(f)(b.asarray(np.ones((2, 2))))
        else:
            unijax.jit(f)(x)
    return seen


def test_native_transforms_really_run_natively(unijax_backend: BackendUnderTest) -> None:
    b = unijax_backend
    wrong = []
    for kind in ("grad", "value_and_grad", "jvp", "vjp", "jacfwd", "jacrev", "vmap", "jit"):
        on_engine = any(issubclass(t, Tracer) for t in _inner_types(kind, b))
        if on_engine == (kind in b.native):
            wrong.append(f"{kind} ({'engine' if on_engine else 'native'})")
    assert not wrong, f"{b.name}: these run otherwise than declared: {', '.join(wrong)}"


def test_jit_compiles(unijax_backend: BackendUnderTest) -> None:
    b = unijax_backend
    seen: list[type] = []

    def f(x: Any) -> Any:
        seen.append(type(x))
        return x * 3.0

    x = b.asarray(np.array([1.0, 2.0]))
    jitted = unijax.jit(f)
    with unijax.use_backend(b.name):
        outs = [jitted(x) for _ in range(3)]
    for out in outs:
        assert_trees_close(out, np.array([3.0, 6.0]), rtol=0, atol=0, what="jit result")
    assert len(seen) == 1, f"jit on {b.name} ran the Python function {len(seen)} times"
    assert seen[0] is not type(x), f"jit on {b.name} ran f on concrete arrays: no tracing"
    assert b.backend.capabilities.compiler == (b.backend.compiler is not None), (
        "capabilities.compiler must say whether Backend.compiler is given")


def _mutation_works(b: BackendUnderTest) -> bool:
    x = b.asarray(np.array([1.0, 2.0, 3.0]))
    try:
        x[0] = 5.0
    except (TypeError, ValueError, AttributeError, NotImplementedError):
        return False
    assert float(np.asarray(to_numpy(x))[0]) == 5.0, "x[0] = 5 was ignored"

    def f(v: Any) -> Any:
        y = v * 2.0
        y[0] = 0.0
        return array_namespace(y).sum(y)

    try:
        with unijax.use_backend(b.name):
            g = unijax.grad(f)(b.asarray(np.array([1.0, 2.0, 3.0])))
    except (TypeError, ValueError, AttributeError, NotImplementedError):
        return False
    assert_trees_close(g, np.array([0.0, 2.0, 2.0]), rtol=0, atol=0,
                       what=f"grad through x[0] = v on {b.name}")
    return True


def test_mutable_arrays_as_declared(unijax_backend: BackendUnderTest) -> None:
    b = unijax_backend
    observed = _mutation_works(b)
    declared = b.backend.capabilities.mutable_arrays
    assert observed == declared, (
        f"{b.name} declares mutable_arrays={declared}, but x[0] = v "
        f"{'works' if observed else 'fails'} (eagerly and under grad)")


def test_x64_as_declared(unijax_backend: BackendUnderTest) -> None:
    b = unijax_backend
    why: Exception | None = None
    try:
        x = b.asarray(np.array([1.0]))
        tiny = unijax.jit(lambda v: (v + 1e-12) - v, backend=b.name)(x)
        observed = (str(x.dtype).endswith("float64")
                    and abs(float(np.asarray(to_numpy(tiny))[0]) - 1e-12) < 1e-15)
    except (TypeError, ValueError) as err:
        observed, why = False, err
    assert observed == b.backend.capabilities.x64, (
        f"{b.name} declares x64={b.backend.capabilities.x64}, but float64 "
        f"{'computes in float64' if observed else f'does not compute in float64 ({why})'}")


def test_devices_usable(unijax_backend: BackendUnderTest) -> None:
    b = unijax_backend
    devices = list(b.backend.devices())
    for device in devices or [None]:
        x = unijax.asarray([1.0, 2.0], dtype="float32", backend=b.name, device=device)
        assert b.owns(x), f"an array created on {device!r} is a {type(x).__name__}"
        assert_trees_close(x + 1.0, np.array([2.0, 3.0]), rtol=0, atol=0,
                           what=f"computing on device {device!r} of {b.name}")


_LAZY = textwrap.dedent("""
    import json, sys
    def libraries(backend):
        roots = set(backend.requires) | set(backend.array_modules)
        return sorted(m for m in sys.modules if m.partition(".")[0] in roots)
    import unijax
    from unijax.dispatch.plugins import get_backend, list_backends
    list_backends()  # load every plugin, as recognising an array type does
    backend = get_backend(sys.argv[1])
    before = libraries(backend)
    backend.namespace
    print(json.dumps({"before": before, "after": libraries(backend)}))
""")


def test_plugin_imports_library_lazily(unijax_backend: BackendUnderTest) -> None:
    b = unijax_backend
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIJAX_")}
    done = subprocess.run([sys.executable, "-c", _LAZY, b.name], capture_output=True,
                          text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert not found["before"], (
        f"loading unijax and the {b.name} plugin imported {found['before']}; libraries must "
        "be imported in load_namespace/load_native/devices/version only")
    assert found["after"], f"{b.name}'s namespace loaded none of {b.backend.requires}"
