"""Importing array libraries while other threads run transformed functions.

Importing a library puts its half-initialised module into ``sys.modules`` at once, where
every thread can see it. Code that classifies arrays by peeking at ``sys.modules`` (as
array_api_compat's ``array_namespace`` does: it looks up ``jax.Array`` as soon as
``jax`` is there) then fails in whichever thread happens to run it, and two threads
importing one library (NumPy, through JAX and through array-api-strict) can each be
handed the other's partial module. So a library import and the user code that transforms
run exclude each other, like a writer and its readers:

* A **loader** (a backend's ``load_namespace`` or ``load_native``) runs one at a time,
  under one process-wide lock, and only once no other thread is inside a transformed
  call: it waits for those calls to finish.
* A **call** that starts while a loader runs or waits (``if LOADING:``, one list test on
  the hot path) parks until every loader is done, and only then runs user code.

Readers are not counted on the hot path. A loader finds them by looking at the stacks of
the other threads (``sys._current_frames()``): a thread with a frame of unijax's
transforms or engine on its stack is inside a call, unless it is parked here or is
itself loading. A call that passed its ``LOADING`` test before the loader announced
itself already has that frame on its stack, so the loader sees it and waits for it.

The wait for running calls is bounded (:data:`DRAIN_TIMEOUT_S`): user code inside a
transform may itself wait for a thread that now needs a library (a thread pool whose
worker makes the first call of a backend), and a bounded wait turns that deadlock into a
delay: the load then goes ahead, with a ``RuntimeWarning`` naming the threads.
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

__all__ = ["DRAIN_TIMEOUT_S", "LOADING", "run_loader", "wait_for_loads"]

T = TypeVar("T")

#: Seconds a loader waits for other threads' transformed calls before it loads anyway.
DRAIN_TIMEOUT_S = 10.0

#: Idents of the threads running a loader or queued for one; empty when none. Hot paths
#: read it without a lock (``if LOADING: wait_for_loads()``): a list is mutated in
#: place, so modules that import it see every change.
LOADING: list[int] = []

#: Idents of the threads parked in :func:`wait_for_loads`: they run no user code.
_parked: list[int] = []

_state = threading.Condition()  # guards LOADING and _parked
_load_lock = threading.RLock()  # reentrant: one backend's loader may load another's


def wait_for_loads() -> None:
    """Block while another thread runs (or waits to run) a backend loader.

    A thread that is itself loading never waits: its loader may use unijax.

    Example:
        >>> wait_for_loads()  # nothing is loading: returns at once
    """
    if not LOADING:
        return
    me = threading.get_ident()
    with _state:
        if me in LOADING:
            return
        _parked.append(me)
        _state.notify_all()  # a loader waiting for this thread's call may go on
        try:
            while LOADING:
                _state.wait()
        finally:
            _parked.remove(me)


def run_loader(loader: Callable[[], T], what: str) -> T:
    """Run ``loader`` (which imports a library) once no other thread runs user code.

    Loaders run one at a time. After its own loader, a thread also waits for the loaders
    other threads queued meanwhile, so that it never returns to user code while one runs.

    Args:
        loader: Imports the library and returns what it loaded.
        what: The library, for the warning of a load that could not wait any longer
            (``"backend 'jax'"``).

    Warns:
        RuntimeWarning: Other threads stayed inside transformed calls for
            :data:`DRAIN_TIMEOUT_S` seconds; the library was imported beside them.
    """
    me = threading.get_ident()
    with _state:
        LOADING.append(me)
    try:
        with _load_lock:
            _drain(me, what)
            return loader()
    finally:
        with _state:
            LOADING.remove(me)
            _state.notify_all()
        if LOADING and me not in LOADING:
            wait_for_loads()


def _drain(me: int, what: str) -> None:
    """Wait until no other thread is inside a transformed call (bounded)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    delay = 0.0005
    with _state:
        while True:
            busy = _threads_in_calls(me)
            if not busy:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # Calls that end do not notify (that would cost every call); poll instead,
            # briefly at first: most calls are short.
            _state.wait(min(delay, left))
            delay = min(2 * delay, 0.02)
    names = {t.ident: t.name for t in threading.enumerate()}
    warnings.warn(RuntimeWarning(
        f"unijax is importing {what} while thread(s) "
        f"{', '.join(repr(names.get(i, i)) for i in busy)} stayed inside a transformed "
        f"call for {DRAIN_TIMEOUT_S:g} s; code there that inspects sys.modules may see "
        "the library half-imported. Use the backend once before starting threads (for "
        "example unijax.namespace(name)) to load it up front."), stacklevel=2)


def _threads_in_calls(me: int) -> list[int]:
    exempt = {me, *LOADING, *_parked}
    return [ident for ident, frame in sys._current_frames().items()
            if ident not in exempt and _in_call(frame)]


def _in_call(frame: FrameType | None) -> bool:
    try:
        while frame is not None:
            name: Any = frame.f_globals.get("__name__", "")
            if (name == "unijax" or name.startswith("unijax.")) and not name.startswith(
                    _NOT_CALLS):
                return True
            frame = frame.f_back
    except Exception:
        # The other thread runs on between two steps of this walk (the GIL is released
        # between bytecodes), and CPython 3.11 can then hand back a stale f_back that is
        # no frame at all. Not knowing means "maybe in a call": the loader waits and
        # looks again, which is safe; guessing "no" is not.
        return True
    return False


# Modules whose frames do not mean "inside a transformed call": the dispatcher's own (a
# thread there is choosing a backend, and will park or load before it runs user code),
# and the drivers (CLI, checks), which run calls through the transforms, whose frames
# mark them, and may wait between calls for threads of their own that load a backend.
_NOT_CALLS = ("unijax.dispatch.", "unijax.cli", "unijax.__main__", "unijax.testing")
