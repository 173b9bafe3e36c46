"""The ``special`` extension: SciPy's special functions, differentiable and batchable.

With ``SCIPY_ARRAY_API=1``, SciPy looks ``xp.special.<name>`` up on the namespace of its
arguments before it falls back to NumPy, so these functions are what ``scipy.special``
(and the parts of ``scipy.stats`` written on it) compute with when they meet unijax's
tracers. Each function is a primitive with JVP, VJP and batching rules; ``multigammaln``
is written with ``gammaln``.

**Evaluation.** A primitive evaluates with, in order: the backend namespace's own
``special.<name>``, if it has one; the special-function module of the array library the
arguments belong to, imported on first use and recognised by the module of their type
(``jax.scipy.special`` for JAX arrays and tracers, ``cupyx.scipy.special``,
``torch.special``); and otherwise ``scipy.special`` on host copies of the values,
converted back with the namespace's ``asarray`` on the arguments' device. The host result
keeps the arguments' floating dtype (``float32`` stays ``float32`` next to an integer
array). Autograd's boxes get an Autograd primitive over the SciPy function whose VJPs are
the derivatives below: ``autograd.scipy.special`` lacks half of these functions
(``ndtr``, ``xlogy``, ...) and the derivative of ``gammainc`` in ``a``, so this gives its
native ``grad`` the same functions and derivatives as every other backend. SciPy is
needed only on these last two paths; without it they raise
:class:`~unijax.errors.BackendUnavailableError`.

**Derivatives** are written with the traced functions, so they are differentiable again.
They follow JAX (``jax.scipy.special``), including its choices at edge points:

* ``xlogy(x, y)``: ``∂x = log(y)``, ``∂y = x / y`` (``-inf`` and ``nan`` at ``(0, 0)``,
  where the value is ``0``); ``xlog1py`` likewise at ``y = -1``;
* ``entr``: ``-(log(x) + 1)``, so ``inf`` at ``0`` and ``nan`` below it;
* ``rel_entr(x, y)``, ``kl_div(x, y)``: the interior derivatives where ``x > 0`` and
  ``y > 0``, elsewhere ``0`` (``rel_entr``) or ``(-1, 1)`` (``kl_div``: the derivative
  of its ``- x + y``);
* ``i1``, ``i1e``: ``1/2`` at ``0``; ``i0e``: ``0`` at ``0``;
* ``gammainc(a, x)``: ``∂x = exp(-x + (a - 1) log(x) - gammaln(a))`` (``nan`` at
  ``x = 0`` for ``a = 1``, as in JAX); ``∂a`` by the series and continued fraction JAX
  (Eigen) uses for ``igamma_grad_a``. ``gammaincc`` is its complement;
* ``log_ndtr``: ``exp(-x²/2 - log(2π)/2 - log_ndtr(x))``, finite for very negative ``x``.

Where JAX's value comes from how its function is computed rather than from the
mathematics, unijax gives the derivative's limit: ``ndtri`` is ``inf`` at ``0`` and ``1``
(JAX: ``0``), and the second derivative of ``i1`` at ``0`` is ``0`` (JAX: ``1``).
``expn(n, x)`` at ``n = 0`` has ``∂x = -expn(0, x)(1 + 1/x)`` (JAX: ``nan``).

Derivatives neither library defines raise :class:`~unijax.errors.UnsupportedTransformError`:
``betainc`` in ``a`` and ``b``, and the second derivative of ``gammainc`` in ``a``.
Integer arguments (``n`` of ``polygamma`` and ``expn``) carry no derivative.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

from unijax.engine.core import SCALAR_TYPES, Primitive, bind
from unijax.engine.registry import API_FUNCTIONS, def_api, def_batch, def_jvp, def_vjp
from unijax.engine.rules._helpers import (
    binary,
    elementwise_batch,
    fit,
    nondiff,
    ops,
    unary,
    unbroadcast,
)
from unijax.errors import BackendUnavailableError, UnsupportedTransformError, message

__all__ = ["FUNCTIONS", "PRIMITIVES", "betainc", "multigammaln", "special_functions"]

Partial = Callable[..., Any]

#: The special-function module of each array library, by the top-level module its array
#: types live in.
_LIBRARY_MODULES = {
    "jax": "jax.scipy.special",
    "jaxlib": "jax.scipy.special",
    "cupy": "cupyx.scipy.special",
    "torch": "torch.special",
}

#: Every primitive of the extension by name (``"erf"``), for introspection and tests.
PRIMITIVES: dict[str, Primitive] = {}
#: The partial derivatives of each primitive, ``partial(*args, out)`` per argument (None:
#: the argument carries no derivative); Autograd primitives are built from them.
_PARTIALS: dict[str, tuple[Partial | None, ...]] = {}


# --- evaluation -----------------------------------------------------------------------------


def _library_of(args: tuple[Any, ...]) -> str:
    """The top-level module of the arguments' array types; ``"numpy"`` if all are NumPy's.

    Any other library wins over NumPy: under Autograd's ``grad`` a boxed argument can sit
    next to a plain NumPy array, and only Autograd's function keeps its derivative.
    """
    for a in args:
        if type(a) not in SCALAR_TYPES and hasattr(a, "shape"):
            library = type(a).__module__.partition(".")[0]
            if library != "numpy":
                return library
    return "numpy"


def _scipy_special(name: str) -> Any:
    try:
        import scipy.special  # deferred: SciPy is optional and slow to import
    except ImportError as error:
        raise BackendUnavailableError(
            message(f"special.{name} on these arrays is computed by SciPy, which is not "
                    "installed",
                    fix='Install it: pip install scipy (or pip install "unijax[special]").')
        ) from error
    return scipy.special


def _to_host(a: Any) -> Any:
    """``a`` as a NumPy array (Python scalars unchanged, so they stay weakly typed)."""
    import numpy as np

    if type(a) in SCALAR_TYPES or isinstance(a, np.ndarray | np.generic):
        return a
    try:
        return np.from_dlpack(a)
    except (TypeError, ValueError, RuntimeError, BufferError, AttributeError):
        return np.asarray(a)


def _host_function(name: str, xp: Any | None) -> Callable[..., Any]:
    """``scipy.special.<name>`` on host copies of the arguments, returned like them."""
    fn = getattr(_scipy_special(name), name)

    def call(*args: Any) -> Any:
        import numpy as np

        host = [_to_host(a) for a in args]
        out = np.asarray(fn(*host))
        floats = [h.dtype for h in host if hasattr(h, "dtype") and h.dtype.kind in "fc"]
        if floats and out.dtype.kind == "f":
            # NumPy promotes float32 with an integer array to float64; the standard and
            # JAX keep the floating argument's dtype.
            want = np.result_type(*floats)
            if want.kind == "f" and want != out.dtype:
                out = out.astype(want)
        like = next((a for a in args if type(a) not in SCALAR_TYPES and hasattr(a, "shape")),
                    None)
        if xp is None or isinstance(like, np.ndarray | np.generic):
            return out
        if like is None:  # Python scalars only: the namespace's own array
            return xp.asarray(out)
        from array_api_compat import device  # deferred: only non-NumPy arrays need it

        return xp.asarray(out, device=device(like))

    return call


def _autograd_function(name: str) -> Callable[..., Any]:
    """An Autograd primitive over SciPy's ``name`` whose VJPs are this module's partials."""
    from autograd.extend import defvjp, primitive  # deferred: Autograd is optional

    fn = primitive(_host_function(name, None))
    makers: list[Any] = []
    for i, partial in enumerate(_PARTIALS[name]):
        if partial is None:
            makers.append(None)
            continue

        def maker(ans: Any, *args: Any, i: int = i, partial: Partial = partial) -> Any:
            return lambda g: unbroadcast(ops.multiply(g, partial(*args, ans)), args[i])

        makers.append(maker)
    defvjp(fn, *makers)
    return fn


def _resolve(name: str, xp: Any, library: str) -> Callable[..., Any]:
    """The function that computes ``name`` on ``library``'s arrays with namespace ``xp``."""
    own = getattr(getattr(xp, "special", None), name, None)  # a namespace's own extension
    # Autograd's namespace hands out this module's functions as its extension: they bind
    # the primitive again, so they are no implementation of it.
    if callable(own) and own is not API_FUNCTIONS.get(f"special.{name}"):
        return own
    module_name = _LIBRARY_MODULES.get(library)
    if module_name is not None:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            module = None
        fn = getattr(module, name, None)
        if fn is not None:
            return fn
    if library == "autograd":
        return _autograd_function(name)
    return _host_function(name, xp)


