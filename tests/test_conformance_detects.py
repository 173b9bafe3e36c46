"""The conformance suite fails when it should: deliberately broken backends are caught.

Each broken backend is a real Array API library (NumPy through ``array_api_compat``) with
one thing wrong, registered through a real ``unijax.backends`` entry point (a
``*.dist-info`` directory on ``PYTHONPATH`` of a pytest subprocess), and the suite is run on
it. The test asserts which suite tests fail, and that a control test of the same backend
passes (so the failure is the broken part, not the harness).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import unijax_conformance
from unijax_conformance._sandbox import environment, write_distribution

from unijax.cli.check import run_suite

SUITE = Path(unijax_conformance.__file__).resolve().parent

_COMMON = '''
from unijax.extend import Backend, Capabilities, hookimpl


def _backend(name, load_namespace):
    return Backend(name=name, array_modules=("numpy",), requires=("numpy",),
                   install_hint="(test-only backend)", load_namespace=load_namespace,
                   capabilities=Capabilities(native=frozenset(), mutable_arrays=True),
                   devices=lambda: ("cpu",))
'''

BROKEN = {
    # The VJP rule of sin is replaced by one that is off by a factor of 2.
    "broken_vjp": _COMMON + textwrap.dedent('''
        def _load():
            import array_api_compat.numpy as cnp

            import unijax.engine.rules  # noqa: F401  (registers the rules being replaced)
            from unijax.engine.core import PRIMITIVES
            from unijax.engine.namespace import array_functions as ops
            from unijax.engine.registry import def_vjp

            def bad_sin_vjp(ct, primals, out, needs, **params):
                return (ct * 2.0 * ops.cos(primals[0]),)

            def_vjp(PRIMITIVES["sin"], bad_sin_vjp, override=True)
            return cnp


        @hookimpl
        def unijax_backend():
            return _backend("broken_vjp", _load)
    '''),
    # mean returns float32 for float64 input.
    "broken_dtype": _COMMON + textwrap.dedent('''
        import types


        def _load():
            import array_api_compat.numpy as cnp

            xp = types.ModuleType("broken_dtype_namespace")
            xp.__dict__.update({k: getattr(cnp, k) for k in dir(cnp) if not k.startswith("__")})
            xp.__array_api_version__ = cnp.__array_api_version__
            xp.mean = lambda x, /, **kw: cnp.astype(cnp.mean(x, **kw), cnp.float32)
            return xp


        @hookimpl
        def unijax_backend():
            return _backend("broken_dtype", _load)
    '''),
    # Creating an array selects the backend for the whole process, and never undoes it.
    "broken_select": _COMMON + textwrap.dedent('''
        import types


        def _load():
            import array_api_compat.numpy as cnp

            import unijax

            xp = types.ModuleType("broken_select_namespace")
            xp.__dict__.update({k: getattr(cnp, k) for k in dir(cnp) if not k.startswith("__")})
            xp.__array_api_version__ = cnp.__array_api_version__

            def asarray(obj, /, **kw):
                unijax.set_backend("broken_select")
                return cnp.asarray(obj, **kw)

            xp.asarray = asarray
            return xp


        @hookimpl
        def unijax_backend():
            return _backend("broken_select", _load)
    '''),
}

# backend -> (tests that must fail, a test that must pass)
EXPECTED = {
    "broken_vjp": (
        ["test_grad.py::test_grad_finite_differences[broken_vjp-sin]",
         "test_grad.py::test_jvp_vjp_match_reference[broken_vjp-sin]",
         "test_transforms_nesting.py::test_nest_matches_closed_form[broken_vjp-jit(grad)]"],
        "test_grad.py::test_grad_finite_differences[broken_vjp-cos]"),
    "broken_dtype": (
        ["test_values.py::test_values_eager[broken_dtype-mean]"],
        "test_values.py::test_values_eager[broken_dtype-sum]"),
    "broken_select": (
        ["test_selection.py::test_selection_restored_after_use[broken_select]",
         "test_selection.py::test_selection_isolated_across_threads[broken_select]"],
        "test_transforms_nesting.py::test_nest_matches_closed_form[broken_select-jit(jit)]"),
}


# backend -> what the failure message of each caught test says
WHY = {"broken_vjp": "broken_vjp", "broken_dtype": "result dtypes ['float32'], NumPy gives "
       "['float64']", "broken_select": "broken_select"}


def _outcomes(site: Path, backend: str, tests: list[str]) -> dict[str, dict[str, Any]]:
    events: list[dict[str, Any]] = []
    _, _, output = run_suite([backend], targets=[str(SUITE / t) for t in tests],
                             env=environment([site]), on_event=events.append)
    found = {e["id"]: e for e in events if e.get("event") == "test"}
    assert set(found) == set(tests), f"pytest ran {sorted(found)}:\n{output[-3000:]}"
    return found


@pytest.mark.parametrize("backend", list(BROKEN))
def test_suite_detects_broken_backend(tmp_path: Path, backend: str) -> None:
    site = write_distribution(tmp_path, f"unijax-{backend}", {backend: backend},
                              {backend: BROKEN[backend]})
    must_fail, control = EXPECTED[backend]
    found = _outcomes(site, backend, [*must_fail, control])
    assert found[control]["outcome"] == "passed", f"the control test failed: {found[control]}"
    missed = [t for t in must_fail if found[t]["outcome"] != "failed"]
    assert not missed, f"the suite did not catch {backend}: {missed} ({found})"
    for test in must_fail:
        assert WHY[backend] in found[test]["message"] or (backend == "broken_vjp" and \
            "VJP of sin" in found[test]["message"]), found[test]["message"]
