"""Plugin discovery through real entry points, lazy loading, validation and its errors."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import unijax
from unijax.dispatch import backend as _backend
from unijax.dispatch import options as _config
from unijax.dispatch import plugins as _plugins
from unijax.errors import (
    BackendUnavailableError,
    PluginError,
    PluginValidationError,
    UnknownBackendError,
)
from unijax.extend import Backend, Capabilities, NativeTransforms, hookimpl, register_plugin

HEADER = "from unijax.extend import Backend, hookimpl\n"


pytestmark = pytest.mark.usefixtures("clean_plugins")


@pytest.fixture
def make_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                 ) -> Callable[[dict[str, str], dict[str, str]], Path]:
    """Install a distribution with ``unijax.backends`` entry points into a temp dir."""
    written: list[str] = []

    def make(entries: dict[str, str], modules: dict[str, str]) -> Path:
        root = tmp_path / "site"
        info = root / "unijax_test_plugins-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: unijax-test-plugins\nVersion: 1.0\n")
        lines = ["[unijax.backends]", *(f"{k} = {v}" for k, v in entries.items())]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for name, source in modules.items():
            (root / f"{name}.py").write_text(source)
            written.append(name)
        monkeypatch.syspath_prepend(str(root))
        _plugins._reset()
        return root

    yield make
    for name in written:
        sys.modules.pop(name, None)


def state() -> tuple[list[str], list[str], list[str]]:
    """Everything a failed load must leave untouched."""
    manager = _plugins._get()
    return (sorted(manager._backends), sorted(n for n, _ in manager._pm.list_name_plugin()),
            sorted(vars(manager._pm.hook)))


GOOD = HEADER + """
class ToyArray:
    pass

@hookimpl
def unijax_backend():
    return Backend("toy", ("unijax_test_toy",), (), "pip install toy", lambda: "toy-xp")
"""


# --- discovery and lazy loading -----------------------------------------------------------


def test_get_backend_loads_only_that_plugin():
    code = """
        import sys, unijax
        from unijax.dispatch.plugins import get_backend
        backend = get_backend("numpy")
        loaded = sorted(m for m in sys.modules if m.startswith("unijax_"))
        libs = [m for m in ("numpy", "jax", "autograd", "array_api_strict") if m in sys.modules]
        print(backend.name, loaded, libs)
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "numpy ['unijax_numpy'] []"


def test_plugin_modules_import_no_array_library():
    code = """
        import sys
        for name in ("unijax_numpy", "unijax_jax", "unijax_autograd", "unijax_cupy",
                     "unijax_array_api_strict"):
            module = __import__(name)
            assert module.unijax_backend().name in name
        print([m for m in ("numpy", "jax", "autograd", "cupy", "array_api_strict")
               if m in sys.modules])
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_third_party_entry_point_is_discovered(make_plugins):
    make_plugins({"toy": "unijax_test_toy"}, {"unijax_test_toy": GOOD})
    backend = _plugins.get_backend("toy")
    assert backend.name == "toy"
    assert backend.plugin == "unijax_test_toy"
    assert backend.namespace == "toy-xp"
    toy_type = sys.modules["unijax_test_toy"].ToyArray
    assert _plugins.backend_for_type(toy_type) is backend


def test_backend_for_type_finds_each_installed_backend():
    import array_api_strict
    import autograd
    import jax.numpy as jnp

    assert _plugins.backend_for_type(np.ndarray).name == "numpy"
    assert _plugins.backend_for_type(np.float64).name == "numpy"
    assert _plugins.backend_for_type(type(jnp.ones(2))).name == "jax"
    assert _plugins.backend_for_type(type(array_api_strict.ones(2))).name == "array_api_strict"
    boxes = []
    autograd.grad(lambda x: boxes.append(type(x)) or x * 2.0)(1.0)
    assert _plugins.backend_for_type(boxes[0]).name == "autograd"
    assert _plugins.backend_for_type(float) is None
    assert _plugins.backend_for_type(list) is None


def test_namespace_for_type_numpy_is_array_api_compat():
    import array_api_compat.numpy

    assert _plugins.namespace_for_type(np.ndarray) is array_api_compat.numpy
    assert _plugins.namespace_for_type(str) is None


def test_list_backends_reports_every_builtin_plugin():
    infos = {info.name: info for info in _plugins.list_backends()}
    assert {"numpy", "jax", "autograd", "cupy", "array_api_strict", "torch", "dask"} <= set(infos)
    assert infos["numpy"].available and infos["numpy"].distribution.startswith("unijax ")
    assert infos["numpy"].backend.capabilities.native == frozenset()
    assert infos["jax"].backend.capabilities.native == frozenset(
        NativeTransforms.__dataclass_fields__)
    assert infos["autograd"].backend.capabilities.native == {
        "grad", "value_and_grad", "vjp", "jacrev", "custom_vjp", "custom_jvp", "stop_gradient",
        "lax"}


def test_loading_is_thread_safe():
    barrier = threading.Barrier(16)
    results: list[Backend] = []

    def load() -> None:
        barrier.wait()
        results.append(_plugins.get_backend("jax"))

    threads = [threading.Thread(target=load) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16 and all(r is results[0] for r in results)
    assert [n for n, _ in _plugins._get()._pm.list_name_plugin()] == ["jax"]


SLOW_PLUGIN = HEADER + """
import unijax_test_gate