def _impl(name: str) -> Callable[..., Any]:
    """``impl(xp, *args)`` for primitive ``name``; resolved once per namespace and library."""
    resolved: dict[tuple[int, str], Callable[..., Any]] = {}

    def impl(xp: Any, *args: Any) -> Any:
        library = _library_of(args)
        fn = resolved.get((id(xp), library))
        if fn is None:
            fn = resolved[id(xp), library] = _resolve(name, xp, library)
        return fn(*args)

    impl.__name__ = impl.__qualname__ = f"special_{name}"
    return impl


def _register(prim: Primitive, partials: tuple[Partial | None, ...]) -> Primitive:
    prim.def_impl(_impl(prim.name))
    PRIMITIVES[prim.name] = prim
    _PARTIALS[prim.name] = partials
    return prim


def _unary(name: str, deriv: Partial, reads: str = "x, out") -> Primitive:
    return _register(unary(name, deriv, namespace="special", reads=reads), (deriv,))


def _scalars_as_arrays(partial: Partial | None, keep: int | None = None) -> Partial | None:
    """``partial`` with Python scalar arguments (but argument ``keep``) made arrays like
    the output.

    A partial of ``xlogy(x, 2.0)`` would otherwise compute ``log(2.0)`` on Python scalars
    alone, in the default namespace, whose arrays (or NumPy scalars) array-api-strict
    refuses to combine with its own.
    """
    if partial is None:
        return None

    def wrapped(*args: Any) -> Any:
        *inputs, out = args
        inputs = [ops.full_like(out, v) if type(v) in SCALAR_TYPES and i != keep else v
                  for i, v in enumerate(inputs)]
        return partial(*inputs, out)

    return wrapped


