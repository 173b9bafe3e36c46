"""The demo trains to the same numbers on every CPU backend."""

from __future__ import annotations

import numpy as np
import pytest

from unijax.cli.demo import train

BACKENDS = ["numpy", "autograd", "jax", "array_api_strict", "torch"]


@pytest.fixture(scope="module")
def reference() -> tuple[list[float], float]:
    return train(steps=30, backend="numpy")


def test_demo_loss_falls_on_numpy(reference: tuple[list[float], float]) -> None:
    losses, accuracy = reference
    assert losses[-1] < losses[0] * 0.97
    assert 0.5 < accuracy <= 1.0


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_demo_matches_numpy(backend: str, reference: tuple[list[float], float]) -> None:
    losses, accuracy = train(steps=30, backend=backend)
    np.testing.assert_allclose(losses, reference[0], rtol=1e-9)
    assert accuracy == reference[1]
