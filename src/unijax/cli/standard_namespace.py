"""The traced namespace over a chosen base, importable by the official Array API test suite.

array-api-tests picks the namespace it tests from ``ARRAY_API_TESTS_MODULE``; a namespace
made at run time is named by an ``exec('...')`` that defines ``xp``:

.. code-block:: bash

    SETUP='from unijax.cli.standard_namespace import namespace; xp = namespace("numpy")'
    export ARRAY_API_TESTS_MODULE="exec('$SETUP')" ARRAY_API_TESTS_VERSION=2024.12
    pytest array_api_tests/

``unijax check --standard PATH`` sets these for you. The namespace is the one
``array_namespace(tracer)`` returns, made for concrete arrays (no trace): its array
functions bind unijax's primitives, which evaluate on the base; dtypes, constants and the
inspection functions come from the base as the traced namespace presents them.

Example:
    >>> xp = namespace("numpy")
    >>> xp.__array_api_version__
    '2024.12'
    >>> float(xp.sum(xp.asarray([1.0, 2.0])))
    3.0
"""

from __future__ import annotations

import importlib
from typing import Any

from unijax.cli.standard import BASES
from unijax.engine.namespace import TracedNamespace

__all__ = ["BASES", "base_namespace", "namespace"]


def base_namespace(base: str) -> Any:
    """The base namespace named ``base`` (a key of :data:`BASES`, or a module name)."""
    return importlib.import_module(BASES.get(base, base))


def namespace(base: str = "numpy") -> Any:
    """The traced namespace over ``base`` (a key of :data:`BASES`, or a module name)."""
    return TracedNamespace(base_namespace(base))
