"""Run the CUDA C that ``unijax_cupy.kernels`` generates, with NumPy, on the CPU.

A reference executor for the CuPy compiler's output: :func:`make_kernel` is a drop-in
``make_kernel`` for :func:`unijax_cupy.kernels.compile_cupy` that parses each kernel's
CUDA C (the very strings handed to ``cupy.ElementwiseKernel``/``cupy.ReductionKernel``)
and evaluates them with NumPy, following C's rules where they differ from NumPy's:
typed literals (``0.5f`` is float32, ``2`` is int), integer promotion of narrow types to
``int`` before arithmetic, ``(T)x`` conversions, ``?:``, ``&&``/``||``. C math functions
map to the NumPy function with the same C meaning (``fabs`` -> ``np.fabs``, ``rint`` ->
``np.rint``). An unknown name, function or syntax raises, so a template typo fails a test
here rather than a compile on a GPU machine.

Kernels follow CuPy's calling convention: inputs broadcast together (or to the given
output arrays), Python scalars take their parameter's type, array dtypes must match.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

CTYPES = {
    "bool": np.bool_, "signed char": np.int8, "short": np.int16, "int": np.int32,
    "long long": np.int64, "unsigned char": np.uint8, "unsigned short": np.uint16,
    "unsigned int": np.uint32, "unsigned long long": np.uint64, "float16": np.float16,
    "float": np.float32, "double": np.float64,
}
NAMED = {"float32": np.float32, "float64": np.float64, "float16": np.float16, "bool": np.bool_,
         "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
         "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64}
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "log2": np.log2,
    "log10": np.log10, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh,
    "cosh": np.cosh, "tanh": np.tanh, "asinh": np.arcsinh, "acosh": np.arccosh,
    "atanh": np.arctanh, "atan2": np.arctan2, "hypot": np.hypot, "copysign": np.copysign,
    "pow": np.power, "fabs": np.fabs, "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc,
    "rint": np.rint, "isnan": np.isnan, "isinf": np.isinf, "isfinite": np.isfinite,
    "signbit": np.signbit,
    "__int_as_float": lambda x: np.asarray(int(x), np.uint32).view(np.float32)[()],
    "__longlong_as_double": lambda x: np.asarray(int(x), np.uint64).view(np.float64)[()],
}
_NARROW = (np.bool_, np.int8, np.int16, np.uint8, np.uint16)
_TOKEN = re.compile(r"\s*(?:(?P<num>0x[0-9a-fA-F]+(?:ULL|LL|U)?|(?:\d+\.\d*|\.\d+|\d+)"
                    r"(?:[eE][+-]?\d+)?(?:ULL|LL|U|f)?)|(?P<name>[A-Za-z_]\w*)|"
                    r"(?P<op>&&|\|\||==|!=|<=|>=|[-+*/<>!~&|^?:(),=;{}]))")


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise SyntaxError(f"cannot tokenize {text[pos:pos + 20]!r}")
        out.append(m.group(m.lastgroup))  # type: ignore[arg-type]
        pos = m.end()
    return out


def _literal(tok: str) -> Any:
    body = tok.rstrip("ULf")
    suffix = tok[len(body):]
    if tok.startswith("0x"):
        value = int(body, 16)
        tp = {"ULL": np.uint64, "LL": np.int64, "U": np.uint32}.get(suffix)
        if tp is None:
            tp = np.int32 if value < 2**31 else np.uint32
        return tp(value)
    if any(c in body for c in ".eE") or suffix == "f":
        return np.float32(body) if suffix == "f" else np.float64(body)
    return {"ULL": np.uint64, "LL": np.int64, "U": np.uint32}.get(suffix, np.int32)(int(body))


def _promote(x: Any) -> Any:
    x = np.asarray(x)
    return x.astype(np.int32) if x.dtype.type in _NARROW else x


_BINARY: dict[str, tuple[int, Callable[[Any, Any], Any]]] = {
    "||": (1, lambda a, b: np.logical_or(a, b)), "&&": (2, lambda a, b: np.logical_and(a, b)),
    "|": (3, lambda a, b: _promote(a) | _promote(b)),
    "^": (4, lambda a, b: _promote(a) ^ _promote(b)),
    "&": (5, lambda a, b: _promote(a) & _promote(b)),
    "==": (6, lambda a, b: _promote(a) == _promote(b)),
    "!=": (6, lambda a, b: _promote(a) != _promote(b)),
    "<": (7, lambda a, b: _promote(a) < _promote(b)),
    "<=": (7, lambda a, b: _promote(a) <= _promote(b)),
    ">": (7, lambda a, b: _promote(a) > _promote(b)),
    ">=": (7, lambda a, b: _promote(a) >= _promote(b)),
    "+": (9, lambda a, b: _promote(a) + _promote(b)),
    "-": (9, lambda a, b: _promote(a) - _promote(b)),
    "*": (10, lambda a, b: _promote(a) * _promote(b)),
    "/": (10, lambda a, b: _divide(_promote(a), _promote(b))),
}


def _divide(a: Any, b: Any) -> Any:
    if np.result_type(a, b).kind in "iu":  # C truncates toward zero
        return (np.trunc(np.true_divide(a, b))).astype(np.result_type(a, b))
    return a / b


class _Parser:
    """A Pratt parser for the C expressions the compiler writes; yields ``env -> value``."""

    def __init__(self, tokens: list[str]) -> None:
        self.toks, self.i = tokens, 0

    def peek(self, k: int = 0) -> str | None:
        return self.toks[self.i + k] if self.i + k < len(self.toks) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise SyntaxError(f"expected {expected!r}, got {tok!r} in {' '.join(self.toks)}")
        self.i += 1
        return tok

    def type_name(self) -> str | None:
        """A C type starting here (``long long``, ``unsigned char``), consumed, or None."""
        for words in sorted((t.split() for t in CTYPES), key=len, reverse=True):
            if self.toks[self.i:self.i + len(words)] == words:
                self.i += len(words)
                return " ".join(words)
        return None

    def expr(self, min_prec: int = 0) -> Callable[[dict[str, Any]], Any]:
        left = self.unary()
        while True:
            op = self.peek()
            if op == "?" and min_prec == 0:
                self.take("?")
                a = self.expr()
                self.take(":")
                b = self.expr()
                cond = left
                left = (lambda c, x, y: lambda env: np.where(c(env), x(env), y(env)))(cond, a, b)
                continue
            if op not in _BINARY or _BINARY[op][0] < min_prec:
                return left
            prec, fn = _BINARY[op]
            self.take()
            right = self.expr(prec + 1)
            left = (lambda f, x, y: lambda env: f(x(env), y(env)))(fn, left, right)

    def unary(self) -> Callable[[dict[str, Any]], Any]:
        tok = self.take()
        if tok == "-":
            inner = self.unary()
            return lambda env: -_promote(inner(env))
        if tok == "!":
            inner = self.unary()
            return lambda env: np.logical_not(inner(env))
        if tok == "~":
            inner = self.unary()
            return lambda env: np.invert(_promote(inner(env)))
        if tok == "(":
            start = self.i
            ctype = self.type_name()
            if ctype is not None and self.peek() == ")":
                self.take(")")
                inner = self.unary()
                tp = CTYPES[ctype]
                return lambda env: np.asarray(inner(env)).astype(tp)
            self.i = start
            inner = self.expr()
            self.take(")")
            return inner
        if tok[0].isdigit():
            value = _literal(tok)
            return lambda env: value
        if tok in ("true", "false"):
            flag = np.bool_(tok == "true")
            return lambda env: flag
        if self.peek() == "(":
            self.take("(")
            args = []
            while self.peek() != ")":
                args.append(self.expr())
                if self.peek() == ",":
                    self.take(",")
            self.take(")")
            return self.call(tok, args)
        name = tok
        return lambda env: env[name]

    @staticmethod
    def call(name: str, args: list[Callable[[dict[str, Any]], Any]]) -> Any:
        def run(env: dict[str, Any]) -> Any:
            fn = env.get(name) or FUNCTIONS.get(name)
            if fn is None:
                raise NameError(f"unknown CUDA function {name!r}")
            return fn(*[a(env) for a in args])

        return run


def expression(text: str) -> Callable[[dict[str, Any]], Any]:
    """Compile a C expression to ``env -> value``."""
    parser = _Parser(_tokens(text))
    fn = parser.expr()
    if parser.peek() is not None:
        raise SyntaxError(f"trailing tokens in {text!r}: {parser.toks[parser.i:]}")
    return fn


def statements(text: str) -> Callable[[dict[str, Any]], Any]:
    """Compile ``T x = e;``, ``x = e;`` and ``return e;`` statements to ``env -> value``."""
    steps = []
    for stmt in filter(None, (s.strip() for s in text.split(";"))):
        parser = _Parser(_tokens(stmt))
        ctype = parser.type_name()
        if parser.peek() == "return":
            parser.take()
            steps.append(("return", None, parser.expr()))
            continue
        target = parser.take()
        parser.take("=")
        steps.append(("let" if ctype else "set", (target, ctype), parser.expr()))
        if parser.peek() is not None:
            raise SyntaxError(f"trailing tokens in {stmt!r}")

    def run(env: dict[str, Any]) -> Any:
        for kind, target, fn in steps:
            value = fn(env)
            if kind == "return":
                return value
            name, ctype = target  # type: ignore[misc]
            if kind == "let":
                if name in env:
                    raise NameError(f"{name} declared twice")
                value = np.asarray(value).astype(CTYPES[ctype])
            elif name not in env:
                raise NameError(f"assignment to undeclared {name}")
            else:
                value = np.asarray(value).astype(env[name].dtype)
            env[name] = value
        return None

    return run


def _params(text: str) -> list[tuple[Any, str]]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        tp, name = part.split()
        out.append((NAMED[tp], name))
    return out


def _inputs(params: list[tuple[Any, str]], args: tuple[Any, ...]) -> dict[str, Any]:
    env = {}
    for (tp, name), value in zip(params, args, strict=True):
        if isinstance(value, np.ndarray):
            if value.dtype.type is not tp:
                raise TypeError(f"{name}: array of dtype {value.dtype}, declared {tp.__name__}")
            env[name] = value
        else:
            env[name] = np.asarray(value).astype(tp)  # CuPy casts scalars to the param type
    return env


def _function(preamble: str) -> tuple[str, Callable[..., Any]]:
    m = re.match(r"\s*__device__\s+__forceinline__\s+[\w ]+?\s+(\w+)\((.*?)\)\s*\{(.*)\}\s*$",
                 preamble, re.S)
    if m is None:
        raise SyntaxError(f"cannot parse the preamble {preamble!r}")
    name, params, body = m.groups()
    names = [p.split()[-1] for p in params.split(",") if p.strip()]
    run = statements(body)

    def fn(*args: Any) -> Any:
        return run(dict(zip(names, args, strict=True)))

    return name, fn


def make_kernel(spec: Any) -> Callable[..., Any]:
    """A NumPy stand-in for the CuPy kernel ``spec`` describes."""
    ins, outs = _params(spec.in_params), _params(spec.out_params)
    if spec.kind == "elementwise":
        body = statements(spec.operation)

        def elementwise(*args: Any) -> Any:
            env = _inputs(ins, args[: len(ins)])
            given = list(args[len(ins):])
            shapes = [v.shape for v in env.values() if v.ndim] + [o.shape for o in given]
            shape = np.broadcast_shapes(*shapes) if shapes else ()
            env = {k: np.broadcast_to(v, shape) for k, v in env.items()}
            for tp, name in outs:
                env[name] = np.zeros(shape, tp)
            with np.errstate(all="ignore"):
                body(env)
            results = [np.broadcast_to(env[name], shape).copy() for _, name in outs]
            for target, value in zip(given, results, strict=False):
                target[...] = value
            return results[0] if len(results) == 1 else tuple(results)

        return elementwise

    fname, fn = _function(spec.preamble)
    mapper = expression(spec.map_expr)
    reducer = expression(spec.reduce_expr)
    identity = expression(spec.identity)
    post = statements(spec.post_map_expr)
    acc_type = CTYPES[spec.reduce_type]

    def reduction(*args: Any, axis: Any = None, keepdims: bool = False) -> Any:
        env = _inputs(ins, args)
        shape = np.broadcast_shapes(*[v.shape for v in env.values()])
        env = {k: np.broadcast_to(v, shape) for k, v in env.items()}
        env[fname] = fn
        axes = tuple(range(len(shape))) if axis is None else tuple(axis)
        with np.errstate(all="ignore"):
            mapped = np.broadcast_to(np.asarray(mapper(env)).astype(acc_type), shape)
            moved = np.moveaxis(mapped, axes, tuple(range(-len(axes), 0)))
            rest = moved.shape[: moved.ndim - len(axes)]
            flat = moved.reshape(*rest, -1)
            acc = np.full(rest, np.asarray(identity({})).astype(acc_type))
            for k in range(flat.shape[-1]):  # a sequential fold of reduce_expr
                acc = np.asarray(reducer({"a": acc, "b": flat[..., k]})).astype(acc_type)
            (tp, name), = outs
            out_env = {"a": acc, name: np.zeros(rest, tp)}
            post(out_env)
        result = out_env[name]
        if keepdims:
            result = np.expand_dims(result, axes)
        return result

    return reduction
