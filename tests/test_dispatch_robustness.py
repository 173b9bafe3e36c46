"""Backend loading and dispatch caches under threads, and backends whose loaders fail."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
import warnings

import array_api_compat
import numpy as np
import pytest

import unijax
from unijax.dispatch import backend as _backend
from unijax.dispatch import loading
from unijax.dispatch import plugins as _plugins
from unijax.dispatch import selection as _select

pytestmark = pytest.mark.usefixtures("clean_plugins")


def loss(x):
    xp = array_api_compat.array_namespace(x)
    return xp.sum(x * x + xp.sin(x))


# --- concurrent first use of several backends -------------------------------------------------

FIRST_USE = """
    import math
    import threading

    import array_api_compat
    import unijax

    def loss(x):
        xp = array_api_compat.array_namespace(x)
        return xp.sum(x * x) + xp.sin(x)

    names = ["jax", "autograd", "numpy", "array_api_strict"] * 3
    barrier = threading.Barrier(len(names))
    results = {}

    def work(i, name):
        try:
            barrier.wait()
            if i % 2:
                g = unijax.grad(loss, backend=name)(1.5)
            else:
                with unijax.use_backend(name):
                    g = unijax.grad(loss)(1.5)
            results[i] = repr(float(g))
        except BaseException as err:
            results[i] = f"{type(err).__name__}: {err}"

    threads = [threading.Thread(target=work, args=(i, n)) for i, n in enumerate(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, name in enumerate(names):
        print(name, results.get(i, "no result"))
    print("expected", repr(2 * 1.5 + math.cos(1.5)))
"""


@pytest.mark.parametrize("run", range(3))
def test_first_use_of_four_backends_from_twelve_threads(run, tmp_path):
    # A fresh interpreter each time: nothing imported yet, so every library loads while
    # the other threads call.
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(FIRST_USE)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    expected = lines[-1].split(" ", 1)[1]
    rows = [line.split(" ", 1) for line in lines[:-1]]
    assert len(rows) == 12
    wrong = [(name, got) for name, got in rows if got != expected]
    assert not wrong, wrong


def test_a_call_waits_while_another_thread_loads_a_backend():
    numpy_backend = _plugins.get_backend("numpy")
    numpy_backend.namespace  # noqa: B018  (loaded beforehand: only the other load runs)
    started, release = threading.Event(), threading.Event()

    def slow_loader():
        started.set()
        release.wait(10)
        return array_api_compat.numpy

    slow = _backend.Backend("slow_test", ("slow_test",), (), "", slow_loader)
    loader = threading.Thread(target=lambda: slow.namespace)
    loader.start()
    assert started.wait(10)
    finished: list[float] = []

    def call() -> None:
        unijax.grad(loss, backend="numpy")(np.asarray(1.5))
        finished.append(time.monotonic())

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.3)
    assert not finished  # held back while the other library is halfway through loading
    released = time.monotonic()
    release.set()
    loader.join(10)
    caller.join(10)
    assert finished and finished[0] >= released


def test_a_loader_may_use_unijax_without_waiting_for_itself():
    def loader():
        # A loader that calls into unijax must not wait for its own load to finish.
        float(unijax.grad(loss, backend="numpy")(np.asarray(0.5)))
        return array_api_compat.numpy

    done: list[object] = []
    backend = _backend.Backend("reentrant_test", ("reentrant_test",), (), "", loader)
    thread = threading.Thread(target=lambda: done.append(backend.namespace), daemon=True)
    thread.start()
    thread.join(20)
    assert done == [array_api_compat.numpy]
    assert not _backend.LOADING


NINE_THREADS = """
    import threading

    import numpy as np
    from array_api_compat import array_namespace

    import unijax

    names = ["jax", "autograd", "numpy"] * 3
    barrier = threading.Barrier(len(names))
    results = {}

    def work(i, name):
        try:
            barrier.wait()
            with unijax.use_backend(name):
                g = unijax.grad(lambda x: array_namespace(x).sum(x * x))(np.ones(3))
            results[i] = np.asarray(g).tolist()
        except BaseException as err:
            results[i] = f"{type(err).__name__}: {err}"

    threads = [threading.Thread(target=work, args=(i, n)) for i, n in enumerate(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, name in enumerate(names):
        print(name, results.get(i, "no result"))
"""


@pytest.mark.slow
def test_user_code_never_meets_a_half_imported_library_in_twenty_fresh_processes(tmp_path):
    # array_api_compat's array_namespace, on NumPy arrays in the NumPy and Autograd
    # threads, looks up jax.Array as soon as "jax" is in sys.modules: while the JAX
    # thread imports it, that lookup fails unless no user code runs meanwhile.
    for attempt in range(20):
        result = subprocess.run([sys.executable, "-c", textwrap.dedent(NINE_THREADS)],
                                capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert result.returncode == 0, (attempt, result.stderr)
        rows = [line.split(" ", 1) for line in result.stdout.strip().splitlines()]
        assert len(rows) == 9, (attempt, result.stdout)
        wrong = [(name, got) for name, got in rows if got != "[2.0, 2.0, 2.0]"]
        assert not wrong, (attempt, wrong)


def _slow_backend(name: str, started: threading.Event, release: threading.Event,
                  log: list[str]) -> _backend.Backend:
    def loader():
        log.append("load starts")
        started.set()
        release.wait(10)
        return array_api_compat.numpy

    return _backend.Backend(name, (name,), (), "", loader)


def test_a_load_waits_for_a_call_already_running_user_code():
    log: list[str] = []
    inside, leave = threading.Event(), threading.Event()

    def user_code(x):
        log.append("user code starts")
        inside.set()
        assert leave.wait(10)
        log.append("user code ends")
        return array_api_compat.array_namespace(x).sum(x * x)

    grad = unijax.grad(user_code, backend="numpy")
    caller = threading.Thread(target=lambda: grad(np.asarray(1.5)))
    caller.start()
    assert inside.wait(10)
    release = threading.Event()
    release.set()
    slow = _slow_backend("drain_test", threading.Event(), release, log)
    loader = threading.Thread(target=lambda: slow.namespace)
    loader.start()
    time.sleep(0.3)
    early = list(log)
    leave.set()
    caller.join(10)
    loader.join(10)
    assert early == ["user code starts"]  # the import waited for the running call
    assert log == ["user code starts", "user code ends", "load starts"]
    assert not _backend.LOADING


def test_a_pullback_called_during_a_load_waits_for_it():
    _, pullback = unijax.vjp(lambda x: x * 3.0, np.asarray([1.0, 2.0]), backend="numpy")
    started, release = threading.Event(), threading.Event()
    slow = _slow_backend("pullback_test", started, release, [])
    loader = threading.Thread(target=lambda: slow.namespace)
    loader.start()
    assert started.wait(10)
    finished: list[float] = []
    caller = threading.Thread(
        target=lambda: finished.append(pullback(np.ones(2)) and time.monotonic()))
    caller.start()
    time.sleep(0.3)
    assert not finished
    released = time.monotonic()
    release.set()
    loader.join(10)
    caller.join(10)
    assert finished and finished[0] >= released


def test_a_load_needed_by_a_thread_the_running_call_waits_for_goes_ahead(monkeypatch):
    # User code inside a transform waits for a worker thread that makes the first call of
    # another backend: the worker's load cannot wait for the call to end (it never
    # would), so after a bounded wait it goes ahead and says so.
    monkeypatch.setattr(loading, "DRAIN_TIMEOUT_S", 0.2)
    release = threading.Event()
    release.set()
    slow = _slow_backend("pool_test", threading.Event(), release, [])
    caught: list[warnings.WarningMessage] = []

    def worker():
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            slow.namespace  # noqa: B018  (the load under test)
        caught.extend(seen)

    def user_code(x):
        thread = threading.Thread(target=worker, name="pool-worker")
        thread.start()
        thread.join(10)
        assert not thread.is_alive()
        return array_api_compat.array_namespace(x).sum(x * x)

    g = unijax.grad(user_code, backend="numpy")(np.asarray(1.5))
    np.testing.assert_allclose(g, 3.0)
    assert [type(w.message) for w in caught] == [RuntimeWarning]
    assert "'pool_test'" in str(caught[0].message)
    assert "MainThread" in str(caught[0].message)


# --- config reload racing with calls ------------------------------------------------------------


def test_type_lookup_racing_a_reload_never_caches_no_owner(monkeypatch):
    manager = _plugins._get()
    original = manager.load_all
    reloaders: list[threading.Thread] = []

    def load_all_while_another_thread_reloads() -> None:
        original()
        if not reloaders:  # once: a config reload lands between loading and caching
            reloaders.append(threading.Thread(target=unijax.config.reload))
            reloaders[0].start()
            reloaders[0].join(0.5)

    monkeypatch.setattr(manager, "load_all", load_all_while_another_thread_reloads)
    found = manager.backend_for_type(np.ndarray)
    reloaders[0].join(10)
    monkeypatch.undo()
    assert found is not None and found.name == "numpy"
    now = _plugins.backend_for_type(np.ndarray)
    assert now is not None and now.name == "numpy"


def test_owner_cache_never_keeps_a_backend_a_reload_dropped(monkeypatch):
    real = _plugins.backend_for_type

    def lookup_then_reload(tp: type):
        found = real(tp)
        # Meanwhile other threads reload the config, which drops every loaded backend
        # and clears the caches, and load NumPy's plugin again.
        unijax.config.reload()
        _plugins.get_backend("numpy")
        return found

    monkeypatch.setattr(_plugins, "backend_for_type", lookup_then_reload)
    stale = _select._owner_of(np.ndarray)
    monkeypatch.undo()
    current = _plugins.get_backend("numpy")
    assert stale is not current
    assert _select._owner.get(np.ndarray) in (None, current)
    assert _select._owner_of(np.ndarray) is current
    backend, _, _ = _select.prepare_call((np.ones(2),), None, "f")
    assert backend is current


def test_reload_in_a_loop_beside_grad_on_numpy_arrays():
    stop = threading.Event()
    errors: list[str] = []
    x = np.asarray([0.5, 1.0, 2.0])
    expected = 2 * x + np.cos(x)

    def reload_forever() -> None:
        while not stop.is_set():
            unijax.config.reload()

    def grad_forever() -> None:
        g = unijax.grad(loss)
        while not stop.is_set():
            try:
                np.testing.assert_allclose(g(x), expected)
            except Exception as err:  # reported below, with the others
                errors.append(f"{type(err).__name__}: {err}")
                return

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, to land in the narrow windows
    try:
        for _ in range(5):
            stop.clear()
            threads = [threading.Thread(target=reload_forever) for _ in range(2)]
            threads += [threading.Thread(target=grad_forever) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(0.2)
            stop.set()
            for t in threads:
                t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:3]
    # Later calls, converting NumPy arrays included, see NumPy's real owner.
    assert _plugins.backend_for_type(np.ndarray).name == "numpy"
    g = unijax.grad(lambda v: array_api_compat.array_namespace(v).sum(v * v),
                    backend="array_api_strict")
    np.testing.assert_allclose(np.asarray(g(x)), 2 * x)


# --- the same concretization errors on every backend ----------------------------------------


def _to_numpy_inside(x):
    xp = array_api_compat.array_namespace(x)
    return xp.sum(xp.asarray(np.asarray(x)) * x)


def _mask_inside(x):
    return x[x > 0]


@pytest.mark.parametrize("name", ["numpy", "array_api_strict", "jax"])
def test_numpy_conversion_inside_grad_is_a_concretization_error(name):
    x = unijax.asarray([1.0, 2.0], backend=name)
    with pytest.raises(unijax.errors.ConcretizationError) as info:
        unijax.grad(_to_numpy_inside, backend=name)(x)
    assert "converted to a NumPy array" in str(info.value)
    assert "xp = array_namespace(x)" in str(info.value)


@pytest.mark.parametrize("name", ["numpy", "array_api_strict", "autograd", "jax"])
@pytest.mark.parametrize("transform", ["jit", "vmap"])
def test_boolean_mask_inside_jit_and_vmap_is_a_concretization_error(name, transform):
    if transform == "jit":
        fn = unijax.jit(_mask_inside, backend=name)
        x = unijax.asarray([1.0, -2.0], backend=name)
    else:
        fn = unijax.vmap(_mask_inside, backend=name)
        x = unijax.asarray([[1.0, -2.0]], backend=name)
    with pytest.raises(unijax.errors.ConcretizationError) as info:
        fn(x)
    assert "traced boolean mask" in str(info.value)
    assert "xp.where(mask, x, 0)" in str(info.value)


@pytest.mark.parametrize("name", ["numpy", "jax"])
def test_traced_list_index_under_jit_is_a_concretization_error(name):
    def pick(x):
        return [1.0, 2.0, 3.0][x[0]]  # a traced value as a list index

    x = unijax.asarray([1, 2], backend=name)
    with pytest.raises(unijax.errors.ConcretizationError) as info:
        unijax.jit(pick, backend=name)(x)
    assert "static_argnums" in str(info.value)


def test_jax_errors_it_does_not_know_pass_through():
    def wrong_shapes(x):
        xp = array_api_compat.array_namespace(x)
        return xp.sum(x @ xp.ones((3,)))

    with pytest.raises(TypeError) as info:
        unijax.jit(wrong_shapes, backend="jax")(unijax.asarray([1.0, 2.0], backend="jax"))
    assert not isinstance(info.value, unijax.errors.UnijaxError)
