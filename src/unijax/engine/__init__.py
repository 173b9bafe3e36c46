"""The tracing engine: transforms for array libraries that have none of their own.

It knows nothing of backends or configuration. It computes on whatever Array-API
namespace the values it meets belong to; the dispatcher tells it, through
:func:`unijax.engine.core.set_namespace_source`, which namespace that is for each
backend's arrays.

Importing the package registers every primitive and its rules, so the tables that the
tracers read (``core.API_FUNCTIONS``, ``core.TRACER_METHODS``) are full before any
tracer exists.
"""

from unijax.engine import protocols_numpy as protocols_numpy
from unijax.engine import protocols_torch as protocols_torch
from unijax.engine import rules as rules