def _binary(name: str, dx: Partial | None, dy: Partial | None,
            integer_first: bool = False) -> Primitive:
    """A binary primitive; ``integer_first``: the first argument is an integer order
    (``polygamma``'s ``n``), which stays as it is (JAX refuses a floating order)."""
    keep = 0 if integer_first else None
    dx, dy = _scalars_as_arrays(dx, keep), _scalars_as_arrays(dy, keep)
    return _register(binary(name, dx, dy, namespace="special"), (dx, dy))


def _unsupported(name: str, argument: str) -> Partial:
    """A partial that raises: neither unijax nor JAX defines this derivative."""

    def partial(*args: Any) -> Any:
        raise UnsupportedTransformError(
            message(f"The derivative of special.{name} with respect to {argument} is not "
                    "implemented (JAX does not define it either)",
                    fix=f"Differentiate with respect to the other arguments only: pass "
                    f"{argument} as a constant or wrap it in unijax.stop_gradient.")
        )

    return partial


def _call(prim: Primitive, *args: Any) -> Any:
    return bind(prim, args, {})


def _mask(cond: Any, like: Any) -> Any:
    """``cond`` as 0/1 values of ``like``'s dtype."""
    return ops.astype(cond, like.dtype)


# --- error function and the normal distribution ---------------------------------------------

_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
_SQRT_PI_OVER_TWO = math.sqrt(math.pi) / 2
_SQRT_2PI = math.sqrt(2 * math.pi)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)

erf_p = _unary("erf", lambda x, out: _TWO_OVER_SQRT_PI * ops.exp(-(x * x)), reads="x")
erfc_p = _unary("erfc", lambda x, out: -_TWO_OVER_SQRT_PI * ops.exp(-(x * x)), reads="x")
erfinv_p = _unary("erfinv", lambda x, out: _SQRT_PI_OVER_TWO * ops.exp(out * out),
                  reads="out")
# erfcx(x) = exp(x²) erfc(x).
erfcx_p = _unary("erfcx", lambda x, out: 2 * ops.multiply(x, out) - _TWO_OVER_SQRT_PI)
ndtr_p = _unary("ndtr", lambda x, out: ops.exp(-0.5 * (x * x)) / _SQRT_2PI, reads="x")
ndtri_p = _unary("ndtri", lambda x, out: _SQRT_2PI * ops.exp(0.5 * (out * out)), reads="out")
# The normal density over the distribution function, as a difference of logarithms: for
# very negative x both underflow, their logarithms do not (JAX's formula).
log_ndtr_p = _unary(
    "log_ndtr",
    lambda x, out: ops.exp(ops.subtract(-0.5 * (x * x) - _LOG_SQRT_2PI, out)),
)

