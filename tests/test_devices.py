"""Training on several devices with Keras' DataParallel (JAX backend), checked on a CPU forced to show two devices."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("jax")

TWO_CPU_DEVICES = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3",
                   "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


def _train(data, out, *extra, environment=TWO_CPU_DEVICES):
    command = [sys.executable, "-m", "workbench.cli", "train", "--data", str(data), "--head", "sigmoid", "--epochs", "2",
               "--image-size", "16", "--width", "4", "--depth", "2", "--batch-size", "16", "--no-augment",
               "--validation-fraction", "0.25", "--workers", "1", "--out", str(out), *extra]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    from tests.test_training import coloured_squares
    from workbench.data.scenes import write_scenes

    folder = tmp_path_factory.mktemp("devices") / "data"
    write_scenes(coloured_squares(80, seed=3), folder)
    return folder


@pytest.mark.slow
def test_two_devices_give_the_losses_of_one_with_the_same_global_batch(squares, tmp_path):
    one = _train(squares, tmp_path / "one")
    two = _train(squares, tmp_path / "two", "--devices", "2")
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert "training on 2 devices (data parallel, global batch 16)" in two.stdout
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["backend"] == "jax" and "data parallel over 2 devices" in config["device"]
    first = json.loads((tmp_path / "one" / "history.json").read_text())
    second = json.loads((tmp_path / "two" / "history.json").read_text())
    for a, b in zip(first, second):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["map_at_100"] == pytest.approx(a["map_at_100"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("extra, environment, message", [
    (["--devices", "3"], TWO_CPU_DEVICES, "only 2 device(s) are visible"),
    (["--devices", "2", "--batch-size", "15"], TWO_CPU_DEVICES, "does not split evenly between 2 devices"),
    (["--devices", "two"], TWO_CPU_DEVICES, "takes a number of devices or 'all'"),
    (["--devices", "2"], {**TWO_CPU_DEVICES, "KERAS_BACKEND": "tensorflow"}, "needs the JAX backend"),
])
def test_device_mistakes_are_one_line_errors_before_training(squares, tmp_path, extra, environment, message):
    completed = _train(squares, tmp_path / "run", *extra, environment=environment)
    assert completed.returncode == 2 and message in completed.stderr and completed.stderr.count("\n") == 1, completed.stderr
    assert not (tmp_path / "run").exists(), "nothing written"
