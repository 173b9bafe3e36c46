"""unijax backend plugin for CuPy (through ``array_api_compat.cupy``).

Arrays live on NVIDIA GPUs, named ``"gpu:N"``. CuPy has no transforms of its own, so the
unijax engine supplies grad, vmap and jit; ``jit`` lowers a staged program with
:func:`unijax_cupy.kernels.compile_cupy`, which fuses elementwise chains (and reductions of
them) into single ``cupy.ElementwiseKernel``/``cupy.ReductionKernel`` launches.

Nothing here imports CuPy (or NumPy) until it is used: CuPy arrays are recognised by
their type's module name, and the namespace, devices and kernels are loaded lazily.

Moving arrays between backends is :func:`unijax.to_backend`'s job, through DLPack where
both sides are on the GPU (CuPy and JAX on CUDA share memory), through the host
otherwise. A NumPy array passed to a CuPy computation is never copied to the GPU
implicitly: unijax raises :class:`~unijax.errors.DeviceTransferError` and names the fix,
``unijax.to_backend(x, "cupy")``.
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

    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no driver, or no device: the backend has nowhere to compute
        return ()
    return tuple(f"gpu:{i}" for i in range(count))


def _unusable() -> str | None:
    """Why CuPy cannot compute here, or None: it needs an NVIDIA driver and a device.

    Asked without importing CuPy (or NumPy), and without initialising CUDA in this
    process (a process that forks after ``cuInit`` cannot use CUDA in its children): on
    Linux the driver library must load and a GPU device node must exist (``/dev/nvidiaN``,
    or ``/dev/dxg`` under WSL 2). Elsewhere CuPy itself counts the devices.
    """
    import sys

    if sys.platform.startswith("linux"):
        import ctypes
        import glob
        import os

        try:
            ctypes.CDLL("libcuda.so.1")
        except OSError:
            return "no CUDA driver (libcuda.so.1 is not installed)"
        if not glob.glob("/dev/nvidia[0-9]*") and not os.path.exists("/dev/dxg"):
            return "no CUDA device"
        return None
    return None if _devices() else "no CUDA device"


def _parse_device(device: Any) -> Any:
    # "gpu:N" (or N) is how unijax names a GPU; CuPy wants its own Device object.
    if isinstance(device, str) and device.startswith("gpu:"):
        device = int(device.partition(":")[2])
    if isinstance(device, int) and not isinstance(device, bool):
        import cupy

        return cupy.cuda.Device(device)
    return device


def _device_name(x: Any) -> str:
    return f"gpu:{x.device.id}"


def _to_host(x: Any) -> Any:
    return x.get()


def _compile(program: Any, xp: Any) -> Any:
    # Imported here: plugin discovery must not pay for the compiler (or NumPy).
    from unijax_cupy.kernels import compile_cupy

    return compile_cupy(program, xp)


def _compile_check(print_: Any = print) -> int:
    """Without a GPU: compile every kind of generated kernel for sm_80 and sm_90."""
    from unijax_cupy.compile_check import run

    return run(print_=print_)


def _version() -> str:
    # CuPy ships as cupy-cuda12x, cupy-cuda13x, cupy-rocm-...: ask which distribution has it.
    dists = metadata.packages_distributions().get("cupy", [])
    return metadata.version(dists[0]) if dists else "unknown"


@hookimpl
def unijax_backend() -> Backend:
    """CuPy arrays on NVIDIA GPUs; every transform comes from the engine.

    Example:
        >>> backend = unijax_backend()
        >>> backend.name, backend.array_modules, backend.capabilities.compiler
        ('cupy', ('cupy',), True)
        >>> backend.install_hint
        'pip install cupy-cuda12x'
    """
    return Backend(
        name="cupy",
        array_modules=("cupy",),
        requires=("cupy", "array_api_compat"),
        install_hint="pip install cupy-cuda12x",
        load_namespace=_load_namespace,
        capabilities=Capabilities(native=frozenset(), mutable_arrays=True, compiler=True),
        devices=_devices,
        compiler=_compile,
        version=_version,
        extras={
            # Every CuPy array is on a GPU: compared with other backends' kinds to
            # refuse implicit host <-> device copies, and to share memory with JAX on GPU.
            "device_kind": lambda x: "gpu",
            "default_device_kind": lambda: "gpu",
            "device_name": _device_name,
            "parse_device": _parse_device,
            "to_host": _to_host,
            # Installed is not enough: without a driver and a GPU, CuPy cannot compute.
            "unusable": _unusable,
            # What `unijax check cupy` runs where the backend cannot compute.
            "offline_check": _compile_check,
        },
    )
