"""``jit`` on torch: the engine stages the program, ``torch.compile`` compiles the hot ones.

The unijax engine traces a function once per signature (static arguments, shapes and
dtypes; a bounded least-recently-used cache), which keeps ``jit``'s contract identical on
every backend: Python side effects run once per signature, Python control flow on a
traced value raises :class:`~unijax.errors.ConcretizationError`, and ``cache_info`` counts
hits and misses. Each staged program is lowered to straight-line Python over
``array_api_compat.torch`` (:func:`unijax.extend.compile_python`), which already runs
without any of unijax's per-operation work.

A program that has run for a while is handed to ``torch.compile`` (inductor), when
inductor works here: on the CPU it needs a C++ compiler. Inductor takes seconds per
program, which pays off only where the program itself takes that long, and its time grows
with the program's size (minutes for thousands of operations), so
``UNIJAX_TORCH_COMPILE=auto`` (the default) compiles a program only after it ran
``_AUTO_MIN_CALLS`` times and its runs as generated Python add up to ``_AUTO_AFTER_S``
(ten seconds, about what inductor takes to compile it), and only
when it has at most ``_AUTO_MAX_LINES`` operations; until then nothing imports inductor.
``always`` compiles at its first run from the cache, whatever its size; ``never`` keeps
the generated Python. Any other value is a :class:`~unijax.errors.ConfigError`. A program
whose compilation fails,
and any call whose inputs are ``torch.func`` tensors (a native transform outside ``jit``,
which must see every operation) or that runs with grad mode recording a graph for inputs
that require grad, runs the generated Python instead. :func:`status` says what ran.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from unijax.errors import ConfigError, message
from unijax.extend import compile_python

__all__ = ["compile_program", "status"]

_MODES = ("auto", "always", "never")
# Seconds a program runs as generated Python before auto compiles it: about what a first
# inductor compilation costs, so compiling at most doubles the time a program would have
# taken (a short script never waits for inductor).
_AUTO_AFTER_S = 10.0
_AUTO_MIN_CALLS = 10  # and runs at least this often: a short script never waits for inductor
_AUTO_MAX_LINES = 400  # larger programs stay generated Python under auto (compile time grows)

_lock = threading.Lock()
_counts = {"generated": 0, "compiled": 0, "failed": 0, "too large": 0}
_errors: list[str] = []
_compile_s = [0.0]  # seconds spent in first calls of compiled programs (inductor's work)
_inductor: list[str] = []  # "" once inductor was found usable; else the reason it is not


def _mode() -> str:
    raw = os.environ.get("UNIJAX_TORCH_COMPILE", "auto")
    mode = raw.strip().lower() or "auto"
    if mode not in _MODES:
        raise ConfigError(message(
            "UNIJAX_TORCH_COMPILE (how jit uses torch.compile on the torch backend) has an "
            "invalid value",
            expected="one of " + ", ".join(repr(m) for m in _MODES),
            got=repr(raw[:40] + ("..." if len(raw) > 40 else "")),
            fix="Set UNIJAX_TORCH_COMPILE=auto (the default), always or never, or unset it."))
    return mode


def _compiler_on_path() -> bool:
    return any(shutil.which(c) for c in ("g++", "clang++", "c++"))


def inductor_problem() -> str:
    """Why inductor cannot compile here ("" when it can): on the CPU it needs a C++
    compiler (``torch._inductor.config.cpp.cxx``, else ``g++``/``clang++`` on PATH)."""
    if _inductor:
        return _inductor[0]
    try:
        import torch._inductor.config as inductor_config

        wanted = inductor_config.cpp.cxx
        names = [c for c in (wanted if isinstance(wanted, tuple) else (wanted,)) if c]
        found = next((shutil.which(c) for c in (*names, "g++", "clang++", "c++")
                      if c and shutil.which(c)), None)
        problem = "" if found else "no C++ compiler on PATH (inductor needs one on the CPU)"
    except Exception as err:  # a torch build without inductor
        problem = f"torch.compile is unavailable: {type(err).__name__}: {err}"
    _inductor.append(problem)
    return problem


def status() -> str:
    """One line for ``unijax info``: what ``jit`` does on torch here, and what ran.

    Example:
        >>> status().startswith("jit:")
        True
    """
    try:
        mode = _mode()
    except ConfigError as err:
        return f"jit: engine program, generated Python over torch ({err})"
    if mode == "never":
        problem = "UNIJAX_TORCH_COMPILE=never"
    elif mode == "auto" and not _inductor:
        # Asking inductor imports it (seconds); under auto that waits until a program is hot.
        problem = "" if _compiler_on_path() else "no C++ compiler on PATH"
    else:
        problem = inductor_problem()
    when = (f"for a program of at most {_AUTO_MAX_LINES} operations once it has run "
            f"{_AUTO_MIN_CALLS} times and {_AUTO_AFTER_S:g} s" if mode == "auto"
            else "at its first run")
    how = ("engine program, generated Python over torch" if problem else
           f"engine program, torch.compile (inductor) {when}")
    ran = ", ".join(f"{k} {v}" for k, v in _counts.items())
    text = f"jit: {how}" + (f" ({problem})" if problem else "") + f"; programs: {ran}"
    if _counts["compiled"]:
        text += f"; compiling took {_compile_s[0]:.1f} s"
    return text + (f"; last failure: {_errors[-1]}" if _errors else "")


def compile_program(program: Any, xp: Any) -> Callable[..., Any]:
    """The backend's ``compiler`` hook: generated Python, tiered up to ``torch.compile``."""
    generated = compile_python(program, xp, name="torch_program")
    with _lock:
        _counts["generated"] += 1
    mode = _mode()
    if mode == "never":
        return generated
    if mode == "always":
        return generated if inductor_problem() else _Tiered(generated, 0.0, 0)
    if not _compiler_on_path() or (_inductor and _inductor[0]):
        return generated
    size = (getattr(generated, "source", None) or "").count("\n")
    if size > _AUTO_MAX_LINES:
        with _lock:
            _counts["too large"] += 1
        return generated
    return _Tiered(generated, _AUTO_AFTER_S, _AUTO_MIN_CALLS)