unijax_test_gate.started.set()
unijax_test_gate.release.wait(10)

@hookimpl
def unijax_backend():
    return Backend("slowpl", ("unijax_test_slowpl",), (), "", lambda: None)
"""


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """Events a test plugin's module waits on while it is imported."""
    module = types.ModuleType("unijax_test_gate")
    module.started = threading.Event()
    module.release = threading.Event()
    monkeypatch.setitem(sys.modules, "unijax_test_gate", module)
    yield module
    module.release.set()


@pytest.mark.parametrize("explicit", [True, False])
def test_a_call_on_a_loaded_backend_never_waits_for_another_plugin_import(
        make_plugins, gate, explicit):
    make_plugins({"slowpl": "unijax_test_slowpl"}, {"unijax_test_slowpl": SLOW_PLUGIN})
    _plugins.get_backend("numpy").namespace  # noqa: B018  (NumPy is loaded, nothing else)
    slow = threading.Thread(target=lambda: _plugins.get_backend("slowpl"), daemon=True)
    slow.start()
    assert gate.started.wait(10)
    results: list[object] = []
    grad = unijax.grad(lambda x: x * x, backend="numpy" if explicit else None)
    caller = threading.Thread(target=lambda: results.append(grad(np.asarray(1.5))),
                              daemon=True)
    caller.start()
    caller.join(5)
    done_while_importing = bool(results) and slow.is_alive()
    gate.release.set()
    slow.join(10)
    caller.join(10)
    assert done_while_importing
    np.testing.assert_allclose(results[0], 3.0)
    assert _plugins.get_backend("slowpl").name == "slowpl"


def test_a_type_lookup_needing_every_plugin_waits_for_a_slow_import(make_plugins, gate):
    # An array type no loaded backend is named after may belong to the plugin still
    # importing: that lookup waits for it (and then finds the right owner).
    make_plugins({"slowpl": "unijax_test_slowpl"}, {"unijax_test_slowpl": SLOW_PLUGIN})
    slow = threading.Thread(target=lambda: _plugins.get_backend("slowpl"), daemon=True)
    slow.start()
    assert gate.started.wait(10)
    owner_type = type("SlowArray", (), {"__module__": "unijax_test_slowpl"})
    found: list[object] = []
    lookup = threading.Thread(target=lambda: found.append(
        _plugins.backend_for_type(owner_type)), daemon=True)
    lookup.start()
    lookup.join(0.3)
    assert not found
    gate.release.set()
    lookup.join(10)
    slow.join(10)
    assert found == [_plugins.get_backend("slowpl")]


IMPOSTOR = HEADER + """
@hookimpl
def unijax_backend():
    return Backend("numpy", ("numpy",), ("numpy",), "pip install numpy", lambda: "impostor-xp")
"""


def test_third_party_entry_point_named_like_a_builtin_is_reported_and_ignored(make_plugins):
    make_plugins({"numpy": "unijax_test_impostor"}, {"unijax_test_impostor": IMPOSTOR})
    with pytest.warns(RuntimeWarning) as caught:
        backend = _plugins.get_backend("numpy")
    assert backend.plugin == "unijax_numpy"  # the built-in stays
    assert backend.namespace is not None and backend.namespace != "impostor-xp"
    text = str(caught[0].message)
    assert "'numpy'" in text and "unijax 0.1.0" in text
    assert "unijax-test-plugins 1.0" in text and "unijax_test_impostor" in text
    assert "UNIJAX_PLUGINS='numpy=unijax-test-plugins'" in text
    assert "unijax_test_impostor" not in sys.modules  # never imported


