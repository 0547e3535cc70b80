"""Which Keras backend trains, and on which device.

A GPU is used automatically when the backend sees one; :func:`describe_device` says
which, for the notebooks' first lines and every run's ``config.json``.
"""

from __future__ import annotations

import os

import keras

__all__ = ["describe_device"]


def describe_device() -> str:
    """Which Keras backend trains, and on which device (a GPU is used automatically when visible).

    Returns
    -------
    str
        For example ``"Keras 3.15.1, tensorflow backend, GPU: NVIDIA H200"`` or
        ``"Keras 3.15.1, jax backend, CPU (2 cores)"``.
    """
    backend = keras.backend.backend()
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
        return f"Keras {keras.__version__}, {backend} backend, GPU: {', '.join(gpus)}"
    return f"Keras {keras.__version__}, {backend} backend, CPU ({os.cpu_count()} cores)"
