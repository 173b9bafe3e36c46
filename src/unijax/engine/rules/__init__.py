"""Primitives of the Array API standard and their rules, one module per family
(``special`` holds the SciPy functions that SciPy looks up as ``xp.special``; ``loops``,
``branches`` and ``remat`` the control-flow primitives of ``unijax.lax``).

Importing this package registers every primitive, its traced-namespace function and its
JVP, VJP and batching rules.
"""

from unijax.engine.rules import (  # noqa: F401
    branches,
    control,
    creation,
    cumulative,
    data_types,
    elementwise,
    fft,
    indexing,
    joining,
    linalg,
    linalg_decompositions,
    linalg_solve,
    loops,
    manipulation,
    reductions,
    remat,
    searching,
    special,
)