def test_plugins_option_picks_the_distribution_of_a_duplicated_name(make_plugins,
                                                                     monkeypatch):
    make_plugins({"numpy": "unijax_test_impostor"}, {"unijax_test_impostor": IMPOSTOR})
    monkeypatch.setenv("UNIJAX_PLUGINS", "numpy=unijax_test_plugins, jax")
    _config.reload()
    backend = _plugins.get_backend("numpy")  # no warning: the user chose
    assert backend.plugin == "unijax_test_impostor"
    assert backend.namespace == "impostor-xp"
    assert _plugins.get_backend("jax").plugin == "unijax_jax"


def test_plugins_option_picking_a_distribution_without_that_name_raises(make_plugins,
                                                                        monkeypatch):
    make_plugins({"toy": "unijax_test_toy"}, {"unijax_test_toy": GOOD})
    monkeypatch.setenv("UNIJAX_PLUGINS", "numpy=unijax-test-plugins")
    _config.reload()
    with pytest.raises(unijax.errors.ConfigError) as info:
        _plugins.get_backend("numpy")
    text = str(info.value)
    assert "'unijax-test-plugins'" in text and "unijax 0.1.0" in text


# --- errors -----------------------------------------------------------------------------


def test_unknown_backend_lists_installed_and_suggests_nearest():
    before = state()
    with pytest.raises(UnknownBackendError) as info:
        _plugins.get_backend("autogard")
    assert isinstance(info.value, ValueError)
    text = str(info.value)
    assert "no backend named 'autogard'" in text
    assert "array_api_strict, autograd, cupy, dask, jax, numpy, torch" in text
    assert "Did you mean 'autograd'?" in text
    assert state() == before


def test_missing_library_raises_with_install_hint(monkeypatch):
    find_spec = importlib.util.find_spec  # cupy may be installed: hide it from this test
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "cupy"
                        else find_spec(name, *rest))
    with pytest.raises(BackendUnavailableError) as info:
        _plugins.get_backend("cupy")
    assert isinstance(info.value, ImportError)
    assert info.value.install_hint == 'pip install cupy-cuda12x'
    assert "needs cupy, which is not installed" in str(info.value)
    assert 'pip install cupy-cuda12x' in str(info.value)


def test_missing_library_of_third_party_plugin(make_plugins):
    source = HEADER + textwrap.dedent("""
        @hookimpl
        def unijax_backend():
            return Backend("needslib", ("needslib",), ("unijax_test_no_such_lib",),
                           'pip install "needslib"', lambda: None)
    """)
    make_plugins({"needslib": "unijax_test_needslib"}, {"unijax_test_needslib": source})
    with pytest.raises(BackendUnavailableError) as info:
        unijax.set_backend("needslib")
    assert info.value.install_hint == 'pip install "needslib"'
    assert "unijax_test_no_such_lib" in str(info.value)
    assert unijax.config.read("backend") is None
    assert _plugins.get_backend("needslib", require_available=False).available is False


def test_plugin_raising_on_import_is_named(make_plugins):
    make_plugins({"broken": "unijax_test_broken"},
                 {"unijax_test_broken": "raise RuntimeError('boom at import')\n"})
    before = state()
    with pytest.raises(PluginError) as info:
        _plugins.get_backend("broken")
    assert isinstance(info.value, RuntimeError)
    assert not isinstance(info.value, PluginValidationError)
    text = str(info.value)
    assert "plugin 'broken'" in text and "unijax_test_broken" in text
    assert "RuntimeError: boom at import" in text
    assert isinstance(info.value.__cause__, RuntimeError)
    assert state() == before
    assert "unijax_test_broken" not in sys.modules


@pytest.mark.parametrize(("source", "hook"), [
    ("@hookimpl\ndef unijax_backend(extra):\n    return None\n", "'unijax_backend'"),
    ("@hookimpl\ndef unijax_backnd():\n    return None\n", "'unijax_backnd'"),
    ("@hookimpl\ndef unijax_configure(config, more):\n    pass\n"
     "@hookimpl\ndef unijax_backend():\n    return None\n", "'unijax_configure'"),
])
def test_plugin_with_malformed_hook_is_rejected(make_plugins, source, hook):
    make_plugins({"malformed": "unijax_test_malformed"},
                 {"unijax_test_malformed": HEADER + source})
    before = state()
    with pytest.raises(PluginValidationError) as info:
        _plugins.get_backend("malformed")
    assert isinstance(info.value, TypeError) and isinstance(info.value, PluginError)
    text = str(info.value)
    assert "plugin 'malformed'" in text
    assert f"malformed hook implementation {hook}" in text
    assert state() == before