# --- logistic -------------------------------------------------------------------------------

logit_p = _unary("logit", lambda x, out: 1 / ops.multiply(x, 1 - x), reads="x")
expit_p = _unary("expit", lambda x, out: ops.multiply(out, 1 - out), reads="out")

# --- gamma and related ------------------------------------------------------------------------


def _digamma(x: Any) -> Any:
    return _call(digamma_p, x)


def _gammaln(x: Any) -> Any:
    return _call(gammaln_p, x)


gammaln_p = _unary("gammaln", lambda x, out: _digamma(x), reads="x")
digamma_p = _unary("digamma", lambda x, out: _call(polygamma_p, 1, x), reads="x")
# SciPy's name for it; scipy.special.digamma is an alias that looks up "psi".
def_api("psi", "special")(API_FUNCTIONS["special.digamma"])


def _polygamma_dx(n: Any, x: Any, out: Any) -> Any:
    return _call(polygamma_p, ops.add(n, 1) if hasattr(n, "shape") else n + 1, x)


polygamma_p: Primitive = _binary("polygamma", None, _polygamma_dx, integer_first=True)
gamma_p = _unary("gamma", lambda x, out: ops.multiply(out, _digamma(x)))
gammasgn_p = _register(nondiff("gammasgn", namespace="special"), (None,))


def _betaln_da(a: Any, b: Any, out: Any) -> Any:
    return ops.subtract(_digamma(a), _digamma(ops.add(a, b)))


betaln_p = _binary("betaln", _betaln_da, lambda a, b, out: _betaln_da(b, a, out))


def _poch_dz(z: Any, m: Any, out: Any) -> Any:
    return ops.multiply(out, ops.subtract(_digamma(ops.add(z, m)), _digamma(z)))


poch_p = _binary("poch", _poch_dz,
                 lambda z, m, out: ops.multiply(out, _digamma(ops.add(z, m))))


@def_api("multigammaln", "special")
def multigammaln(a: Any, d: int) -> Any:
    """Logarithm of the multivariate gamma function of dimension ``d`` (SciPy's).

    ``log Γ_d(a) = d(d-1)/4 log(π) + Σ_{j<d} gammaln(a - j/2)``, defined for
    ``a > (d - 1)/2``; differentiable in ``a``.

    Args:
        a: The argument, an array.
        d: The dimension, a positive Python integer.

    Returns:
        An array of ``a``'s shape.
    """
    d = int(d)
    if d < 1:
        raise ValueError(message("special.multigammaln(a, d) needs a positive dimension d",
                                 got=f"d={d}"))
    total = _gammaln(a)
    for j in range(1, d):
        total = ops.add(total, _gammaln(a - 0.5 * j))
    return total + d * (d - 1) / 4 * math.log(math.pi)


# --- incomplete gamma and beta functions ------------------------------------------------------


def _gammainc_dx(a: Any, x: Any, out: Any) -> Any:
    # The integrand of the regularised lower incomplete gamma function (JAX's formula).
    return ops.exp(ops.subtract(ops.multiply(a - 1, ops.log(x)), ops.add(x, _gammaln(a))))


def _gammainc_da(a: Any, x: Any, out: Any) -> Any:
    return _call(gammainc_grad_a_p, a, x)


gammainc_p = _binary("gammainc", _gammainc_da, _gammainc_dx)
gammaincc_p = _binary(
    "gammaincc",
    lambda a, x, out: ops.negative(_gammainc_da(a, x, out)),
    lambda a, x, out: ops.negative(_gammainc_dx(a, x, out)),
)

# d gammainc / da has no closed form: its own primitive, computed as JAX does.
gammainc_grad_a_p = Primitive("gammainc_grad_a", namespace="special")
PRIMITIVES["gammainc_grad_a"] = gammainc_grad_a_p
def_batch(gammainc_grad_a_p, elementwise_batch(gammainc_grad_a_p))
_no_second_a = _unsupported("gammainc", "a twice (the derivative of d/da in a)")


def _gammainc_grad_a_dx(a: Any, x: Any) -> Any:
    # d/dx d/da P = d/da d/dx P = (d/dx P) (log(x) - digamma(a)).
    return ops.multiply(_gammainc_dx(a, x, None), ops.subtract(ops.log(x), _digamma(a)))


