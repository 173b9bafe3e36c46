"""The Numba lowering: a staged program as one ``@njit`` function (machine code).

:func:`compile_numba` is what NumPy's ``compiler`` hook calls for ``jit_compiler`` values
``"numba"`` and ``"auto"``. It generates the function's source
(:mod:`unijax.engine.numba_codegen`: fused elementwise loops, reductions in their
producers' loops, BLAS for matrix products, ``scan``/``while_loop``/``cond`` bodies as
native loops and branches), and returns a :class:`NumbaExecutable` that decides when to
compile and falls back to the caller's lowering (the Python one) where Numba cannot
compile the program (:func:`~unijax.engine.numba_primitives.unsupported`), where it fails
to, or where compiling would win nothing (a program without loops whose time is in large
matrix products). ``executable.lowering_reason`` says which runs and why.

Generated source is written to a file under :func:`cache_dir` named by its hash and
compiled with ``cache=True``, so a new process loads the machine code from disk. Numba is
imported only when a program is first compiled.

A program that ends in one large fused elementwise group
(:func:`~unijax.engine.numba_codegen.generate_rows`) runs as row ranges on several
threads: unijax's own pool (the machine code releases the GIL), not Numba's threading
layers, which depend on the machine and some of which abort on concurrent calls.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from unijax.engine.ir import Atom, Literal, Program, Var
from unijax.engine.numba_codegen import generate, generate_rows
from unijax.engine.numba_primitives import dtype_of, unsupported
from unijax.engine.row_threads import available_cpus, run_rows

__all__ = [
    "BIG_WORK",
    "BLAS_MIN_ELEMENTS",
    "HOT_CALLS",
    "LOOP_CALLS",
    "LOOP_PRIMITIVES",
    "NumbaExecutable",
    "cache_dir",
    "compile_numba",
    "generate",
    "numba_available",
    "unsupported",
]

#: Calls after which ``when="auto"`` compiles a program without loops.
HOT_CALLS = 20
#: The call at which ``when="auto"`` compiles a program with a loop.
LOOP_CALLS = 3
#: Primitives that make a program worth compiling sooner under ``when="auto"``.
LOOP_PRIMITIVES = frozenset({"scan", "while_loop"})
#: Elements computed per run (summed over the equations) from which ``when="auto"``
#: compiles a program at its first run: NumPy's pass over memory per operation then costs
#: tens of milliseconds a call, and fusing the operations saves more than compiling costs
#: within a few calls (10**7 normal draws: a second a call, against a compile of three).
BIG_WORK = 1 << 24


def numba_available() -> bool:
    """Whether Numba is installed (found without importing it)."""
    return importlib.util.find_spec("numba") is not None


#: A matrix product with a result at least this large makes a program without loops
#: "BLAS-bound": Numba would win nothing on it (measured on the MLP gradient, it lost).
BLAS_MIN_ELEMENTS = 4096


def _blas_bound(program: Program) -> bool:
    return any(eqn.primitive.name == "matmul" and not eqn.primitive.namespace and
               math.prod(eqn.outputs[0].shape) >= BLAS_MIN_ELEMENTS
               for eqn in program.equations)


def _work(program: Program) -> int:
    """Elements the program's top-level equations compute in one run."""
    return sum(math.prod(v.shape) for eqn in program.equations for v in eqn.outputs)


def _has_loop(program: Program) -> bool:
    for eqn in program.equations:
        if eqn.primitive.name in LOOP_PRIMITIVES:
            return True
        for value in eqn.params.values():
            for body in value if isinstance(value, tuple) else (value,):
                inner = getattr(body, "program", None)
                if isinstance(inner, Program) and _has_loop(inner):
                    return True
    return False


# --- code generation ------------------------------------------------------------------------


# --- the disk cache and the executable ------------------------------------------------------