@pytest.mark.parametrize(("body", "match"), [
    ("return 42", "returned a int"),
    ("return Backend('other', ('x',), (), '', lambda: None)", "named 'other'"),
])
def test_plugin_returning_a_bad_backend_is_rejected(make_plugins, body, match):
    make_plugins({"bad": "unijax_test_bad"},
                 {"unijax_test_bad": HEADER + f"@hookimpl\ndef unijax_backend():\n    {body}\n"})
    before = state()
    with pytest.raises(PluginValidationError, match=match) as info:
        _plugins.get_backend("bad")
    assert "plugin 'bad'" in str(info.value)
    assert state() == before


def test_plugin_without_backend_hook_is_rejected(make_plugins):
    make_plugins({"empty": "unijax_test_empty"}, {"unijax_test_empty": "x = 1\n"})
    with pytest.raises(PluginValidationError, match="does not implement the hook"):
        _plugins.get_backend("empty")


@pytest.mark.parametrize("hook", ["unijax_backend", "unijax_configure"])
def test_plugin_hook_raising_leaves_nothing_registered(make_plugins, hook):
    fail = "raise ValueError('hook failed')"
    source = HEADER + textwrap.dedent(f"""
        @hookimpl
        def unijax_backend():
            {fail if hook == "unijax_backend" else "pass"}
            return Backend("raiser", ("raiser",), (), "", lambda: None)

        @hookimpl
        def unijax_configure(config):
            {fail if hook == "unijax_configure" else "pass"}
    """)
    make_plugins({"raiser": "unijax_test_raiser"}, {"unijax_test_raiser": source})
    before = state()
    with pytest.raises(PluginError) as info:
        _plugins.get_backend("raiser")
    assert f"hook {hook} raised" in str(info.value)
    assert "ValueError: hook failed" in str(info.value)
    assert state() == before


def test_broken_plugin_does_not_break_type_lookup(make_plugins):
    make_plugins({"broken": "unijax_test_broken2", "toy": "unijax_test_toy"},
                 {"unijax_test_broken2": "raise ImportError('nope')\n",
                  "unijax_test_toy": GOOD})
    assert _plugins.backend_for_type(np.ndarray).name == "numpy"
    infos = {info.name: info for info in _plugins.list_backends()}
    assert infos["broken"].backend is None and "ImportError: nope" in infos["broken"].error
    assert infos["toy"].available


def test_plugin_calling_sys_exit_at_import_is_a_broken_plugin(make_plugins):
    make_plugins({"quitter": "unijax_test_quitter", "toy": "unijax_test_toy"},
                 {"unijax_test_quitter": "import sys\nsys.exit(3)\n",
                  "unijax_test_toy": GOOD})
    before = state()
    with pytest.raises(PluginError) as info:  # not SystemExit: the program goes on
        _plugins.get_backend("quitter")
    text = str(info.value)
    assert "plugin 'quitter'" in text and "failed to import" in text
    assert "SystemExit: 3" in text
    assert state() == before
    assert "unijax_test_quitter" not in sys.modules
    # Loading every plugin (to recognise an array type) records it as broken.
    assert _plugins.backend_for_type(np.ndarray).name == "numpy"
    infos = {i.name: i for i in _plugins.list_backends()}
    assert infos["quitter"].backend is None and "SystemExit: 3" in infos["quitter"].error
    assert infos["toy"].available


def test_plugin_hook_calling_sys_exit_is_a_plugin_error(make_plugins):
    source = HEADER + "import sys\n@hookimpl\ndef unijax_backend():\n    sys.exit('bye')\n"
    make_plugins({"exiter": "unijax_test_exiter"}, {"unijax_test_exiter": source})
    before = state()
    with pytest.raises(PluginError, match="hook unijax_backend raised") as info:
        _plugins.get_backend("exiter")
    assert "SystemExit: bye" in str(info.value)
    assert state() == before


def _failing_loader(kind: type[BaseException]) -> Callable[[], object]:
    def load() -> object:
        raise kind("the library is broken")
    return load


