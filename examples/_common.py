"""What the example scripts share: choosing the backend and printing results alike."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import unijax
import unijax.testing


def parse(description: str, argv: Sequence[str] | None, steps: int) -> argparse.Namespace:
    """``--backend`` (default: the configuration) and ``--steps``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--backend", default=None,
                        help="override the configured backend (UNIJAX_BACKEND, "
                             "[tool.unijax] in pyproject.toml)")
    parser.add_argument("--steps", type=int, default=steps)
    return parser.parse_args(argv)


def announce(title: str) -> None:
    """Say which backend runs the example, and which rule chose it."""
    why = unijax.explain_backend()
    print(f"{title}: backend {why.backend!r} ({why.rule}: {why.reason})")


def show(results: dict[str, Any]) -> None:
    """Print results with 6 significant digits: identical text on every backend."""
    for key, value in results.items():
        if isinstance(value, list):
            value = "[" + ", ".join(f"{v:.6g}" for v in value) + "]"
        elif isinstance(value, float):
            value = f"{value:.6g}"
        print(f"  {key}: {value}")


def to_list(x: Any) -> list[float]:
    """A 1-d array of any backend as Python floats."""
    return [float(v) for v in unijax.testing.to_numpy(x).tolist()]
