"""Primitives of the Array API standard and their rules, one module per family
(``special`` holds the SciPy functions that SciPy looks up as ``xp.special``).

Importing this package registers every primitive, its traced-namespace function and its
JVP, VJP and batching rules.
"""

from unijax.engine.rules import (  # noqa: F401
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
    manipulation,
    reductions,
    searching,
    special,
)
