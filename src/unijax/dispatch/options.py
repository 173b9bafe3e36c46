"""unijax's options: one table, four sources, context-local overrides.

Each option is read, most important first, from: a context manager (``use_backend``,
``use_default_float_dtype``; held in :mod:`contextvars`, so threads and asyncio tasks
never see each other's choice), a process-wide setter (``set_backend``,
``config.update``), an environment variable, the ``[tool.unijax]`` table of the nearest
``pyproject.toml`` (or the TOML file named by ``UNIJAX_CONFIG``), and the default.

The environment and the file are read once and cached; :func:`reload` reads them again.
Reading an option on the hot path is a context-variable get plus a cached lookup.
"""

from __future__ import annotations

import contextvars
import difflib
import os
import re
import sys
import threading
import tomllib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from unijax.errors import ConfigError, message

__all__ = [
    "ECHO_LIMIT",
    "GeneratorChoice",
    "Option",
    "clear_runtime",
    "configured_backend",
    "context_backend",
    "default_float_dtype",
    "options",
    "read",
    "reload",
    "set_runtime",
    "shown",
    "subscribe",
    "unsubscribe",
]

CONFIG_ENV = "UNIJAX_CONFIG"
FLOAT_DTYPES = ("float64", "float32")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


#: Characters of a user's value that an error message echoes; the rest is elided.
ECHO_LIMIT = 60


def shown(value: Any, limit: int = ECHO_LIMIT, *, quoted: bool = True) -> str:
    """``repr(value)`` (``str`` if not ``quoted``) for a message, cut to ``limit`` characters.

    A value comes from the user (an environment variable, a config file, an argument)
    and may be arbitrarily long; a message echoes its start and says how long it was.

    Example:
        >>> shown("jax")
        "'jax'"
        >>> shown("x" * 1000, limit=8)
        "'xxxxxx... (1000 characters)"
    """
    text = repr(value) if quoted else str(value)
    if len(text) <= limit:
        return text
    size = (f"{len(value)} characters" if isinstance(value, str)
            else f"{len(text)} characters in all")
    return f"{text[:limit - 1]}... ({size})"


# --- validators: value -> normalised value, or ValueError(text of the valid choices) -----


