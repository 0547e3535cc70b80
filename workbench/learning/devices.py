"""Which Keras backend trains, and on which devices.

A GPU is used automatically when the backend sees one; :func:`describe_device` says
which, for the notebooks' first lines and every run's ``config.json``.

Several devices: :func:`use_devices` sets Keras' own data-parallel distribution
(``keras.distribution.DataParallel``, JAX backend): the model is replicated on every
device and each global batch is split between them, so a run with the same global batch
gives the same losses on one device or several (within floating-point tolerance; checked
on a CPU forced to show two devices with
``XLA_FLAGS=--xla_force_host_platform_device_count=2``). Several hosts: start each with
``jax.distributed.initialize()`` (coordinator address, number of processes, process id)
before Keras builds a model; ``list_devices`` then holds every host's devices.
"""

from __future__ import annotations

import os

import keras

from workbench.learning.config import parse_devices

__all__ = ["describe_device", "use_devices"]


def use_devices(devices, *, batch_size: int) -> int:
    """Train on ``devices`` devices from now on (data parallel); returns how many.

    Parameters
    ----------
    devices : int, "all" or None
        ``None`` or 1: the backend's default device (nothing is changed).
    batch_size : int
        The global batch size: it must split evenly between the devices.

    Returns
    -------
    int
        The number of devices training uses.
    """
    devices = parse_devices(devices)
    if devices is None or devices == 1:
        return 1
    if keras.backend.backend() != "jax":
        raise ValueError(f"--devices {devices} needs the JAX backend (set KERAS_BACKEND=jax); the "
                         f"{keras.backend.backend()} backend trains on one device here.")
    available = keras.distribution.list_devices()
    count = len(available) if devices == "all" else devices
    if count > len(available):
        raise ValueError(f"--devices {devices}: only {len(available)} device(s) are visible ({', '.join(available)}).")
    if batch_size % count:
        raise ValueError(f"The batch size {batch_size} does not split evenly between {count} devices; give a multiple "
                         f"of {count} as --batch-size.")
    if count > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=available[:count]))
    return count


def describe_device() -> str:
    """Which Keras backend trains, and on which device (a GPU is used automatically when visible).

    Returns
    -------
    str
        For example ``"Keras 3.15.1, tensorflow backend, GPU: NVIDIA H200"`` or
        ``"Keras 3.15.1, jax backend, CPU (2 cores)"``.
    """
    backend = keras.backend.backend()
    distribution = keras.distribution.distribution()
    parallel = ""
    mesh = getattr(distribution, "device_mesh", None)
    if mesh is not None and mesh.devices.size > 1:
        parallel = f", data parallel over {mesh.devices.size} devices"
    gpus: list[str] = []
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            for device in tf.config.list_physical_devices("GPU"):
                details = tf.config.experimental.get_device_details(device)
                gpus.append(details.get("device_name", device.name))
        elif backend == "jax":
            import jax

            gpus = [device.device_kind for device in jax.devices() if device.platform in ("gpu", "cuda", "rocm", "tpu")]
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception as error:  # a broken driver must not stop training on the CPU
        return f"Keras {keras.__version__}, {backend} backend, CPU ({os.cpu_count()} cores; GPU query failed: {error})"
    if gpus:
        return f"Keras {keras.__version__}, {backend} backend, GPU: {', '.join(gpus)}{parallel}"
    return f"Keras {keras.__version__}, {backend} backend, CPU ({os.cpu_count()} cores){parallel}"
