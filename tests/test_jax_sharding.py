"""``unijax.jit``'s placement arguments: JAX shards across devices, one-device backends refuse.

The multi-device checks run in a subprocess whose JAX sees four CPU devices
(``--xla_force_host_platform_device_count=4`` must be set before JAX starts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import unijax
from unijax.errors import ArgnumsError, TransformArgumentError

pytest.importorskip("jax")

_SCRIPT = textwrap.dedent("""
    import json
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import unijax
    from array_api_compat import array_namespace

    jax.config.update("jax_enable_x64", True)

    def loss(w, X, y):
        xp = array_namespace(w, X, y)
        r = X @ w - y
        return xp.sum(r * r) / X.shape[0]

    def step(w, X, y):
        return w - 0.1 * unijax.grad(loss)(w, X, y)

    mesh = Mesh(np.array(jax.devices()), ("data",))
    rows = NamedSharding(mesh, P("data", None))
    vec_rows = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())
    rng = np.random.default_rng(0)
    Xn, yn, wn = rng.normal(size=(64, 3)), rng.normal(size=64), rng.normal(size=3)
    X, y = jax.device_put(Xn, rows), jax.device_put(yn, vec_rows)
    w = jax.device_put(wn, replicated)
    sharded_step = unijax.jit(step, in_shardings=(replicated, rows, vec_rows),
                              out_shardings=replicated, donate_argnums=0)
    out = sharded_step(w, X, y)
    plain = unijax.jit(step)(jnp.asarray(wn), jnp.asarray(Xn), jnp.asarray(yn))
    reference = unijax.jit(step, backend="numpy")(wn, Xn, yn)
    grad_x = unijax.grad(loss, argnums=1)(jnp.asarray(wn), X, y)
    per_row = unijax.vmap(lambda row, w: jnp.tanh(row @ w), in_axes=(0, None))(X, w)
    jitted = unijax.jit(lambda X: X * 2.0)(X)
    print(json.dumps({
        "devices": len(jax.devices()),
        "out_devices": len(out.sharding.device_set),
        "out_replicated": out.sharding.is_fully_replicated,
        "max_diff_plain": float(np.max(np.abs(np.asarray(out) - np.asarray(plain)))),
        "max_diff_numpy": float(np.max(np.abs(np.asarray(out) - reference))),
        "grad_sharding_kept": grad_x.sharding.is_equivalent_to(rows, 2),
        "vmap_sharding_kept": per_row.sharding.is_equivalent_to(vec_rows, 1),
        "jit_sharding_kept": jitted.sharding.is_equivalent_to(rows, 2),
        "w_donated": w.is_deleted(),
    }))
""")


def test_data_parallel_step_on_four_devices() -> None:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["devices"] == 4
    assert result["out_devices"] == 4 and result["out_replicated"]
    assert result["max_diff_plain"] < 1e-12
    assert result["max_diff_numpy"] < 1e-12
    assert result["grad_sharding_kept"]
    assert result["vmap_sharding_kept"]
    assert result["jit_sharding_kept"]


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_single_device_placements_are_accepted_on_engine_backends(backend: str) -> None:
    x = unijax.asarray([1.0, 2.0], backend=backend)
    device = unijax.dispatch.plugins.get_backend(backend).devices()[0]
    for kwargs in ({}, {"in_shardings": None, "out_shardings": None},
                   {"in_shardings": device, "out_shardings": (device,)},
                   {"donate_argnums": 0}):
        out = unijax.jit(lambda v: v * 3.0, backend=backend, **kwargs)(x)
        np.testing.assert_array_equal(np.asarray(unijax.to_backend(out, "numpy")), [3.0, 6.0])


def test_multi_device_placements_are_refused_on_engine_backends() -> None:
    jax = pytest.importorskip("jax")
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    one_device = NamedSharding(mesh, P("data"))
    np.testing.assert_array_equal(
        unijax.jit(lambda v: v + 1.0, in_shardings=one_device, backend="numpy")(np.zeros(2)),
        [1.0, 1.0])
    with pytest.raises(TransformArgumentError, match=r"in_shardings.*one device.*backend='jax'"):
        unijax.jit(lambda v: v + 1.0, in_shardings=("cpu", "gpu:3"))(np.zeros(2))
    with pytest.raises(TransformArgumentError, match="out_shardings"):
        unijax.jit(lambda v: v + 1.0, out_shardings="tpu:0", backend="numpy")(np.zeros(2))


def test_donate_argnums_is_validated_when_jit_is_built() -> None:
    with pytest.raises(ArgnumsError, match="donate_argnums"):
        unijax.jit(lambda v: v, donate_argnums="x")
    with pytest.raises(ArgnumsError, match="donate_argnums"):
        unijax.jit(lambda v: v, donate_argnums=3)


def test_placements_reach_jax_jit() -> None:
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    f = unijax.jit(lambda v: v * 2.0, in_shardings=sharding, out_shardings=sharding,
                   donate_argnums=0)
    x = jnp.ones(3)
    out = f(x)
    assert out.sharding == sharding
    np.testing.assert_array_equal(np.asarray(out), [2.0, 2.0, 2.0])
    with pytest.raises(ValueError):  # JAX's own check: a sharding per argument
        unijax.jit(lambda a, b: a + b, in_shardings=(sharding,) * 3)(x, x)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_partition_spec_axis_missing_from_mesh(backend: str) -> None:
    # The same class on both: the engine refuses a multi-device placement, JAX a spec
    # naming an axis its mesh lacks.
    jax = pytest.importorskip("jax")
    from jax.sharding import Mesh
    from jax.sharding import PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    x = unijax.asarray(np.ones((2, 2)), backend=backend)
    for kwargs in ({"in_shardings": P("model")}, {"in_shardings": P("data", "model")},
                   {"out_shardings": P("model")}):
        with jax.set_mesh(mesh), pytest.raises(TransformArgumentError, match="shardings"):
            unijax.jit(lambda v: v * 2.0, backend=backend, **kwargs)(x)


def test_bare_partition_spec_without_mesh_on_jax() -> None:
    jnp = pytest.importorskip("jax.numpy")
    from jax.sharding import PartitionSpec as P

    with pytest.raises(TransformArgumentError, match=r"jax.set_mesh\(mesh\)"):
        unijax.jit(lambda v: v * 2.0, in_shardings=P("data"))(jnp.ones(2))