class _Tiered:
    """Runs the generated Python until the program is hot, then its ``torch.compile``."""

    def __init__(self, generated: Callable[..., Any], after_s: float, after_calls: int) -> None:
        import torch

        self.generated = generated
        self.after_s = after_s
        self.after_calls = after_calls
        self.calls = 0
        self.spent = 0.0  # seconds run as generated Python, until compiled
        self.first_compiled_call = True
        self.compiled: Callable[..., Any] | None = None
        self._is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
        self._grad_enabled = torch.is_grad_enabled
        self._tensor = torch.Tensor
        self.source = getattr(generated, "source", "")

    def _plain_only(self, args: tuple[Any, ...]) -> bool:
        grad_on = self._grad_enabled()
        for a in args:
            if isinstance(a, self._tensor) and (self._is_wrapped(a) or (grad_on and
                                                                       a.requires_grad)):
                return True
        return False

    def __call__(self, *args: Any) -> Any:
        compiled = self.compiled
        if compiled is None:
            if self._plain_only(args):
                return self.generated(*args)
            if self.spent < self.after_s or self.calls < self.after_calls:
                start = time.perf_counter()
                out = self.generated(*args)
                self.spent += time.perf_counter() - start
                self.calls += 1
                return out
            if inductor_problem():  # auto asks only now: the question imports inductor
                self.compiled = self.generated
                return self.generated(*args)
            compiled = self._compile()
        elif self._plain_only(args):
            return self.generated(*args)
        try:
            if self.first_compiled_call:  # compiles now: the notices torch gives while
                self.first_compiled_call = False  # compiling are not the user's concern
                start = time.perf_counter()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        return compiled(*args)
                finally:
                    with _lock:
                        _compile_s[0] += time.perf_counter() - start
            return compiled(*args)
        except Exception as err:
            if compiled is self.generated:
                raise
            # torch.compile could not handle this program: keep the generated Python,
            # which computes the same values.
            self._fail(err)
            return self.generated(*args)

    def _compile(self) -> Callable[..., Any]:
        import torch

        try:
            self.compiled = torch.compile(self.generated, dynamic=False)
            with _lock:
                _counts["compiled"] += 1
        except Exception as err:
            self._fail(err)
        return self.compiled or self.generated

    def _fail(self, err: Exception) -> None:
        self.compiled = self.generated
        with _lock:
            _counts["failed"] += 1
            _errors[:] = [f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200]}"
                          if str(err).strip() else type(err).__name__]