def _check_backend(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and _NAME_RE.match(value.strip()):
        return value.strip()
    raise ValueError("a backend name such as 'numpy' or 'jax'")


def _check_float_dtype(value: Any) -> str:
    name = getattr(value, "name", None) or getattr(value, "__name__", None) or value
    if isinstance(name, str) and name.strip().lower() in FLOAT_DTYPES:
        return name.strip().lower()
    raise ValueError("one of 'float64', 'float32'")


def _check_plugins(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
        if not value:
            return None
    if isinstance(value, list | tuple) and all(
        isinstance(v, str) and all(_NAME_RE.match(part.strip()) for part in v.split("=", 1))
        for v in value
    ):
        return tuple("=".join(part.strip() for part in v.split("=", 1)) for v in value)
    raise ValueError("a comma-separated list of backend names, e.g. 'numpy,jax' (a name "
                     "may pick the distribution providing it: 'numpy=my-numpy-plugin')")


def _check_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("a boolean: 1/true/yes/on or 0/false/no/off")


def _non_negative_int(zero: str) -> Callable[[Any], int]:
    """A validator of non-negative integers (or their digits as text); ``zero`` says
    what 0 means, in the error."""
    def check(value: Any) -> int:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise ValueError(f"a non-negative integer (0{zero})")

    return check


def _check_jit_compiler(value: Any) -> str:
    if isinstance(value, str) and value.strip().lower() in ("auto", "numba", "python"):
        return value.strip().lower()
    raise ValueError("one of 'auto', 'numba', 'python'")


@dataclass(frozen=True)
class Option:
    """One configuration option.

    Attributes:
        name: The option's name (``config.read(name)``, the key in ``[tool.unijax]``).
        default: The value used when no source sets it.
        env: The environment variable that sets it.
        help: One line on what it does.
        validate: Normalises a value or raises ``ValueError`` saying what is valid.

    Example:
        >>> import unijax
        >>> opt = unijax.config.options()[1]
        >>> opt.name, opt.env, opt.validate("FLOAT32")
        ('default_float_dtype', 'UNIJAX_DEFAULT_FLOAT_DTYPE', 'float32')
    """

    name: str
    default: Any
    env: str
    help: str
    validate: Callable[[Any], Any]


_OPTIONS: dict[str, Option] = {
    opt.name: opt
    for opt in (
        Option("backend", None, "UNIJAX_BACKEND",
               "Backend used when no argument or context chooses one.", _check_backend),
        Option("default_float_dtype", "float64", "UNIJAX_DEFAULT_FLOAT_DTYPE",
               "Dtype of floating-point data created by unijax ('float64' or 'float32').",
               _check_float_dtype),
        Option("plugins", None, "UNIJAX_PLUGINS",
               "Allow-list of backend plugins (comma separated); unset allows all. "
               "'name=distribution' picks which installed distribution provides a name.",
               _check_plugins),
        Option("disable_plugin_autoload", False, "UNIJAX_DISABLE_PLUGIN_AUTOLOAD",
               "Load no entry-point plugin except those named in 'plugins'.", _check_bool),
        Option("jit_cache_size", 256, "UNIJAX_JIT_CACHE_SIZE",
               "Compiled programs kept per jitted function (0 disables caching).",
               _non_negative_int(" disables the cache")),
        Option("jit_compiler", "auto", "UNIJAX_JIT_COMPILER",
               "How jit lowers programs on NumPy: 'auto' (Numba for loops and hot "
               "programs when installed), 'numba' or 'python'.", _check_jit_compiler),
        Option("jit_threads", 0, "UNIJAX_JIT_THREADS",
               "Threads the Numba lowering splits a large elementwise program's rows "
               "over (0: the CPUs this process may use; 1: never split).",
               _non_negative_int(": one per available CPU")),
    )
}

class GeneratorChoice:
    """A ``use_backend`` choice made inside a generator's own code.

    A generator runs in its caller's context, so a context variable it sets is still set
    when it yields: the caller would see the generator's backend. This value makes the
    choice apply only while the generator's frame runs on the thread that made it (and
    in other threads that copied the context meanwhile); elsewhere the choice that was
    in effect before it (``parent``) applies.

    Attributes:
        name: The backend chosen.
        frame: The generator's frame, which made the choice.
        thread: The ident of the thread that made it.
        parent: What ``use_backend`` found in the context before it.
    """

    __slots__ = ("frame", "name", "parent", "thread")

    def __init__(self, name: str, frame: FrameType, parent: Any) -> None:
        self.name, self.frame, self.parent = name, frame, parent
        self.thread = threading.get_ident()

    def effective(self) -> str | None:
        """The backend this choice means here and now (the parent's, if it is away)."""
        choice: Any = self
        while choice.__class__ is GeneratorChoice:
            if choice.thread != threading.get_ident() or _is_running(choice.frame):
                return str(choice.name)
            choice = choice.parent
        return choice


def _is_running(frame: FrameType) -> bool:
    # A suspended generator's frame is on no stack: walk this thread's from the top.
    current: FrameType | None = sys._getframe(1)
    while current is not None:
        if current is frame:
            return True
        current = current.f_back
    return False


# Context-local overrides; None means "not set in this context". A ``use_backend`` in a
# generator stores a GeneratorChoice: readers take ``.effective()`` of any value that is
# not a str (see context_backend).
_backend_ctx: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "unijax_backend", default=None)
_float_ctx: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "unijax_default_float_dtype", default=None)

_lock = threading.RLock()
_runtime: dict[str, tuple[Any, str]] = {}  # name -> (value, how it was set)
_raw: dict[str, tuple[Any, str, str]] | None = None  # name -> (raw, rule, where); env+file
_resolved: dict[str, tuple[Any, str, str]] = {}  # name -> (value, rule, reason), cached
_listeners: list[Callable[[str, Any], None]] = []
_generation = 0  # bumped on every change, so a lookup racing a change is not cached


# --- reading the sources ----------------------------------------------------------------