@def_jvp(gammainc_grad_a_p)
def _gammainc_grad_a_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    (a, x), (a_dot, x_dot) = primals, tangents
    if a_dot is not None:
        _no_second_a()
    out = _call(gammainc_grad_a_p, a, x)
    if x_dot is None:
        return out, None
    return out, fit(ops.multiply(x_dot, _gammainc_grad_a_dx(a, x)), out)


@def_vjp(gammainc_grad_a_p)
def _gammainc_grad_a_vjp(ct: Any, primals: tuple[Any, ...], out: Any,
                         needs: tuple[bool, ...]) -> Any:
    a, x = primals
    if needs[0]:
        _no_second_a()
    if not needs[1]:
        return None, None
    return None, unbroadcast(ops.multiply(ct, _gammainc_grad_a_dx(a, x)), x)


@gammainc_grad_a_p.def_impl
def _gammainc_grad_a_impl(xp: Any, a: Any, x: Any) -> Any:
    if _library_of((a, x)) in ("jax", "jaxlib"):
        import jax.numpy as jnp  # deferred: JAX is optional
        from jax import lax

        dtype = jnp.result_type(a, x, float)
        a, x = jnp.broadcast_arrays(jnp.asarray(a, dtype), jnp.asarray(x, dtype))
        return lax.igamma_grad_a(a, x)
    import numpy as np

    with np.errstate(all="ignore"):  # the masked-out lanes divide by zero harmlessly
        return _igamma_grad_a(xp, a, x)


# Terms until convergence: about a few sqrt(a) where x is just below a.
_MAX_SERIES_TERMS = 20_000


def _igamma_grad_a(xp: Any, a: Any, x: Any) -> Any:
    """d/da of the regularised lower incomplete gamma function, with namespace ``xp``.

    Eigen's ``igamma_generic_impl`` in derivative mode (what JAX's ``igamma_grad_a``
    runs), vectorised: the power series where ``x <= max(1, a)``, else the continued
    fraction of the upper function, each differentiated alongside its recurrence.
    """
    arrays = [v for v in (a, x) if type(v) not in SCALAR_TYPES]
    dtype = arrays[0].dtype if len(arrays) == 1 else xp.result_type(*arrays)
    if not xp.isdtype(dtype, "real floating"):
        dtype = xp.asarray(0.0).dtype
    dev = getattr(arrays[0], "device", None)
    a, x = (xp.asarray(v, dtype=dtype, device=dev) for v in (a, x))
    a, x = xp.broadcast_arrays(a, x)
    eps = float(xp.finfo(dtype).eps)
    machep, big, biginv = eps / 2, 1 / eps, eps
    invalid = (x < 0) | (a <= 0) | xp.isnan(a) | xp.isnan(x)
    use_cf = (x > 1) & (x > a) & ~invalid
    use_series = ~use_cf & ~invalid & (x != 0)
    one = xp.ones_like(x)

    def main_term(a: Any, x: Any) -> Any:
        log_ax = a * xp.log(x) - x - _gammaln(a)
        ax = xp.exp(log_ax)
        return xp.where((log_ax < -math.log(float(xp.finfo(dtype).max))) | xp.isnan(log_ax),
                        0.0, ax)

    # Power series, on lanes that use it (the others get harmless values).
    sa, sx = xp.where(use_series, a, one), xp.where(use_series, x, 0.5 * one)
    ax = main_term(sa, sx) / sa
    r, c, ans = sa, one, one
    dc_da = dans_da = xp.zeros_like(x)
    for i in range(_MAX_SERIES_TERMS):
        r = r + 1
        term = sx / r
        dc_da = term * dc_da + (-sx / (r * r)) * c
        dans_da = dans_da + dc_da
        c = c * term
        ans = ans + c
        if i % 8 == 7 and bool(xp.all(xp.abs(dc_da) <= machep * xp.abs(dans_da))):
            break
    series = ans * ax * (xp.log(sx) - _digamma(sa + 1)) + dans_da * ax
    series = xp.where(ax == 0, 0.0, series)

    # Continued fraction of the upper function.
    ca, cx = xp.where(use_cf, a, one), xp.where(use_cf, x, 2 * one)
    ax = main_term(ca, cx)
    y = 1 - ca
    z = cx + y + 1
    pkm2, qkm2, pkm1, qkm1 = one, cx, cx + 1, z * cx
    ans = pkm1 / qkm1
    dpkm2 = dqkm2 = dpkm1 = xp.zeros_like(x)
    dqkm1 = -cx
    dans = (dpkm1 - ans * dqkm1) / qkm1
    for i in range(1, 2001):
        y = y + 1
        z = z + 2
        yc = y * i
        pk = pkm1 * z - pkm2 * yc
        qk = qkm1 * z - qkm2 * yc
        dpk = dpkm1 * z - pkm1 - dpkm2 * yc + pkm2 * i
        dqk = dqkm1 * z - qkm1 - dqkm2 * yc + qkm2 * i
        nonzero = qk != 0
        safe_qk = xp.where(nonzero, qk, one)
        ans = xp.where(nonzero, pk / safe_qk, ans)
        new_dans = xp.where(nonzero, (dpk - ans * dqk) / safe_qk, dans)
        converged = ~nonzero | (xp.abs(new_dans - dans) <= machep)
        dans = new_dans
        pkm2, pkm1, qkm2, qkm1 = pkm1, pk, qkm1, qk
        dpkm2, dpkm1, dqkm2, dqkm1 = dpkm1, dpk, dqkm1, dqk
        scale = xp.where(xp.abs(pk) > big, biginv * one, one)
        pkm2, pkm1, qkm2, qkm1 = pkm2 * scale, pkm1 * scale, qkm2 * scale, qkm1 * scale
        dpkm2, dpkm1 = dpkm2 * scale, dpkm1 * scale
        dqkm2, dqkm1 = dqkm2 * scale, dqkm1 * scale
        if bool(xp.all(converged | ~use_cf)):
            break
    cf = ans * ax * (xp.log(cx) - _digamma(ca)) + dans * ax
    cf = -xp.where(ax == 0, 0.0, cf)

    out = xp.where(use_cf, cf, xp.where(use_series, series, 0.0))
    return xp.where(invalid, math.nan, out)


