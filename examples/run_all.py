"""Run every example on the configured backend; ``--json`` prints the results as JSON.

    python examples/run_all.py
    UNIJAX_BACKEND=jax python examples/run_all.py --json

``tests/test_examples.py`` runs this once per backend and checks that all backends agree.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Sequence
from typing import Any

import gp_regression
import logistic_regression
import mlp_clipped
import rnn_scan
import vae_dropout

#: Example name -> (module, default steps, steps with --quick).
EXAMPLES = {
    "logistic_regression": (logistic_regression, 100, 30),
    "mlp_clipped": (mlp_clipped, 40, 12),
    "gp_regression": (gp_regression, 60, 12),
    "rnn_scan": (rnn_scan, 80, 20),
    "vae_dropout": (vae_dropout, 60, 12),
}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the examples; print their output, or one JSON object with ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer training steps")
    parser.add_argument("--backend", default=None, help="override the configured backend")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    for name, (module, steps, quick_steps) in EXAMPLES.items():
        argv_one = ["--steps", str(quick_steps if args.quick else steps)]
        if args.backend:
            argv_one += ["--backend", args.backend]
        quiet = io.StringIO() if args.json else None
        with contextlib.redirect_stdout(quiet) if quiet else contextlib.nullcontext():
            results[name] = module.main(argv_one)
    if args.json:
        import unijax

        json.dump({"backend": unijax.current_backend(), "results": results}, sys.stdout)
        print()
    return results


if __name__ == "__main__":
    main()