def cache_dir() -> Path:
    """Where generated sources and Numba's machine code are kept (``UNIJAX_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/unijax`` or ``~/.cache/unijax``, then ``numba``)."""
    root = os.environ.get("UNIJAX_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "numba"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "unijax" / "numba"


_modules: dict[str, Any] = {}
_modules_lock = threading.Lock()


def _load(source: str) -> Any:
    """The compiled-on-demand Numba function of ``source``, through a file named by its
    hash (Numba's ``cache=True`` needs a file; the same program maps to the same file)."""
    digest = _digest(source)
    with _modules_lock:
        module = _modules.get(digest)
        if module is None:
            folder = cache_dir()
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"unijax_{digest}.py"
            if not path.is_file() or path.read_text() != source:
                # Written whole, then renamed: a concurrent reader never sees half a file,
                # and an unchanged file keeps the timestamp Numba's cache index checks.
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(source)
                os.replace(tmp, path)
            name = f"unijax_numba_{digest}"
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            _modules[digest] = module
    return module.run


def _digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:24]


def _on_disk(source: str) -> bool:
    """Whether Numba's cache holds machine code for ``source`` (compiled by any process)."""
    folder = cache_dir()
    name = f"unijax_{_digest(source)}"
    if not (folder / f"{name}.py").is_file():
        return False
    return any((folder / "__pycache__").glob(f"{name}.run-*.nbi"))


