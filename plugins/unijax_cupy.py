"""unijax backend plugin for CuPy (through ``array_api_compat.cupy``).

Arrays live on NVIDIA GPUs, named ``"gpu:N"``. The unijax engine supplies every
transform; its jit can lower to CuPy kernels through ``Backend.compiler``.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any

from unijax.extend import Backend, Capabilities, hookimpl


def _load_namespace() -> Any:
    import array_api_compat.cupy

    return array_api_compat.cupy


def _devices() -> Sequence[str]:
    import cupy

    return tuple(f"gpu:{i}" for i in range(cupy.cuda.runtime.getDeviceCount()))


def _parse_device(device: Any) -> Any:
    # "gpu:N" is the name unijax shows; CuPy wants its own Device object.
    if isinstance(device, str) and device.startswith("gpu:"):
        import cupy

        return cupy.cuda.Device(int(device.partition(":")[2]))
    return device


def _to_host(x: Any) -> Any:
    return x.get()


@hookimpl
def unijax_backend() -> Backend:
    """CuPy arrays on the GPU; every transform comes from the engine."""
    return Backend(
        name="cupy",
        array_modules=("cupy", "cupyx"),
        requires=("cupy",),
        install_hint='pip install "unijax[cupy]"',
        load_namespace=_load_namespace,
        capabilities=Capabilities(native=frozenset(), mutable_arrays=True),
        devices=_devices,
        version=_version,
        extras={
            "device_kind": lambda x: "gpu",
            "default_device_kind": lambda: "gpu",
            "parse_device": _parse_device,
            "to_host": _to_host,
        },
    )


def _version() -> str:
    # CuPy ships as cupy-cuda12x, cupy-rocm-..., so ask which distribution holds it.
    dists = metadata.packages_distributions().get("cupy", [])
    return metadata.version(dists[0]) if dists else "unknown"