def _find_config_file() -> tuple[Path, dict[str, Any]] | None:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        data = _read_toml(path, source=f"{CONFIG_ENV}={explicit}")
        if "tool" not in data:  # the options at the top level, without the header
            return path, data
        return path, _tool_table(data, path) or {}
    for folder in (Path.cwd(), *Path.cwd().parents):
        path = folder / "pyproject.toml"
        if path.is_file():
            # The first pyproject.toml up from the working directory is the project's,
            # as for ruff and black: without [tool.unijax] the project sets nothing, and
            # a pyproject.toml further up (another project's) must not decide for it.
            table = _tool_table(_read_toml(path, source=str(path)), path)
            return None if table is None else (path, table)
    return None


def _tool_table(data: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """The ``[tool.unijax]`` table of the parsed TOML file ``path``, or None."""
    tool = data.get("tool")
    if tool is None:
        return None
    if not isinstance(tool, dict):
        raise ConfigError(message(
            f"unijax cannot read config file {path}: its 'tool' entry is not a table",
            expected="a [tool] table", got=f"tool = {tool!r}",
            fix="Make 'tool' a table ([tool.unijax] holds unijax's options)."))
    table = tool.get("unijax")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(message(
            f"unijax cannot read config file {path}: its 'tool.unijax' entry is not a "
            "table", expected="a [tool.unijax] table of options",
            got=f"unijax = {table!r} in [tool]",
            fix='Write the options under a [tool.unijax] header, e.g. backend = "jax".'))
    return dict(table)


def _read_toml(path: Path, *, source: str) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(message(
            f"unijax config file {path} (from {source}) does not exist",
            fix=f"Create it or unset {CONFIG_ENV}.")) from None
    except UnicodeDecodeError as err:
        raise ConfigError(message(
            f"unijax cannot read config file {path}: it is not UTF-8 text",
            expected="a TOML file, which is UTF-8", got=f"{type(err).__name__}: {err}",
            fix="Save the file as UTF-8.")) from err
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(message(
            f"unijax cannot read config file {path}", got=f"{type(err).__name__}: {err}",
            fix="Fix the TOML syntax.")) from err


def _load_raw() -> dict[str, tuple[Any, str, str]]:
    """Environment and file values (not yet validated), read once."""
    global _raw
    cached = _raw  # read once: a reload may set it to None in between
    if cached is not None:
        return cached
    with _lock:
        if _raw is not None:
            return _raw
        raw: dict[str, tuple[Any, str, str]] = {}
        found = _find_config_file()
        if found is not None:
            path, table = found
            spelled: dict[str, str] = {}  # option name -> the key that set it
            for key, value in table.items():
                name = key.replace("-", "_")
                if name not in _OPTIONS:
                    raise ConfigError(message(
                        f"unknown unijax option {shown(key)} in [tool.unijax] of {path}",
                        expected=f"one of {', '.join(_OPTIONS)}",
                        fix=_suggest(name, "Remove the key or fix its spelling.")))
                if name in spelled:
                    # TOML sees two keys; which one a dict keeps is not the user's choice.
                    raise ConfigError(message(
                        f"unijax option {name!r} is set twice in [tool.unijax] of {path}, "
                        f"as {spelled[name]!r} and as {key!r}",
                        expected="each option once (dashes and underscores name the same "
                                 "option)",
                        got=f"{spelled[name]} = {shown(raw[name][0])} and "
                            f"{key} = {shown(value)}",
                        fix=f"Delete one of the two lines (the usual spelling is {name!r})."))
                spelled[name] = key
                raw[name] = (value, "config_file", f"[tool.unijax] of {path}")
        for opt in _OPTIONS.values():
            value = os.environ.get(opt.env)
            if value is not None:
                raw[opt.name] = (value, "env", opt.env)
        _raw = raw
        return raw


def _suggest(name: str, fallback: str) -> str:
    close = difflib.get_close_matches(name[:100], list(_OPTIONS), n=1)
    return f"Did you mean {close[0]!r}?" if close else fallback


def _option(name: str) -> Option:
    try:
        return _OPTIONS[name]
    except KeyError:
        raise ConfigError(message(
            f"unknown unijax option {shown(name)}", expected=f"one of {', '.join(_OPTIONS)}",
            fix=_suggest(name, "See unijax.config.options()."))) from None


def _validated(opt: Option, value: Any, source: str, fix: str) -> Any:
    try:
        return opt.validate(value)
    except ValueError as err:
        raise ConfigError(message(
            f"invalid value for unijax option {opt.name!r} from {source}",
            expected=str(err), got=shown(value), fix=fix)) from None


def _lookup(name: str) -> tuple[Any, str, str]:
    """The process-wide value of ``name`` with its rule and a sentence saying why."""
    try:
        return _resolved[name]
    except KeyError:
        pass
    opt = _option(name)
    generation = _generation
    runtime = _runtime.get(name)
    # The file and environment are read once here: a reload between two reads would
    # drop the name from the second.
    raw_values = _load_raw() if runtime is None else {}
    if runtime is not None:
        value, how = runtime
        entry = (value, "set_backend" if name == "backend" else "set", how)
    elif name in raw_values:
        raw, rule, where = raw_values[name]
        if rule == "env":
            value = _validated(opt, raw, f"the environment variable {where}",
                               f"Set {where} to a valid value or unset it.")
            reason = f"{where}={shown(raw, quoted=False)} in the environment"
        else:
            value = _validated(opt, raw, where, f"Fix the value of {name!r} in {where}.")
            reason = f"{name} = {shown(raw)} in {where}"
        entry = (value, rule, reason)
    else:
        entry = (opt.default, "default", "the default")
    with _lock:
        if generation == _generation:
            _resolved[name] = entry
    return entry


def _changed(name: str, value: Any) -> None:
    global _generation
    with _lock:
        _generation += 1
        _resolved.clear()
    _notify(name, value)


def _notify(name: str, value: Any) -> None:
    for listener in list(_listeners):
        try:
            listener(name, value)
        except Exception as err:  # one broken subscriber must not break every update
            warnings.warn(f"unijax config subscriber {listener!r} raised {err!r}",
                          RuntimeWarning, stacklevel=3)


def configured_backend() -> tuple[str, str, str] | None:
    """``(name, rule, reason)`` from the process-wide sources, or None (hot path)."""
    entry = _resolved.get("backend") or _lookup("backend")
    return None if entry[0] is None else entry


def context_backend() -> str | None:
    """The backend chosen by the innermost ``use_backend`` in effect here, if any."""
    name = _backend_ctx.get()
    if name is None or name.__class__ is str:
        return name
    return name.effective()



def read(name: str) -> Any:
    """The value of option ``name`` in effect here (context overrides included).

    Raises:
        ConfigError: ``name`` is not an option, or its source holds an invalid value.
    """
    if name == "backend":
        chosen = context_backend()
        if chosen is not None:
            return chosen
    if name == "default_float_dtype" and _float_ctx.get() is not None:
        return _float_ctx.get()
    return _lookup(name)[0]


def set_runtime(name: str, value: Any, how: str) -> None:
    """Set option ``name`` for the whole process (``value`` already validated)."""
    with _lock:
        _runtime[name] = (value, how)
    _changed(name, value)


def clear_runtime(name: str) -> None:
    """Forget the process-wide setting of ``name`` (environment, file or default again)."""
    with _lock:
        _runtime.pop(name, None)
    _changed(name, None)


def subscribe(callback: Callable[[str, Any], None]) -> None:
    """Call ``callback(name, value)`` after an option changes (``name`` "*" on reload)."""
    with _lock:
        if callback not in _listeners:
            _listeners.append(callback)


def unsubscribe(callback: Callable[[str, Any], None]) -> None:
    """Stop calling ``callback`` (no error if it was not subscribed)."""
    with _lock:
        if callback in _listeners:
            _listeners.remove(callback)


def options() -> tuple[Option, ...]:
    """Every option, in table order."""
    return tuple(_OPTIONS.values())


def reload() -> None:
    """Read the environment and the config file again (values set at runtime stay).

    Example:
        >>> import unijax
        >>> unijax.config.reload()
    """
    global _raw
    with _lock:
        _raw = None
    _changed("*", None)


def _reset() -> None:
    """Forget runtime settings too (tests only)."""
    with _lock:
        _runtime.clear()
    reload()



def default_float_dtype() -> str:
    """The dtype name (``"float64"`` or ``"float32"``) for floating-point data.

    Example:
        >>> import unijax
        >>> unijax.default_float_dtype() in ("float64", "float32")
        True
    """
    return _float_ctx.get() or (_resolved.get("default_float_dtype")
                                or _lookup("default_float_dtype"))[0]


