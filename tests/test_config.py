"""Options, their sources (env, config file, setters, contexts) and their errors."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import unijax
from unijax.dispatch import options as _config
from unijax.dispatch import plugins as _plugins
from unijax.errors import ConfigError, UnknownBackendError

pytestmark = pytest.mark.usefixtures("clean_config")


def _runtime_state() -> dict[str, object]:
    return dict(_config._runtime)


def write_pyproject(folder: Path, body: str) -> Path:
    path = folder / "pyproject.toml"
    path.write_text(body)
    return path


# --- the table --------------------------------------------------------------------------


def test_options_table_has_every_option_with_env_var_and_help():
    options = {opt.name: opt for opt in unijax.config.options()}
    assert set(options) == {"backend", "default_float_dtype", "plugins",
                            "disable_plugin_autoload", "jit_cache_size", "jit_compiler",
                            "jit_threads"}
    for opt in options.values():
        assert opt.env == "UNIJAX_" + opt.name.upper()
        assert opt.help


def test_read_defaults_when_nothing_is_set():
    read = unijax.config.read
    assert read("backend") is None
    assert read("default_float_dtype") == "float64"
    assert read("plugins") is None
    assert read("disable_plugin_autoload") is False
    assert read("jit_cache_size") == 256
    assert unijax.default_float_dtype() == "float64"


# --- environment variables ---------------------------------------------------------------


@pytest.mark.parametrize(("var", "raw", "name", "expected"), [
    ("UNIJAX_BACKEND", "jax", "backend", "jax"),
    ("UNIJAX_DEFAULT_FLOAT_DTYPE", "Float32", "default_float_dtype", "float32"),
    ("UNIJAX_PLUGINS", "numpy, jax", "plugins", ("numpy", "jax")),
    ("UNIJAX_PLUGINS", "", "plugins", None),
    ("UNIJAX_DISABLE_PLUGIN_AUTOLOAD", "yes", "disable_plugin_autoload", True),
    ("UNIJAX_DISABLE_PLUGIN_AUTOLOAD", "0", "disable_plugin_autoload", False),
    ("UNIJAX_JIT_CACHE_SIZE", "12", "jit_cache_size", 12),
])
def test_env_var_sets_option(monkeypatch, var, raw, name, expected):
    monkeypatch.setenv(var, raw)
    _config.reload()
    assert unijax.config.read(name) == expected


@pytest.mark.parametrize(("var", "raw", "choices"), [
    ("UNIJAX_DEFAULT_FLOAT_DTYPE", "float16", "'float64', 'float32'"),
    ("UNIJAX_JIT_CACHE_SIZE", "-3", "non-negative integer"),
    ("UNIJAX_JIT_CACHE_SIZE", "lots", "non-negative integer"),
    ("UNIJAX_DISABLE_PLUGIN_AUTOLOAD", "maybe", "1/true/yes/on"),
    ("UNIJAX_PLUGINS", "numpy,9bad", "comma-separated list"),
    ("UNIJAX_BACKEND", "no such", "backend name"),
])
def test_env_invalid_value_raises_config_error(monkeypatch, var, raw, choices):
    monkeypatch.setenv(var, raw)
    _config.reload()
    name = var.removeprefix("UNIJAX_").lower()
    with pytest.raises(ConfigError) as info:
        unijax.config.read(name)
    assert isinstance(info.value, ValueError)
    text = str(info.value)
    assert f"environment variable {var}" in text
    assert repr(raw) in text
    assert choices in text
    assert f"Set {var} to a valid value or unset it" in text


def test_env_is_read_once_until_reload(monkeypatch):
    monkeypatch.setenv("UNIJAX_JIT_CACHE_SIZE", "5")
    _config.reload()
    assert unijax.config.read("jit_cache_size") == 5
    monkeypatch.setenv("UNIJAX_JIT_CACHE_SIZE", "6")
    assert unijax.config.read("jit_cache_size") == 5
    unijax.config.reload()
    assert unijax.config.read("jit_cache_size") == 6


def test_hot_path_reads_no_environment(monkeypatch):
    unijax.default_float_dtype()
    _config.configured_backend()

    def forbidden(*args, **kwargs):
        raise AssertionError("os.environ read on the hot path")

    with monkeypatch.context() as patch:
        patch.setattr(os.environ, "get", forbidden)
        for _ in range(3):
            assert unijax.default_float_dtype() == "float64"
            assert _config.configured_backend() is None


# --- the config file ---------------------------------------------------------------------


def test_config_file_nearest_pyproject_upward(monkeypatch, tmp_path):
    path = write_pyproject(tmp_path, '[tool.unijax]\nbackend = "jax"\njit-cache-size = 8\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    _config.reload()
    assert unijax.config.read("backend") == "jax"
    assert unijax.config.read("jit_cache_size") == 8
    assert str(path) in unijax.config.source("backend")
    explanation = unijax.explain_backend()
    assert (explanation.rule, explanation.backend) == ("config_file", "jax")


@pytest.mark.parametrize("above", [
    '[tool.unijax]\nbackend = "jax"\njit-cache-size = 8\n',
    "[tool.unijax\nbackend = 1\n",  # another project's broken file is not read either
])
def test_config_search_stops_at_the_first_pyproject_toml(monkeypatch, tmp_path, above):
    write_pyproject(tmp_path, above)
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    write_pyproject(project, '[project]\nname = "inner"\n')  # no [tool.unijax]
    monkeypatch.chdir(project / "src")
    _config.reload()
    assert unijax.config.read("backend") is None
    assert unijax.config.read("jit_cache_size") == 256
    assert unijax.config.source("jit_cache_size") == "the default"
    assert unijax.explain_backend().rule == "default"


MALFORMED_TOOL = [
    ("tool = 3\n", "'tool' entry is not a table", "tool = 3"),
    ("tool = [1, 2]\n", "'tool' entry is not a table", "tool = [1, 2]"),
    ('[tool]\nunijax = "x"\n', "'tool.unijax' entry is not a table", "unijax = 'x'"),
    ("tool.unijax = 5\n", "'tool.unijax' entry is not a table", "unijax = 5"),
]


@pytest.mark.parametrize(("body", "what", "got"), MALFORMED_TOOL)
def test_malformed_tool_table_in_pyproject_names_the_file(monkeypatch, tmp_path, body, what,
                                                          got):
    path = write_pyproject(tmp_path, body)
    monkeypatch.chdir(tmp_path)
    _config.reload()
    for name in ("backend", "jit_cache_size"):
        with pytest.raises(ConfigError) as info:
            unijax.config.read(name)
        text = str(info.value)
        assert str(path) in text and what in text and got in text


@pytest.mark.parametrize(("body", "what", "got"), MALFORMED_TOOL)
def test_malformed_tool_table_in_unijax_config_names_the_file(monkeypatch, tmp_path, body,
                                                              what, got):
    path = tmp_path / "settings.toml"
    path.write_text(body)
    monkeypatch.setenv("UNIJAX_CONFIG", str(path))
    _config.reload()
    with pytest.raises(ConfigError) as info:
        unijax.config.read("backend")
    assert str(path) in str(info.value) and what in str(info.value)


@pytest.mark.parametrize("via_env", [False, True])
def test_config_file_not_utf8_names_the_file(monkeypatch, tmp_path, via_env):
    path = tmp_path / ("settings.toml" if via_env else "pyproject.toml")
    path.write_bytes('[tool.unijax]\nbackend = "jäx"\n'.encode("latin-1"))
    if via_env:
        monkeypatch.setenv("UNIJAX_CONFIG", str(path))
    _config.reload()
    with pytest.raises(ConfigError) as info:
        unijax.config.read("backend")
    text = str(info.value)
    assert str(path) in text and "not UTF-8" in text and "Save the file as UTF-8" in text
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


def test_reload_between_reads_of_the_file_values(monkeypatch, tmp_path):
    path = write_pyproject(tmp_path, "[tool.unijax]\njit_cache_size = 8\n")
    _config.reload()
    real = _config._load_raw
    edits: list[int] = []

    def edited_and_reloaded_meanwhile():
        raw = real()
        if not edits:  # once: another thread edits the file and reloads in between
            edits.append(1)
            path.write_text("[tool.unijax]\n")
            _config.reload()
        return raw

    monkeypatch.setattr(_config, "_load_raw", edited_and_reloaded_meanwhile)
    assert unijax.config.read("jit_cache_size") in (8, 256)
    monkeypatch.undo()
    assert unijax.config.read("jit_cache_size") == 256


def test_config_file_named_by_unijax_config(monkeypatch, tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text('default_float_dtype = "float32"\nplugins = ["numpy", "jax"]\n')
    monkeypatch.setenv("UNIJAX_CONFIG", str(path))
    _config.reload()
    assert unijax.default_float_dtype() == "float32"
    assert unijax.config.read("plugins") == ("numpy", "jax")


def test_env_overrides_config_file(monkeypatch, tmp_path):
    write_pyproject(tmp_path, '[tool.unijax]\nbackend = "jax"\n')
    monkeypatch.setenv("UNIJAX_BACKEND", "numpy")
    _config.reload()
    assert unijax.explain_backend().rule == "env"


def test_config_file_invalid_value_names_the_file(tmp_path):
    path = write_pyproject(tmp_path, '[tool.unijax]\ndefault_float_dtype = "float8"\n')
    _config.reload()
    with pytest.raises(ConfigError) as info:
        unijax.default_float_dtype()
    text = str(info.value)
    assert str(path) in text and "'float8'" in text and "'float64', 'float32'" in text
    assert "Fix the value of 'default_float_dtype'" in text


def test_config_file_unknown_key_suggests_the_option(tmp_path):
    path = write_pyproject(tmp_path, '[tool.unijax]\nbakend = "jax"\n')
    _config.reload()
    with pytest.raises(ConfigError, match="Did you mean 'backend'") as info:
        unijax.config.read("backend")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("first, second", [("default-float-dtype", "default_float_dtype"),
                                           ("default_float_dtype", "default-float-dtype")])
def test_config_file_option_spelled_twice_names_both_spellings_and_the_file(
        tmp_path, first, second):
    path = write_pyproject(
        tmp_path, f'[tool.unijax]\n{first} = "float32"\n{second} = "float64"\n')
    _config.reload()
    for read in (unijax.default_float_dtype, lambda: unijax.config.read("backend")):
        with pytest.raises(ConfigError) as info:
            read()
        text = str(info.value)
        assert str(path) in text
        assert f"'{first}'" in text and f"'{second}'" in text
        assert "'float32'" in text and "'float64'" in text


@pytest.mark.parametrize("var", ["UNIJAX_BACKEND", "UNIJAX_DEFAULT_FLOAT_DTYPE",
                                 "UNIJAX_PLUGINS", "UNIJAX_JIT_CACHE_SIZE"])
def test_huge_env_value_is_echoed_cut_short(monkeypatch, var):
    huge = "a" * 100_000
    monkeypatch.setenv(var, huge)
    _config.reload()
    name = next(o.name for o in unijax.config.options() if o.env == var)
    with pytest.raises(unijax.errors.UnijaxError) as info:
        _config.read(name)
        unijax.grad(lambda x: x * x)(1.0)  # the backend option: resolved by a call
    text = str(info.value)
    assert len(text) < 2_000, len(text)
    assert re.search(r"\(1000\d\d characters", text), text


@pytest.mark.parametrize("call", [
    lambda name: unijax.grad(lambda x: x * x, backend=name)(1.0),
    lambda name: unijax.use_backend(name).__enter__(),
    lambda name: unijax.set_backend(name),
    lambda name: unijax.explain_backend(backend=name),
    lambda name: unijax.to_backend(1.0, name),
    lambda name: unijax.config.read(name),
    lambda name: unijax.config.update("backend", name + "!"),
])
def test_huge_backend_argument_is_echoed_cut_short(call):
    huge = "b" * 100_000
    with pytest.raises(unijax.errors.UnijaxError) as info:
        call(huge)
    text = str(info.value)
    assert len(text) < 2_000, len(text)
    assert re.search(r"\(1000\d\d characters", text), text


def test_huge_unknown_key_in_config_file_is_echoed_cut_short(tmp_path):
    write_pyproject(tmp_path, f'[tool.unijax]\n{"k" * 50_000} = 1\n')
    _config.reload()
    with pytest.raises(ConfigError) as info:
        unijax.config.read("backend")
    assert len(str(info.value)) < 2_000 and "50000 characters" in str(info.value)


def test_config_file_bad_toml_names_the_file(tmp_path):
    path = write_pyproject(tmp_path, "[tool.unijax\nbackend = 1\n")
    _config.reload()
    with pytest.raises(ConfigError, match="TOML") as info:
        unijax.config.read("backend")
    assert str(path) in str(info.value)


def test_unijax_config_missing_file_raises(monkeypatch, tmp_path):
    monkeypatch.setenv("UNIJAX_CONFIG", str(tmp_path / "nope.toml"))
    _config.reload()
    with pytest.raises(ConfigError, match="does not exist") as info:
        unijax.config.read("backend")
    assert "UNIJAX_CONFIG" in str(info.value)


# --- setters -----------------------------------------------------------------------------


def test_update_invalid_value_changes_nothing():
    unijax.config.update("jit_cache_size", 3)
    before = _runtime_state()
    with pytest.raises(ConfigError, match="non-negative integer") as info:
        unijax.config.update("jit_cache_size", -1)
    assert isinstance(info.value, ValueError)
    assert "unijax.config.update('jit_cache_size', ...)" in str(info.value)
    assert _runtime_state() == before
    assert unijax.config.read("jit_cache_size") == 3


def test_update_unknown_option_suggests_nearest():
    with pytest.raises(ConfigError, match="Did you mean 'jit_cache_size'"):
        unijax.config.update("jit_cache_sise", 3)
    with pytest.raises(ConfigError, match="unknown unijax option"):
        unijax.config.read("nope")


def test_update_none_restores_lower_sources(monkeypatch):
    monkeypatch.setenv("UNIJAX_JIT_CACHE_SIZE", "7")
    _config.reload()
    unijax.config.update("jit_cache_size", 1)
    assert unijax.config.read("jit_cache_size") == 1
    unijax.config.update("jit_cache_size", None)
    assert unijax.config.read("jit_cache_size") == 7


def test_set_backend_unknown_raises_and_changes_nothing():
    unijax.set_backend("numpy")
    before = _runtime_state()
    with pytest.raises(UnknownBackendError) as info:
        unijax.set_backend("jaxx")
    assert isinstance(info.value, ValueError)
    assert "Did you mean 'jax'" in str(info.value)
    assert _runtime_state() == before
    assert unijax.current_backend() == "numpy"


def test_set_backend_none_falls_back():
    unijax.set_backend("jax")
    assert unijax.explain_backend().rule == "set_backend"
    unijax.set_backend(None)
    assert unijax.explain_backend().rule == "default"


@pytest.mark.parametrize("dtype", ["float32", "FLOAT32", np.float32, np.dtype("float32")])
def test_set_default_float_dtype_accepts_dtype_spellings(dtype):
    unijax.set_default_float_dtype(dtype)
    assert unijax.default_float_dtype() == "float32"


def test_set_default_float_dtype_rejects_int():
    with pytest.raises(ConfigError, match="'float64', 'float32'"):
        unijax.set_default_float_dtype("int32")
    assert unijax.default_float_dtype() == "float64"


@given(st.integers(min_value=0, max_value=10**9))
def test_jit_cache_size_env_round_trips(n):
    os.environ["UNIJAX_JIT_CACHE_SIZE"] = str(n)
    try:
        _config.reload()
        assert unijax.config.read("jit_cache_size") == n
    finally:
        del os.environ["UNIJAX_JIT_CACHE_SIZE"]
        _config.reload()


@given(st.integers(max_value=-1) | st.floats() | st.booleans())
def test_jit_cache_size_update_rejects_non_counts(value):
    with pytest.raises(ConfigError):
        unijax.config.update("jit_cache_size", value)
    assert unijax.config.read("jit_cache_size") == 256


@given(st.sampled_from(["float32", "float64"]).flatmap(
    lambda s: st.tuples(*(st.sampled_from([c.lower(), c.upper()]) for c in s))))
def test_float_dtype_names_are_case_insensitive(chars):
    name = "".join(chars)
    with unijax.use_default_float_dtype(name):
        assert unijax.default_float_dtype() == name.lower()


def test_subscribe_is_called_on_update():
    seen = []

    def callback(name, value):
        seen.append((name, value))

    unijax.config.subscribe(callback)
    try:
        unijax.config.update("jit_cache_size", 9)
        with unijax.use_default_float_dtype("float32"):
            pass
    finally:
        unijax.config.unsubscribe(callback)
    unijax.config.update("jit_cache_size", 10)
    assert seen == [("jit_cache_size", 9), ("default_float_dtype", "float32")]


def test_raising_subscriber_warns_and_the_update_still_happens():
    def broken(name, value):
        raise RuntimeError("subscriber bug")

    unijax.config.subscribe(broken)
    try:
        with pytest.warns(RuntimeWarning, match="subscriber bug"):
            unijax.config.update("jit_cache_size", 11)
    finally:
        unijax.config.unsubscribe(broken)
    assert unijax.config.read("jit_cache_size") == 11


# --- context managers: scoping and isolation ------------------------------------------


def test_use_backend_restores_previous_on_exception():
    unijax.set_backend("jax")
    with pytest.raises(RuntimeError):
        with unijax.use_backend("numpy"):
            assert unijax.current_backend() == "numpy"
            raise RuntimeError
    assert unijax.current_backend() == "jax"
    assert unijax.explain_backend().rule == "set_backend"


def test_use_backend_nests():
    with unijax.use_backend("jax"):
        with unijax.use_backend("numpy"):
            assert unijax.current_backend() == "numpy"
            with unijax.use_backend(None):
                assert unijax.explain_backend().rule == "default"
        assert unijax.current_backend() == "jax"
    assert unijax.explain_backend().rule == "default"


def test_use_backend_unknown_raises_on_entry():
    with pytest.raises(UnknownBackendError, match="Did you mean 'numpy'"):
        with unijax.use_backend("nunpy"):
            raise AssertionError("not entered")
    assert unijax.config.read("backend") is None


def test_use_backend_isolated_across_threads():
    barrier = threading.Barrier(2)
    seen: dict[str, str] = {}

    def worker(name: str) -> None:
        with unijax.use_backend(name):
            barrier.wait()  # both threads are inside their own context now
            seen[name] = unijax.current_backend()
            barrier.wait()

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("numpy", "jax")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"numpy": "numpy", "jax": "jax"}
    assert unijax.explain_backend().rule == "default"


def test_use_backend_isolated_across_asyncio_tasks():
    async def task(name: str, gate: asyncio.Event, other: asyncio.Event) -> str:
        with unijax.use_backend(name):
            gate.set()
            await other.wait()  # the other task has entered its own context
            return unijax.current_backend()

    async def main() -> list[str]:
        a, b = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(task("numpy", a, b), task("jax", b, a))

    assert asyncio.run(main()) == ["numpy", "jax"]
    assert unijax.explain_backend().rule == "default"


def _backends_seen(fn) -> str:
    # What a transform call really ran on: the type of the gradient it returns.
    return type(fn(np.asarray(1.5))).__module__.partition(".")[0]


def test_use_backend_in_a_generator_does_not_leak_to_the_code_it_yields_to():
    grad = unijax.grad(lambda x: x * x)
    seen: list[str] = []

    def gen():
        with unijax.use_backend("jax"):
            for _ in range(2):
                seen.append(_backends_seen(grad))  # warm after the first: the fast path
                yield unijax.current_backend()

    with unijax.use_backend("autograd"):
        it = gen()
        assert next(it) == "jax"
        assert unijax.current_backend() == "autograd"  # after the yield: the caller's
        assert unijax.config.read("backend") == "autograd"
        assert unijax.explain_backend().reason == "inside unijax.use_backend('autograd')"
        assert _backends_seen(grad) == "numpy"  # autograd computes on NumPy arrays
        assert next(it) == "jax"  # back inside the generator: its own choice again
        assert unijax.current_backend() == "autograd"
        it.close()
        assert unijax.current_backend() == "autograd"
    assert seen == ["jaxlib", "jaxlib"]
    assert unijax.explain_backend().rule == "default"
    assert [*gen()] == ["jax", "jax"]
    assert unijax.explain_backend().rule == "default"


def test_use_backend_in_a_generator_holds_in_threads_it_starts():
    def gen():
        with unijax.use_backend("jax"):
            seen: list[str] = []
            ctx = contextvars.copy_context()
            thread = threading.Thread(target=lambda: seen.append(
                ctx.run(unijax.current_backend)))
            thread.start()
            thread.join()
            yield seen[0]

    assert [*gen()] == ["jax"]


def test_use_backend_in_an_async_generator_does_not_leak():
    async def agen():
        with unijax.use_backend("jax"):
            yield unijax.current_backend()
            yield unijax.current_backend()

    async def main() -> list[str]:
        seen = []
        async for inside in agen():
            seen += [inside, unijax.current_backend()]
        return seen

    assert asyncio.run(main()) == ["jax", "numpy", "jax", "numpy"]


@contextlib.contextmanager
def _jax_scope():
    with unijax.use_backend("jax"):
        yield


@pytest.fixture
def jax_backend():
    with unijax.use_backend("jax"):
        yield


def test_use_backend_in_a_context_manager_body_holds_in_its_with_block():
    with _jax_scope():
        assert unijax.current_backend() == "jax"
    assert unijax.explain_backend().rule == "default"


def test_use_backend_in_a_fixture_holds_in_the_test(jax_backend):
    assert unijax.current_backend() == "jax"


def test_use_backend_as_a_decorator():
    @unijax.use_backend("jax")
    def inside() -> str:
        return unijax.current_backend()

    assert [inside(), inside()] == ["jax", "jax"]
    assert unijax.explain_backend().rule == "default"


def test_use_default_float_dtype_isolated_across_threads():
    barrier = threading.Barrier(2)
    seen: dict[str, str] = {}

    def worker(dtype: str) -> None:
        with unijax.use_default_float_dtype(dtype):
            barrier.wait()
            seen[dtype] = unijax.default_float_dtype()
            barrier.wait()

    threads = [threading.Thread(target=worker, args=(d,)) for d in ("float32", "float64")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"float32": "float32", "float64": "float64"}


def test_plugins_option_change_reloads_plugins():
    _plugins.get_backend("jax")
    unijax.config.update("plugins", "numpy")
    try:
        with pytest.raises(UnknownBackendError, match="not allowed"):
            _plugins.get_backend("jax")
    finally:
        unijax.config.update("plugins", None)
    assert _plugins.get_backend("jax").name == "jax"
