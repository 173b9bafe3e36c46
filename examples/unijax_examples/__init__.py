"""A small backend-agnostic library written only against the Python Array API standard.

Nothing here imports NumPy, JAX or Autograd: every function takes its namespace from its
arguments (``xp = array_namespace(x)``) and uses ``xp.sum(x)``, never ``x.sum()``, so the
same code runs, and is differentiated, vectorised and compiled by unijax, on every
backend. The scripts next to this package (``examples/*.py``) run it on the backend chosen
by configuration.

* :mod:`unijax_examples.optim` — SGD with momentum and Adam over pytrees;
* :mod:`unijax_examples.models` — logistic regression, an MLP, per-example gradient
  clipping, Gaussian-process regression.
"""

from unijax_examples import models, optim

__all__ = ["models", "optim"]