@pytest.mark.parametrize(("module", "name", "hook"), [
    ("unijax_numpy", "numpy", "load_namespace"),
    ("unijax_array_api_strict", "array_api_strict", "load_namespace"),
    ("unijax_autograd", "autograd", "load_namespace"),
    ("unijax_autograd", "autograd", "load_native"),
    ("unijax_jax", "jax", "load_namespace"),
    ("unijax_jax", "jax", "load_native"),
])
@pytest.mark.parametrize("kind", [ImportError, RuntimeError, KeyError, SystemExit])
def test_backend_loader_raising_is_a_plugin_error_on_every_backend(monkeypatch, module, name,
                                                                    hook, kind):
    plugin = importlib.import_module(module)
    monkeypatch.setattr(plugin, f"_{hook}", _failing_loader(kind))
    _plugins._reset()  # the hook builds the Backend again, with the failing loader

    def loss(x):
        return x * x

    with pytest.raises(PluginError) as info:
        unijax.grad(loss, backend=name)(1.5)
    text = str(info.value)
    assert f"unijax backend {name!r} (plugin {module!r})" in text
    assert f"its {hook} raised" in text
    assert f"{kind.__name__}: " in text and "the library is broken" in text
    assert type(info.value.__cause__) is kind
    assert not _backend.LOADING  # the failed load left nothing behind
    with pytest.raises(PluginError, match=hook):  # and is tried again, not cached
        getattr(_plugins.get_backend(name), "namespace" if hook == "load_namespace"
                else "native_transforms")


# --- allow-list and autoload ----------------------------------------------------------


def test_allow_list_excludes_other_plugins(monkeypatch):
    monkeypatch.setenv("UNIJAX_PLUGINS", "numpy,autograd")
    _config.reload()
    assert _plugins.get_backend("numpy").name == "numpy"
    with pytest.raises(UnknownBackendError, match="installed but not allowed") as info:
        _plugins.get_backend("jax")
    assert "UNIJAX_PLUGINS" in str(info.value)
    assert _plugins.backend_for_type(np.ndarray).name == "numpy"
    import jax.numpy as jnp

    assert _plugins.backend_for_type(type(jnp.ones(1))) is None
    assert {i.name: i.allowed for i in _plugins.list_backends()}["jax"] is False


def test_disable_autoload_loads_only_named_plugins(monkeypatch):
    monkeypatch.setenv("UNIJAX_DISABLE_PLUGIN_AUTOLOAD", "1")
    _config.reload()
    with pytest.raises(UnknownBackendError, match="not allowed"):
        _plugins.get_backend("numpy")
    monkeypatch.setenv("UNIJAX_PLUGINS", "numpy")
    _config.reload()
    assert _plugins.get_backend("numpy").name == "numpy"


# --- manual registration ---------------------------------------------------------------


def _toy_plugin(name: str) -> types.ModuleType:
    module = types.ModuleType(f"unijax_test_manual_{name}")

    @hookimpl
    def unijax_backend() -> Backend:
        return Backend(name, (f"unijax_test_arrays_{name}",), (), "", lambda: name,
                       capabilities=Capabilities(native=frozenset()))

    module.unijax_backend = unijax_backend  # type: ignore[attr-defined]
    return module


def test_register_plugin_makes_backend_selectable():
    backend = register_plugin(_toy_plugin("manual"))
    assert backend.plugin == "unijax_test_manual_manual"
    assert _plugins.get_backend("manual") is backend
    with unijax.use_backend("manual"):
        assert unijax.namespace() == "manual"
    arrays = type("A", (), {"__module__": "unijax_test_arrays_manual"})
    assert _plugins.backend_for_type(arrays) is backend
    assert "manual" in [i.name for i in _plugins.list_backends()]


def test_register_plugin_twice_raises_and_keeps_first():
    first = register_plugin(_toy_plugin("twice"))
    before = state()
    with pytest.raises(PluginError, match="already registered"):
        register_plugin(_toy_plugin("twice"), name="again")
    with pytest.raises(PluginError, match="already registered"):
        register_plugin(_toy_plugin("other"), name="unijax_test_manual_twice")
    assert state() == before
    assert _plugins.get_backend("twice") is first


def test_register_plugin_object_with_bad_return():
    class Plugin:
        @hookimpl
        def unijax_backend(self):
            return "not a backend"

    before = state()
    with pytest.raises(PluginValidationError, match="returned a str"):
        register_plugin(Plugin(), name="object-plugin")
    assert state() == before