def _betainc_dx(a: Any, b: Any, x: Any, out: Any) -> Any:
    # The beta density: x^(a-1) (1-x)^(b-1) / B(a, b).
    log_density = ops.add(ops.multiply(a - 1, ops.log(x)),
                          ops.multiply(b - 1, ops.log1p(ops.negative(x))))
    return ops.exp(ops.subtract(log_density, _call(betaln_p, a, b)))


betainc_p = Primitive("betainc", namespace="special")
_register(betainc_p, (_unsupported("betainc", "a"), _unsupported("betainc", "b"),
                      _scalars_as_arrays(_betainc_dx)))


@def_api("betainc", "special")
def betainc(a: Any, b: Any, x: Any, /) -> Any:
    """The regularised incomplete beta function ``I_x(a, b)``; differentiable in ``x``."""
    return _call(betainc_p, a, b, x)


def_batch(betainc_p, elementwise_batch(betainc_p))


@def_jvp(betainc_p)
def _betainc_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    out = _call(betainc_p, *primals)
    t = None
    for partial, dot in zip(_PARTIALS["betainc"], tangents, strict=True):
        if dot is not None and partial is not None:
            term = ops.multiply(dot, partial(*primals, out))
            t = term if t is None else ops.add(t, term)
    return out, None if t is None else fit(t, out)


@def_vjp(betainc_p)
def _betainc_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...]) -> Any:
    return tuple(
        unbroadcast(ops.multiply(ct, partial(*primals, out)), p) if need and partial else None
        for partial, p, need in zip(_PARTIALS["betainc"], primals, needs, strict=True)
    )


# --- exponential integrals ----------------------------------------------------------------------

exp1_p = _unary("exp1", lambda x, out: ops.negative(ops.divide(ops.exp(-x), x)),
               reads="x")
expi_p = _unary("expi", lambda x, out: ops.divide(ops.exp(x), x), reads="x")


def _expn_dx(n: Any, x: Any, out: Any) -> Any:
    # d/dx E_n = -E_{n-1}; E_0(x) = exp(-x)/x has derivative -E_0(x) (1 + 1/x).
    at_zero = ops.negative(ops.multiply(out, 1 + 1 / x))
    if not hasattr(n, "shape"):
        return at_zero if n == 0 else ops.negative(_call(expn_p, n - 1, x))
    lower = ops.negative(_call(expn_p, ops.maximum(n - 1, 0), x))
    return ops.where(ops.equal(n, 0), at_zero, lower)