class NumbaExecutable:
    """A program run by Numba machine code, or by its fallback until (or unless) it can be.

    Attributes:
        program: The program.
        source: The generated Numba source (``None`` if the program cannot be lowered).
        lowering: ``"numba"`` once the machine code runs, else ``"python"``.
        lowering_reason: Why that lowering runs, in words.
        compile_seconds: Seconds the first Numba call took (compiling, or loading the
            cached machine code), or ``None``.
    """

    def __init__(self, program: Program, xp: Any, fallback: Callable[[], Any], *,
                 when: str = "now", threads: int = 0) -> None:
        self.program = program
        self._fallback_factory = fallback
        self._fallback: Any = None
        self._calls = 0
        self._lock = threading.Lock()
        self.compile_seconds: float | None = None
        self._fn: Any = None
        self._constants: list[Any] = []
        reason = unsupported(program)
        self.source: str | None = None
        if reason is not None:
            self._set_python(f"the Python lowering: Numba cannot compile {reason}")
            return
        if not _has_loop(program) and _blas_bound(program):
            self._set_python("the Python lowering: the program has no loop and its time is "
                             "in large matrix products, which both lowerings leave to BLAS "
                             "(NumPy's own vectorised loops then do the rest as fast)")
            return
        threads = threads or available_cpus()
        rows = generate_rows(program) if threads > 1 else None
        #: Outputs as (shape, dtype) when the program's rows are split over threads.
        self._row_outputs: list[tuple[tuple[int, ...], Any]] | None = None
        if rows is not None:
            import numpy as np

            self.source, self._constants = rows
            outputs = [a for a in program.outputs if isinstance(a, Var)]  # all, here
            self._threads = min(threads, outputs[0].shape[0])
            self._row_outputs = [(a.shape, np.dtype(dtype_of(a))) for a in outputs]
        else:
            self.source, self._constants = generate(program)
        self._in_scalar = [v.shape == () and not v.weak for v in program.inputs]
        self._constants = [c[()] if getattr(c, "shape", None) == () else c
                           for c in self._constants]
        self._out = [self._out_converter(a) for a in program.outputs]
        self._hot = False
        if when == "now":
            self.lowering, self.lowering_reason = "numba", "Numba: jit_compiler='numba'"
            self._pending = True
            return
        # "auto": a program that runs once must not pay a compile of seconds; one whose
        # machine code is already on disk loads it at once (milliseconds).
        if _on_disk(self.source):
            self._threshold, why = 1, "its machine code is in the disk cache"
        elif _work(program) >= BIG_WORK:
            self._threshold, why = 1, "it computes at least 2**24 elements a run"
        elif _has_loop(program):
            self._threshold, why = LOOP_CALLS, f"it has a loop and ran {LOOP_CALLS} times"
        else:
            self._threshold, why = HOT_CALLS, f"it ran {HOT_CALLS} times"
        self._why = f"Numba (jit_compiler='auto'): {why}"
        if self._threshold <= 1:
            self.lowering, self.lowering_reason = "numba", self._why
            self._pending = True
            return
        self._set_python(f"the Python lowering (jit_compiler='auto'): Numba compiles the "
                         f"program once {why.replace('ran', 'has run')}")
        self._hot = True

    def _set_python(self, reason: str) -> None:
        self.lowering = "python"
        self.lowering_reason = reason
        self._pending = False
        self._hot = False

    def _python(self) -> Any:
        if self._fallback is None:
            self._fallback = self._fallback_factory()
        return self._fallback

    def _out_converter(self, atom: Atom) -> Callable[[Any], Any] | None:
        if isinstance(atom, Literal):
            return None
        if atom in self.program.constants:
            return lambda v: v.copy() if hasattr(v, "copy") else v
        if atom.weak:
            return atom.dtype
        if atom.shape == ():
            import numpy as np

            dtype = np.dtype(dtype_of(atom))
            return lambda v: dtype.type(v)
        return None

    def __call__(self, *args: Any) -> list[Any]:
        fn = self._fn
        if fn is None:
            if self._hot:
                self._calls += 1
                if self._calls < self._threshold:
                    return self._python()(*args)
                self._hot = False
                self.lowering, self.lowering_reason = "numba", self._why
                self._pending = True
            if not self._pending:
                return self._python()(*args)
            return self._first_call(args)
        return self._run(fn, args)

    def _run(self, fn: Any, args: Sequence[Any]) -> list[Any]:
        values = [a[()] if s else a for a, s in zip(args, self._in_scalar, strict=True)]
        if self._row_outputs is not None:
            return self._run_rows(fn, values)
        outs = fn(*values, *self._constants)
        return [out if conv is None else conv(out)
                for out, conv in zip(outs, self._out, strict=True)]

    def _run_rows(self, fn: Any, values: list[Any]) -> list[Any]:
        """Fill the outputs' rows in equal ranges, one per thread (the function releases
        the GIL, so they run at once)."""
        import numpy as np

        outs = [np.empty(shape, dtype) for shape, dtype in self._row_outputs or ()]
        if self._fn is None:
            fn(0, 0, *values, *self._constants, *outs)  # compile (or load) once, here
        run_rows(lambda lo, hi: fn(lo, hi, *values, *self._constants, *outs),
                 outs[0].shape[0], self._threads)
        return outs

    def _first_call(self, args: Sequence[Any]) -> list[Any]:
        with self._lock:
            if self._fn is not None:
                return self._run(self._fn, args)
            start = time.perf_counter()
            try:
                assert self.source is not None
                with warnings.catch_warnings():
                    # Numba's performance notes are not the user's concern (and must not
                    # turn into errors where warnings are errors).
                    warnings.simplefilter("ignore")
                    fn = _load(self.source)
                    result = self._run(fn, args)
            except Exception as err:  # any failure to compile: the Python lowering runs
                self._set_python("the Python lowering: Numba failed to compile the program "
                                 f"({type(err).__name__}: {str(err).splitlines()[0][:200]})")
                return self._python()(*args)
            self.compile_seconds = time.perf_counter() - start
            self._fn = fn
            self._pending = False
            return result


def compile_numba(program: Program, xp: Any, *, fallback: Callable[[Program, Any], Any],
                  when: str = "now", threads: int = 0) -> NumbaExecutable:
    """Lower ``program`` to Numba machine code, falling back to ``fallback(program, xp)``.

    Args:
        program: The (optimised) program.
        xp: The NumPy namespace (the fallback's).
        fallback: The lowering that runs what Numba cannot (and, with ``when="auto"``,
            what is not worth compiling yet).
        when: ``"now"``: compile on the first call; ``"auto"``: on the first call if the
            machine code is in the disk cache or the program computes at least
            :data:`BIG_WORK` elements a run, else on call :data:`LOOP_CALLS` for a
            program with a loop and on call :data:`HOT_CALLS` for any other.
        threads: Threads a program that ends in one large elementwise group
            (:func:`~unijax.engine.numba_codegen.generate_rows`) splits its rows over:
            ``0`` for one per available CPU, ``1`` never to split.

    Returns:
        A callable ``f(*flat_inputs) -> list of outputs`` with ``f.lowering`` and
        ``f.lowering_reason``.
    """
    return NumbaExecutable(program, xp, lambda: fallback(program, xp), when=when,
                           threads=threads)
