"""``import unijax`` imports no array library and no plugin module."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

ARRAY_LIBRARIES = ("numpy", "jax", "jaxlib", "autograd", "cupy", "array_api_strict", "scipy",
                   "array_api_compat")
PLUGINS = ("unijax_numpy", "unijax_jax", "unijax_autograd", "unijax_autograd.namespace",
           "unijax_cupy", "unijax_array_api_strict")


def imported_after(code: str) -> list[str]:
    probe = textwrap.dedent(code) + textwrap.dedent(f"""
        import sys
        print(sorted(m for m in {ARRAY_LIBRARIES + PLUGINS!r} if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return eval(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", [
    "import unijax",
    "import unijax.extend",
    "import unijax.tree_util",
    "import unijax.cli",
    "import unijax.errors",
])
def test_import_loads_no_array_library_and_no_plugin(statement):
    assert imported_after(statement) == []


def test_selecting_a_backend_loads_only_its_plugin_module():
    loaded = imported_after("""
        import unijax
        unijax.set_backend("jax")
        assert unijax.current_backend() == "jax"
    """)
    assert loaded == ["unijax_jax"]


def test_type_lookup_loads_plugin_modules_but_no_other_library():
    loaded = imported_after("""
        from unijax.dispatch.plugins import backend_for_type
        assert backend_for_type(float) is None
    """)
    assert loaded == sorted(PLUGINS[:3] + PLUGINS[4:])