expn_p = _binary("expn", None, _expn_dx, integer_first=True)

# --- logarithms and entropies --------------------------------------------------------------------

xlogy_p = _binary("xlogy", lambda x, y, out: ops.log(y), lambda x, y, out: ops.divide(x, y))
xlog1py_p = _binary("xlog1py", lambda x, y, out: ops.log1p(y),
                    lambda x, y, out: ops.divide(x, ops.add(y, 1)))
entr_p = _unary("entr", lambda x, out: ops.negative(ops.log(x) + 1), reads="x")


def _both_positive(x: Any, y: Any) -> tuple[Any, Any, Any]:
    """The mask where ``x > 0`` and ``y > 0``, and ``x``, ``y`` set to 1 outside it."""
    inside = ops.logical_and(ops.greater(x, 0), ops.greater(y, 0))
    return inside, ops.where(inside, x, 1.0), ops.where(inside, y, 1.0)


def _rel_entr_dx(x: Any, y: Any, out: Any) -> Any:
    inside, sx, sy = _both_positive(x, y)
    return ops.where(inside, ops.subtract(ops.log(sx), ops.log(sy)) + 1, 0.0)


def _rel_entr_dy(x: Any, y: Any, out: Any) -> Any:
    inside, sx, sy = _both_positive(x, y)
    return ops.where(inside, ops.negative(ops.divide(sx, sy)), 0.0)


rel_entr_p = _binary("rel_entr", _rel_entr_dx, _rel_entr_dy)
# kl_div(x, y) = rel_entr(x, y) - x + y.
kl_div_p = _binary("kl_div", lambda x, y, out: _rel_entr_dx(x, y, out) - 1,
                   lambda x, y, out: _rel_entr_dy(x, y, out) + 1)

# --- modified Bessel functions -------------------------------------------------------------------


def _zero_mask(x: Any, out: Any) -> tuple[Any, Any]:
    """0/1 where ``x == 0``, and ``x`` with those zeros replaced by 1."""
    zero = _mask(ops.equal(x, 0), out)
    return zero, ops.add(x, zero)


def _i1_deriv(x: Any, out: Any) -> Any:
    # i1' = i0 - i1/x, with its limit 1/2 at 0 (selected by masks, so the second derivative
    # there is the general formula's, not that of the constant).
    zero, safe = _zero_mask(x, out)
    general = ops.subtract(_call(i0_p, x), ops.divide(out, safe))
    return ops.add(ops.multiply(general, 1 - zero), 0.5 * zero)


def _i1e_deriv(x: Any, out: Any) -> Any:
    # i1e = exp(-|x|) i1: i1e' = i0e - i1e (sign(x) + 1/x), 1/2 at 0.
    zero, safe = _zero_mask(x, out)
    general = ops.subtract(_call(i0e_p, x), ops.multiply(out, ops.add(ops.sign(x), 1 / safe)))
    return ops.add(ops.multiply(general, 1 - zero), 0.5 * zero)


i0_p = _unary("i0", lambda x, out: _call(i1_p, x), reads="x")
i0e_p = _unary("i0e", lambda x, out: ops.subtract(_call(i1e_p, x),
                                                   ops.multiply(ops.sign(x), out)))
i1_p: Primitive = _unary("i1", _i1_deriv)
i1e_p: Primitive = _unary("i1e", _i1e_deriv)

#: The names of ``xp.special``, as SciPy spells them.
FUNCTIONS: tuple[str, ...] = tuple(sorted(
    {name for name in PRIMITIVES if name != "gammainc_grad_a"} | {"psi", "multigammaln"}))


def special_functions() -> dict[str, Callable[..., Any]]:
    """The functions of the ``special`` extension by name, as SciPy spells them.

    A backend namespace without special functions of its own hands these out as its
    ``special`` (Autograd's does): each binds its primitive, so the engine's transforms
    differentiate it, and on Autograd's boxes it is an Autograd primitive with the same
    derivatives.

    Example:
        >>> import numpy as np
        >>> float(special_functions()["erf"](np.asarray(0.0)))
        0.0
    """
    return {name: API_FUNCTIONS[f"special.{name}"] for name in FUNCTIONS}
