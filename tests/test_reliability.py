"""Bad files and faults give one line and lose no work (issue 13's defects, each with the test that failed before its fix)."""

import json
import sqlite3

import numpy as np
import pytest

from tests.test_training import coloured_squares


@pytest.fixture()
def scenes_with_bad_files(tmp_path):
    """Coloured squares written as PNG files; one is not an image, one is cut short after a valid header."""
    from workbench.data.scenes import write_scenes

    folder = tmp_path / "data"
    write_scenes(coloured_squares(40, seed=9), folder)
    images = sorted((folder / "images").glob("*.png"))
    images[3].write_text("this is not a PNG")
    data = images[7].read_bytes()
    images[7].write_bytes(data[: len(data) * 3 // 5])  # header intact, pixels cut short
    return folder, images[3].name, images[7].name


TRAIN_FLAGS = ["--epochs", "2", "--image-size", "16", "--width", "4", "--depth", "2", "--batch-size", "8",
               "--validation-fraction", "0.25"]


def test_header_check_finds_unreadable_files_without_decoding(scenes_with_bad_files, tmp_path):
    from workbench.data.images import unreadable_images

    folder, corrupt, truncated = scenes_with_bad_files
    (tmp_path / "empty.png").write_bytes(b"")
    paths = sorted((folder / "images").glob("*.png")) + [tmp_path / "empty.png", tmp_path / "missing.png", folder]
    found = unreadable_images(paths)
    names = {path.rsplit("/", 1)[-1]: reason for path, reason in found.items()}
    assert set(names) == {corrupt, "empty.png", "missing.png", "data"}
    assert "not an image" in names[corrupt] and "empty" in names["empty.png"] and "does not exist" in names["missing.png"]
    assert truncated not in names, "a valid header passes; the pixels are checked when decoded"


def test_train_refuses_unreadable_images_before_writing_anything(scenes_with_bad_files, tmp_path, capsys):
    from workbench.cli import main

    folder, corrupt, _ = scenes_with_bad_files
    out = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--head", "sigmoid", *TRAIN_FLAGS, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and corrupt in error and "--skip-bad-images" in error and "Traceback" not in error
    assert not out.exists(), "no half-made run folder"


@pytest.mark.slow
@pytest.mark.parametrize("head", ["pmi", "sigmoid"])
def test_train_skips_bad_images_and_one_that_fails_mid_training_is_logged_not_fatal(scenes_with_bad_files, tmp_path, capsys, head):
    from workbench.cli import main

    folder, corrupt, truncated = scenes_with_bad_files
    extra = []
    if head == "pmi":
        assert main(["embed", "--data", str(folder), "--dim", "3", "--validation-fraction", "0.25",
                     "--out", str(tmp_path / "embedding")]) == 0
        extra = ["--embedding", str(tmp_path / "embedding")]
    out = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--head", head, *extra, *TRAIN_FLAGS, "--skip-bad-images", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "complete"
    assert [path.rsplit("/", 1)[-1] for path in config["data"]["skipped_images"]] == [corrupt]
    assert [path.rsplit("/", 1)[-1] for path in config["data"]["failed_images"]] == [truncated]
    assert "skipped an image that could not be decoded" in captured.out and truncated in captured.out
    assert config["data"]["num_train"] + config["data"]["num_validation"] == 39


@pytest.mark.slow
def test_compare_skips_bad_images_too(scenes_with_bad_files, tmp_path, capsys):
    from workbench.cli import main

    folder, corrupt, _ = scenes_with_bad_files
    out = tmp_path / "cmp"
    flags = ["--dim", "3", "--heads", "pmi,sigmoid", "--seeds", "1", *TRAIN_FLAGS]
    assert main(["compare", "--data", str(folder), *flags, "--out", str(out)]) == 2
    assert corrupt in capsys.readouterr().err and not out.exists()
    assert main(["compare", "--data", str(folder), *flags, "--skip-bad-images", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [path.rsplit("/", 1)[-1] for path in results["config"]["skipped_images"]] == [corrupt]


def test_a_bad_image_in_a_batch_gets_a_zero_target():
    from workbench.data.datasets import MultiLabelDataset
    from workbench.learning.feeding import ImageSource, LabelBatches

    dataset = coloured_squares(6, seed=1)
    on_disk = MultiLabelDataset(image_paths=tuple(f"/nonexistent/{n}.png" for n in range(6)), label_sets=dataset.label_sets,
                                vocabulary=dataset.vocabulary, name="missing files")
    batches = LabelBatches(ImageSource(on_disk, image_size=8), on_disk.labels, batch_size=3, shuffle=False)
    images, targets = batches[0]
    assert images.shape == (3, 8, 8, 3) and not images.any() and not targets.any()
    assert len(batches.source.failures) == 3 and all("does not exist" in reason for reason in batches.source.failures.values())


# ---------------------------------------------------------------------------------
# classify: results are printed before they are stored
# ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_classify_prints_every_result_when_the_store_fails(tmp_path, capsys, monkeypatch):
    from tests.conftest import train_tiny_run
    from workbench.apps.store import ResultStore
    from workbench.cli import main
    from workbench.data.scenes import write_scenes

    run_dir = train_tiny_run(tmp_path / "run", epochs=1, num_images=64)
    write_scenes(coloured_squares(3, seed=2), tmp_path / "images")
    images = [str(path) for path in sorted((tmp_path / "images" / "images").glob("*.png"))]

    def broken(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(ResultStore, "add_classifications", broken)
    assert main(["classify", str(run_dir), *images, "--top", "2", "--json"]) == 3
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert [entry["image"] for entry in printed] == images and all(entry["labels"] for entry in printed)
    assert captured.err.count("\n") == 1 and "could not store" in captured.err and "disk I/O error" in captured.err


# ---------------------------------------------------------------------------------
# damaged artefacts: one line, no traceback
# ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_damaged_run_and_embedding_files_are_named_in_one_line(tmp_path, capsys):
    import shutil

    from tests.conftest import train_tiny_run
    from workbench.cli import main

    run_dir = train_tiny_run(tmp_path / "run", epochs=1, num_images=64)
    image = tmp_path / "one.png"
    from PIL import Image

    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(image)
    for damaged, cut in (("model.keras", 0.5), ("embedding/embedding.npz", 0.4)):
        copy = tmp_path / f"damaged-{damaged.replace('/', '-')}"
        shutil.copytree(run_dir, copy)
        data = (copy / damaged).read_bytes()
        (copy / damaged).write_bytes(data[: int(len(data) * cut)])
        assert main(["classify", str(copy), str(image), "--top", "2", "--no-store"]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "damaged" in error and "Traceback" not in error, error
    copy = tmp_path / "damaged-config"
    shutil.copytree(run_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["train"] = "not a dict"
    (copy / "config.json").write_text(json.dumps(config))
    assert main(["classify", str(copy), str(image), "--top", "2", "--no-store"]) == 2
    assert "damaged" in capsys.readouterr().err
    embedding_copy = tmp_path / "embedding-only"
    shutil.copytree(run_dir / "embedding", embedding_copy)
    data = (embedding_copy / "embedding.npz").read_bytes()
    (embedding_copy / "embedding.npz").write_bytes(data[: len(data) // 3])
    assert main(["neighbours", str(embedding_copy), "--label", "red"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "damaged" in error


def test_deeply_nested_json_is_a_one_line_error(tmp_path):
    from workbench._io import read_json

    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        read_json(path)


def test_embed_refuses_a_projector_path_taken_by_a_file_before_writing(tmp_path, capsys):
    from workbench.cli import main
    from workbench.data.scenes import write_scenes

    write_scenes(coloured_squares(20, seed=3), tmp_path / "data")
    out = tmp_path / "emb"
    out.mkdir()
    (out / "projector").write_text("a file in the way")
    assert main(["embed", "--data", str(tmp_path / "data"), "--dim", "2", "--projector", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "projector" in error
    assert sorted(path.name for path in out.iterdir()) == ["projector"], "nothing half-written"


# ---------------------------------------------------------------------------------
# one output-folder policy; a replaced embedding is detected
# ---------------------------------------------------------------------------------
def test_embed_writes_only_into_a_new_empty_or_its_own_folder(tmp_path, capsys):
    from workbench.cli import main
    from workbench.data.scenes import write_scenes

    write_scenes(coloured_squares(20, seed=4), tmp_path / "data")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    arguments = ["embed", "--data", str(tmp_path / "data"), "--dim", "2"]
    assert main([*arguments, "--out", str(mine)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "was not written by 'workbench embed'" in error
    assert sorted(path.name for path in mine.iterdir()) == ["thesis.tex"]
    out = tmp_path / "emb"
    assert main([*arguments, "--out", str(out)]) == 0
    assert main([*arguments, "--out", str(out)]) == 0, "the same command with the same settings may write again"
    before = (out / "embedding.npz").read_bytes()
    assert main(["embed", "--data", str(tmp_path / "data"), "--dim", "3", "--out", str(out)]) == 2
    assert "other settings (embedding_dim 2 -> 3)" in capsys.readouterr().err
    assert (out / "embedding.npz").read_bytes() == before


def test_compare_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    from workbench.cli import main

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["compare", "--data", str(tmp_path / "nowhere"), "--out", str(mine)]) == 2
    assert "was not written by 'workbench compare'" in capsys.readouterr().err
    assert sorted(path.name for path in mine.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("command, marker, content, reason", [
    ("embed", "embedding.json", '{"title": "my own notes"}', "no workbench format marker and no recorded settings"),
    ("embed", "embedding.json", "word2vec vectors, not JSON", "not valid JSON"),
    ("embed", "embedding.json", '[1, 2, 3]', "a JSON list, not an object"),
    ("compare", "results.json", '{"format": "my-lab-v2", "accuracy": 0.9}', "its format is 'my-lab-v2'"),
    ("compare", "results.json", '{"accuracy": 0.9}', "no workbench format marker and no recorded settings"),
    ("ceiling", "ceiling.json", '{"rows": []}', "no workbench format marker and no recorded settings"),
    ("experiment", "experiment.json", '{"cells": 3}', "no workbench format marker and no recorded settings"),
])
def test_a_foreign_file_named_like_an_output_is_not_called_an_earlier_output(tmp_path, capsys, command, marker, content, reason):
    """Someone's own ``embedding.json`` in the ``--out`` folder: "not written by the workbench", never "other settings"."""
    from workbench.cli import main
    from workbench.data.scenes import write_scenes

    write_scenes(coloured_squares(20, seed=4), tmp_path / "data")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / marker).write_text(content)
    arguments = {"embed": ["embed", "--data", str(tmp_path / "data"), "--dim", "2"],
                 "compare": ["compare", "--data", str(tmp_path / "data")],
                 "ceiling": ["ceiling", "--data", str(tmp_path / "data")],
                 "experiment": ["experiment", "--grid", str(tmp_path / "grid.toml")]}[command]
    (tmp_path / "grid.toml").write_text("[data]\nimages = 20\n")
    assert main([*arguments, "--out", str(mine)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert f"holds a {marker} that was not written by the workbench ({reason})" in error, error
    assert "other settings" not in error and "earlier" not in error
    assert sorted(path.name for path in mine.iterdir()) == [marker] and (mine / marker).read_text() == content


def test_a_comparison_refuses_a_results_json_that_is_not_a_comparisons(tmp_path):
    """Through the Python API too (no command-line check first): a results.json without config and runs is not ours."""
    from workbench.experiments.compare import compare

    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.json").write_text('{"config": {"note": "mine"}, "score": 3}')
    with pytest.raises(ValueError, match="holds a results.json that was not written by the workbench"):
        compare(coloured_squares(20, seed=4), out_dir=out, heads=["sigmoid"], seeds=[0], epochs=1, verbose=0)
    assert sorted(path.name for path in out.iterdir()) == ["results.json"]


@pytest.mark.slow
def test_a_run_detects_an_embedding_replaced_after_training(tmp_path, capsys):
    from tests.conftest import train_tiny_run
    from workbench.cli import main
    from workbench.learning.runs import load_run
    from workbench.method.embedding import LabelEmbedding

    run_dir = train_tiny_run(tmp_path / "run", epochs=1, num_images=64)
    assert json.loads((run_dir / "manifest.json").read_text())["sha256"].keys() >= {"model.keras", "embedding/embedding.npz"}
    load_run(run_dir)  # intact: loads
    original = LabelEmbedding.load(run_dir / "embedding")
    replaced = LabelEmbedding(vocabulary=original.vocabulary, vectors=original.vectors[:, ::-1].copy(),
                              eigenvalues=original.eigenvalues, label_counts=original.label_counts, settings=original.settings)
    replaced.save(run_dir / "embedding")  # what 'workbench embed --out RUN_DIR/embedding' used to do silently
    image = tmp_path / "one.png"
    from PIL import Image

    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(image)
    assert main(["classify", str(run_dir), str(image), "--top", "2", "--no-store"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "was replaced or changed after training" in error


def _digest(folder):
    """SHA-256 of every file below ``folder`` (temporaries left out), by relative path."""
    import hashlib

    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and not path.name.startswith(".")}


def _assert_same_history(whole_dir, again_dir, *, epochs: int) -> None:
    """Two runs' histories agree epoch by epoch: losses to 1e-4 relative, MAP@100 to 1e-4."""
    whole = json.loads((whole_dir / "history.json").read_text())
    again = json.loads((again_dir / "history.json").read_text())
    assert [record["epoch"] for record in again] == list(range(1, epochs + 1))
    for first, second in zip(whole, again):
        assert second["loss"] == pytest.approx(first["loss"], rel=1e-4, abs=1e-6)
        assert second["map_at_100"] == pytest.approx(first["map_at_100"], abs=1e-4)


def _kill_when(process, ready, *, timeout: float = 240.0, poll: float = 0.02) -> None:
    """``kill -9`` ``process`` as soon as ``ready()`` is true (or let it end); wait for it."""
    import os
    import signal
    import time

    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(poll)
    process.wait(timeout=60)


# ---------------------------------------------------------------------------------
# resume equals an uninterrupted run
# ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_run_killed_mid_training_resumes_to_the_uninterrupted_history(tmp_path):
    """``kill -9`` after the first checkpoint, run the same command again: the same losses and metrics, epoch by epoch.

    Augmentation and dropout are on: their seed generators' states must be restored too.
    """
    import os
    import signal
    import subprocess
    import sys

    from workbench.data.scenes import write_scenes

    write_scenes(coloured_squares(96, seed=11), tmp_path / "data")
    command = [sys.executable, "-m", "workbench.cli", "train", "--data", str(tmp_path / "data"), "--head", "sigmoid",
               "--epochs", "4", "--image-size", "16", "--width", "4", "--depth", "2", "--batch-size", "16",
               "--validation-fraction", "0.25", "--workers", "1"]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_DETERMINISTIC_OPS": "1"}
    subprocess.run([*command, "--out", str(tmp_path / "whole")], check=True, capture_output=True, env=environment, timeout=300)
    killed = subprocess.Popen([*command, "--out", str(tmp_path / "killed")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=environment)
    state = tmp_path / "killed" / "checkpoints" / "state.json"
    _kill_when(killed, lambda: state.is_file() and json.loads(state.read_text())["epoch"] >= 1)
    assert killed.returncode == -signal.SIGKILL, "the run was killed mid-training"
    resumed = subprocess.run([*command, "--out", str(tmp_path / "killed")], capture_output=True, text=True,
                             env=environment, timeout=300)
    assert resumed.returncode == 0 and "Resuming" in resumed.stdout, resumed.stdout + resumed.stderr
    assert "absl::InitializeLog" not in resumed.stderr and "oneDNN" not in resumed.stderr, "no start-up noise"
    _assert_same_history(tmp_path / "whole", tmp_path / "killed", epochs=4)


# ---------------------------------------------------------------------------------
# weaker defects: leftovers, empty stores, silent counts
# ---------------------------------------------------------------------------------
def test_temporary_files_left_by_killed_writers_are_cleaned_up(tmp_path):
    import os
    import time

    from workbench._io import STALE_TEMPORARY_SECONDS, atomic_write_json

    stale = tmp_path / ".config.json.abc123.tmp"
    fresh = tmp_path / ".config.json.def456.tmp"  # perhaps another writer's, still at work
    other = tmp_path / ".history.json.xyz.tmp"
    for leftover in (stale, fresh, other):
        leftover.write_text("half")
    old = time.time() - STALE_TEMPORARY_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    atomic_write_json(tmp_path / "config.json", {"a": 1})
    assert not stale.exists() and fresh.exists() and other.exists(), "only this file's stale temporaries go"
    assert json.loads((tmp_path / "config.json").read_text()) == {"a": 1}


def test_a_run_folder_holding_only_a_stopped_writers_temporary_is_still_new(tmp_path):
    """A kill or a full disk during a run's first write leaves only a temporary: the same command may go on."""
    from workbench.learning.runs import check_out_dir

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".config.json.999999999-abc.tmp").write_text("{half")
    check_out_dir(run_dir)  # not "not empty and holds no run"
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and holds no run"):
        check_out_dir(run_dir)


def test_a_classify_that_fails_leaves_no_empty_store(tmp_path, capsys):
    from workbench.cli import main

    run_dir = tmp_path / "not-a-run"
    run_dir.mkdir()
    image = tmp_path / "x.png"
    image.write_bytes(b"not needed")
    assert main(["classify", str(run_dir), str(image), "--top", "2"]) == 2
    assert "config.json" in capsys.readouterr().err
    assert not (run_dir / "results.sqlite").exists()


def test_embed_says_how_many_images_have_no_label(tmp_path, capsys):
    from workbench.cli import main

    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    (folder / "labels.csv").write_text("image,labels\nimages/1.png,a|b\nimages/2.png,\nimages/3.png,b\nimages/4.png,\n")
    assert main(["embed", "--data", str(folder), "--format", "list-csv", "--dim", "1", "--validation-fraction", "0", "--out", str(tmp_path / "e")]) == 0
    assert "note: 2 of 4 images have no label" in capsys.readouterr().out


def test_keras_is_imported_without_tensorflows_start_up_notices():
    import subprocess
    import sys

    code = ("import sys; from workbench.learning.startup import import_keras_quietly; keras = import_keras_quietly(); "
            "print('imported', keras.backend.backend()); print('after', file=sys.stderr)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                               env={**__import__("os").environ, "KERAS_BACKEND": "tensorflow"})
    assert completed.returncode == 0 and completed.stdout.startswith("imported tensorflow")
    assert completed.stderr.strip() == "after", completed.stderr


# ---------------------------------------------------------------------------------
# fault injection: a full disk, a damaged store page, killed writers, fuzzed images
# ---------------------------------------------------------------------------------
def _run_with_file_size_limit(arguments, *, limit_bytes, cwd):
    """``workbench ARGUMENTS`` in a subprocess that may write no file beyond ``limit_bytes`` (as on a full disk)."""
    import os
    import resource
    import signal
    import subprocess
    import sys

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "workbench.cli", *arguments], capture_output=True, text=True, cwd=cwd,
                          preexec_fn=limit, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.mark.slow
def test_a_full_disk_during_embed_gives_one_line_and_keeps_the_earlier_embedding(tmp_path):
    from workbench.cli import main
    from workbench.data.scenes import write_scenes

    write_scenes(coloured_squares(30, seed=5), tmp_path / "data")
    out = tmp_path / "emb"
    assert main(["embed", "--data", str(tmp_path / "data"), "--dim", "2", "--out", str(out)]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    # the projector's vectors.tsv is the largest file written: it no longer fits
    completed = _run_with_file_size_limit(["embed", "--data", str(tmp_path / "data"), "--dim", "2", "--projector",
                                           "--out", str(out)], limit_bytes=600, cwd=tmp_path)
    assert completed.returncode == 4, completed.stderr
    assert completed.stderr.count("\n") == 1 and "could not read or write" in completed.stderr and "Traceback" not in completed.stderr
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == before, "earlier files intact"
    leftovers = [path for path in out.rglob(".*") if path.is_file()]
    assert leftovers == [], "no temporary left behind"


@pytest.mark.slow
def test_a_damaged_store_page_loses_no_printed_result(tmp_path, capsys):
    from tests.conftest import train_tiny_run
    from workbench.cli import main

    run_dir = train_tiny_run(tmp_path / "run", epochs=1, num_images=64)
    image = tmp_path / "one.png"
    from PIL import Image

    Image.fromarray(np.full((16, 16, 3), 40, np.uint8)).save(image)
    assert main(["classify", str(run_dir), str(image), "--top", "2", "--json"]) == 0
    capsys.readouterr()
    store = run_dir / "results.sqlite"
    connection = sqlite3.connect(store)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every committed row into the main file
    page_size, page_count = (connection.execute(f"PRAGMA {name}").fetchone()[0] for name in ("page_size", "page_count"))
    connection.close()
    data = bytearray(store.read_bytes())
    data[page_size:] = b"\x5a" * (page_count - 1) * page_size  # every page but the header's overwritten with garbage
    store.write_bytes(bytes(data))
    status = main(["classify", str(run_dir), str(image), "--top", "2", "--json"])
    captured = capsys.readouterr()
    assert status == 3, captured.err
    assert captured.err.count("\n") == 1 and "could not store" in captured.err and "Traceback" not in captured.err
    assert json.loads(captured.out)[0]["labels"], "every result printed before the store was touched"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["scenes", "embed"])
def test_killed_writers_then_a_rerun_give_the_uninterrupted_result(tmp_path, command):
    """``kill -9`` in the middle of writing, then the same command again: the same files as an uninterrupted run."""
    import os
    import subprocess
    import sys

    from workbench.data.scenes import write_scenes

    if command == "scenes":
        arguments = ["scenes", "--images", "3000", "--labels", "40", "--size", "32", "--seed", "2"]
    else:
        write_scenes(coloured_squares(60, seed=8), tmp_path / "data")
        arguments = ["embed", "--data", str(tmp_path / "data"), "--dim", "3", "--projector", "--save-counts"]

    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-m", "workbench.cli", *arguments, "--out", str(tmp_path / "whole")], check=True,
                   capture_output=True, env=environment, timeout=300)
    killed_dir = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "workbench.cli", *arguments, "--out", str(killed_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)
    # scenes: once its first images are written; embed: as soon as its folder has a file
    threshold = 50 if command == "scenes" else 1
    _kill_when(process, lambda: killed_dir.exists() and sum(1 for _ in killed_dir.rglob("*")) >= threshold, timeout=120,
               poll=0.005)
    rerun = subprocess.run([sys.executable, "-m", "workbench.cli", *arguments, "--out", str(killed_dir)],
                           capture_output=True, text=True, env=environment, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    whole, again = _digest(tmp_path / "whole"), _digest(killed_dir)
    if command == "embed":  # the settings record the seconds it took
        for folder, table in ((tmp_path / "whole", whole), (killed_dir, again)):
            table.pop("embedding.json")
            settings = json.loads((folder / "embedding.json").read_text())
            assert settings["settings"]["options"]["embedding_dim"] == 3
    assert again == whole


def test_fuzzed_images_either_decode_or_raise_one_image_error():
    """Every prefix class and byte flip of real PNG, JPEG, GIF, BMP and WebP files: a proper array or ImageLoadError."""
    import io

    from hypothesis import given, settings
    from hypothesis import strategies as st
    from PIL import Image

    from workbench.data.images import ImageLoadError, load_image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    encoded = []
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP"):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=fmt)
        encoded.append(buffer.getvalue())

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(st.sampled_from(range(len(encoded))), st.floats(0, 1), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4))
    def check(which, keep, flips):
        data = bytearray(encoded[which][: max(1, int(len(encoded[which]) * keep))])
        for where, value in flips:
            data[min(int(where * len(data)), len(data) - 1)] = value
        try:
            image = load_image(bytes(data), size=16)
        except ImageLoadError as error:
            assert "\n" not in str(error)
        else:
            assert image.shape == (16, 16, 3) and image.dtype == np.uint8

    check()


@pytest.mark.slow
def test_a_comparison_killed_mid_way_resumes_to_the_uninterrupted_results(tmp_path):
    """``kill -9`` once the second run has a checkpoint, then the same ``compare`` again: the same curves, run by run."""
    import os
    import signal
    import subprocess
    import sys

    from workbench.data.scenes import write_scenes

    write_scenes(coloured_squares(80, seed=12), tmp_path / "data")
    command = [sys.executable, "-m", "workbench.cli", "compare", "--data", str(tmp_path / "data"), "--dim", "3",
               "--heads", "pmi,sigmoid", "--seeds", "1", "--epochs", "3", "--image-size", "16", "--width", "4",
               "--depth", "2", "--batch-size", "16", "--validation-fraction", "0.25", "--workers", "1"]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([*command, "--out", str(tmp_path / "whole")], check=True, capture_output=True, env=environment, timeout=300)
    process = subprocess.Popen([*command, "--out", str(tmp_path / "killed")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=environment)
    state = tmp_path / "killed" / "runs" / "sigmoid-seed0" / "checkpoints" / "state.json"
    _kill_when(process, state.is_file)
    assert process.returncode == -signal.SIGKILL, "killed during the second run"
    rerun = subprocess.run([*command, "--out", str(tmp_path / "killed")], capture_output=True, text=True,
                           env=environment, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())["runs"]
    again = json.loads((tmp_path / "killed" / "results.json").read_text())["runs"]
    assert [(run["head"], run["seed"]) for run in again] == [(run["head"], run["seed"]) for run in whole]
    for first, second in zip(whole, again):
        assert [r["map_at_100"] for r in second["history"]] == pytest.approx([r["map_at_100"] for r in first["history"]], abs=1e-4)


@pytest.mark.slow
def test_a_full_disk_during_training_checkpoints_gives_one_line_and_the_run_resumes_once_there_is_room(tmp_path):
    """The first checkpoint does not fit: exit 4, one line, no temporary left; with room again the run completes."""
    import subprocess
    import sys

    from workbench.data.scenes import write_scenes

    write_scenes(coloured_squares(48, seed=13), tmp_path / "data")
    arguments = ["train", "--data", str(tmp_path / "data"), "--head", "sigmoid", "--epochs", "2", "--image-size", "16",
                 "--width", "4", "--depth", "2", "--batch-size", "16", "--validation-fraction", "0.25", "--workers", "1",
                 "--out", str(tmp_path / "run")]
    completed = _run_with_file_size_limit(arguments, limit_bytes=12_000, cwd=tmp_path)
    assert completed.returncode == 4, completed.stdout + completed.stderr
    assert completed.stderr.count("\n") == 1 and "could not read or write" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "run" / "checkpoints" / "state.json").exists(), "no epoch was committed"
    assert [path for path in (tmp_path / "run").rglob(".*") if path.is_file()] == [], "no temporary left behind"
    resumed = subprocess.run([sys.executable, "-m", "workbench.cli", *arguments], capture_output=True, text=True,
                             timeout=300, env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert resumed.returncode == 0, resumed.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["status"] == "complete" and config["epochs_completed"] == 2


@pytest.mark.slow
def test_a_full_disk_during_store_writes_prints_every_result_and_exits_3(tmp_path):
    from tests.conftest import train_tiny_run
    from PIL import Image

    run_dir = train_tiny_run(tmp_path / "run", epochs=1, num_images=64)
    images = []
    for value in range(3):
        images.append(tmp_path / f"{value}.png")
        Image.fromarray(np.full((16, 16, 3), 40 + 60 * value, np.uint8)).save(images[-1])
    completed = _run_with_file_size_limit(["classify", str(run_dir), *map(str, images), "--top", "2", "--json"],
                                          limit_bytes=2_000, cwd=tmp_path)
    assert completed.returncode == 3, completed.stderr
    printed = json.loads(completed.stdout)
    assert len(printed) == 3 and all(result["labels"] for result in printed), "every result printed first"
    assert completed.stderr.count("\n") == 1 and "could not store" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.slow
@pytest.mark.parametrize("draw", [0, 1, 2])
@pytest.mark.parametrize("command", ["train", "scenes"])
def test_kill_at_a_random_moment_then_a_rerun_gives_the_uninterrupted_result(tmp_path, command, draw):
    """``kill -9`` at a moment drawn uniformly over the command's own run time (seeded), then the same command again.

    Whatever was being written at that moment (a checkpoint, the history, an image, the labels), the rerun
    ends with what an uninterrupted run writes: the same history for ``train``, the same files for ``scenes``.
    """
    import os
    import subprocess
    import sys
    import time

    from workbench.data.scenes import write_scenes

    if command == "train":
        write_scenes(coloured_squares(96, seed=21), tmp_path / "data")
        arguments = ["train", "--data", str(tmp_path / "data"), "--head", "sigmoid", "--epochs", "4", "--image-size", "16",
                     "--width", "4", "--depth", "2", "--batch-size", "16", "--validation-fraction", "0.25",
                     "--workers", "1"]
    else:
        arguments = ["scenes", "--images", "1500", "--labels", "30", "--size", "24", "--seed", "4"]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_DETERMINISTIC_OPS": "1"}
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "workbench.cli", *arguments, "--out", str(tmp_path / "whole")], check=True,
                   capture_output=True, env=environment, timeout=300)
    duration = time.monotonic() - began
    moment = float(np.random.default_rng(draw).uniform(0.15, 0.95)) * duration
    process = subprocess.Popen([sys.executable, "-m", "workbench.cli", *arguments, "--out", str(tmp_path / "killed")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)
    started = time.monotonic()
    _kill_when(process, lambda: time.monotonic() - started >= moment, timeout=300, poll=0.005)
    rerun = subprocess.run([sys.executable, "-m", "workbench.cli", *arguments, "--out", str(tmp_path / "killed")],
                           capture_output=True, text=True, env=environment, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "Traceback" not in rerun.stderr
    if command == "train":
        _assert_same_history(tmp_path / "whole", tmp_path / "killed", epochs=4)
        assert json.loads((tmp_path / "killed" / "config.json").read_text())["status"] == "complete"
    else:
        assert _digest(tmp_path / "killed") == _digest(tmp_path / "whole")
    assert [path for path in (tmp_path / "killed").rglob(".*") if path.is_file()] == [], "no temporary left behind"


@pytest.mark.slow
def test_a_disk_that_fills_up_at_any_point_of_scenes_gives_one_line_and_a_rerun_with_room_completes(tmp_path, small_disk):
    """``scenes`` on disks of growing size: every one fills up at another write (an image, the labels, the settings).

    Each attempt ends in exit 4 with one line and no temporary left, or in success; with room again the
    same command gives exactly the files of a run that never hit a full disk.
    """
    import os
    import subprocess
    import sys

    arguments = ["scenes", "--images", "400", "--labels", "20", "--size", "24", "--seed", "6"]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-m", "workbench.cli", *arguments, "--out", str(tmp_path / "whole")], check=True,
                   capture_output=True, env=environment, timeout=300)

    whole = _digest(tmp_path / "whole")
    total = sum((tmp_path / "whole" / name).stat().st_size for name in whole) // 1024
    outcomes = []
    for share in (0.1, 0.35, 0.6, 0.85, 0.97):
        disk = small_disk(max(16, int(total * share)))
        out = disk / "scenes"
        completed = subprocess.run([sys.executable, "-m", "workbench.cli", *arguments, "--out", str(out)],
                                   capture_output=True, text=True, env=environment, timeout=300)
        outcomes.append(completed.returncode)
        assert completed.returncode in (0, 4), completed.stderr
        if completed.returncode == 4:
            assert completed.stderr.count("\n") == 1 and "could not read or write" in completed.stderr
            assert "Traceback" not in completed.stderr
        assert [path for path in out.rglob(".*") if path.is_file()] == [], "no temporary left behind"
        small_disk(total * 4)  # room again: the same command completes the folder
        rerun = subprocess.run([sys.executable, "-m", "workbench.cli", *arguments, "--out", str(out)],
                               capture_output=True, text=True, env=environment, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        assert _digest(out) == whole
        import shutil

        shutil.rmtree(out)
    assert 4 in outcomes, "at least one disk was too small"


# ---------------------------------------------------------------------------------
# a full disk at every write, kills at random moments of every long command (issue 24)
# ---------------------------------------------------------------------------------
def _without_seconds(value):
    """JSON with every ``"seconds"`` entry left out (the time a step took differs from run to run)."""
    if isinstance(value, dict):
        return {key: _without_seconds(item) for key, item in value.items() if key != "seconds"}
    if isinstance(value, list):
        return [_without_seconds(item) for item in value]
    return value


def _same_embedding_output(folder, reference) -> bool:
    """The files of two ``embed`` outputs agree byte for byte (``embedding.json`` but for its timings)."""
    mine, theirs = _digest(folder), _digest(reference)
    mine.pop("embedding.json", None), theirs.pop("embedding.json", None)
    return mine == theirs and _without_seconds(json.loads((folder / "embedding.json").read_text())) == \
        _without_seconds(json.loads((reference / "embedding.json").read_text()))


def _assert_each_attempt_failed_at_its_write_in_one_line(report, *, status: int, message: str) -> None:
    assert report["reference"]["rc"] == 0, report["reference"]["err"]
    assert len(report["attempts"]) == len(report["reference"]["writes"]) >= 5, "a disk full at every write"
    for attempt in report["attempts"]:
        where = f"disk full at write {attempt['trigger']} ({attempt['target']})"
        assert attempt["rc"] == status, where
        assert attempt["failed"] == [attempt["target"]], f"{where}: that write failed, and only it"
        assert attempt["err"].count("\n") == 1 and message in attempt["err"] and "Traceback" not in attempt["err"], where
        assert f"/out/{attempt['target']} (No space left on device)" in attempt["err"], f"{where}: the file is named"
        assert attempt["leftovers"] == [], f"{where}: no temporary left behind"
        assert attempt["rerun_rc"] == 0, f"{where}: {attempt['rerun_err']}"


def test_a_full_disk_at_every_write_of_embed_then_a_rerun_gives_the_uninterrupted_result(tmp_path, mount_namespace):
    """The disk fills up as each of ``embed``'s writes begins (half of the file fits): one line, exit 4, no temporary;
    with room again the same command writes exactly the uninterrupted output."""
    from tests.conftest import full_disk_at_every_write
    from workbench.data.scenes import write_scenes

    write_scenes(coloured_squares(60, seed=8), tmp_path / "data")
    arguments = ["embed", "--data", str(tmp_path / "data"), "--dim", "3", "--projector", "--save-counts", "--out", "{out}"]
    report = full_disk_at_every_write(mount_namespace, tmp_path, {"kind": "cli", "arguments": arguments}, mode="writes")
    _assert_each_attempt_failed_at_its_write_in_one_line(report, status=4, message="could not read or write")
    copies = tmp_path / "copies"
    assert {path for path, _ in report["reference"]["writes"]} == set(_digest(copies / "reference")), "every file's write"
    for number in range(len(report["attempts"])):
        assert _same_embedding_output(copies / str(number) / "rerun", copies / "reference"), number


@pytest.mark.slow
def test_a_full_disk_at_every_write_of_train_then_a_rerun_gives_the_uninterrupted_history(tmp_path, mount_namespace):
    """The disk fills up as each of ``train``'s writes begins (config, vocabulary, every checkpoint, history, state,
    the model, the manifest): one line, exit 4, no temporary; the same command with room resumes to the same history.

    Found: a disk full at the first ``config.json`` left a folder with only ``vocabulary.csv``, which the rerun
    refused as "not empty and holds no run"; ``config.json`` is now written first.
    """
    from tests.conftest import full_disk_at_every_write
    from workbench.data.scenes import write_scenes

    write_scenes(coloured_squares(48, seed=13), tmp_path / "data")
    arguments = ["train", "--data", str(tmp_path / "data"), "--head", "sigmoid", "--epochs", "2", "--image-size", "16",
                 "--width", "4", "--depth", "2", "--batch-size", "16", "--validation-fraction", "0.25", "--workers", "1",
                 "--out", "{out}"]
    report = full_disk_at_every_write(mount_namespace, tmp_path, {"kind": "cli", "arguments": arguments}, mode="writes")
    _assert_each_attempt_failed_at_its_write_in_one_line(report, status=4, message="could not read or write")
    copies = tmp_path / "copies"
    written = {path for path, _ in report["reference"]["writes"]}
    assert {"config.json", "vocabulary.csv", "model.keras", "manifest.json", "history.json", "image_ap.npz",
            "checkpoints/state.json", "checkpoints/epoch-0001.keras", "checkpoints/epoch-0002.keras"} <= written
    for number in range(len(report["attempts"])):
        rerun = copies / str(number) / "rerun"
        _assert_same_history(copies / "reference", rerun, epochs=2)
        config = json.loads((rerun / "config.json").read_text())
        assert config["status"] == "complete" and config["epochs_completed"] == 2
        assert sorted(path for path in _digest(rerun)) == sorted(_digest(copies / "reference"))


def _store_rows(path) -> dict:
    """A store's content but its timestamps: runs, label vectors, classifications and their labels (none before the schema)."""
    connection = sqlite3.connect(path)
    try:
        if connection.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'classifications'").fetchone()[0] == 0:
            return {"integrity": connection.execute("PRAGMA integrity_check").fetchone()[0], "classifications": []}
        return {
            "integrity": connection.execute("PRAGMA integrity_check").fetchone()[0],
            "runs": connection.execute("SELECT run_id, path, head, num_labels, embedding_dim, eigenvalues FROM runs").fetchall(),
            "vectors": connection.execute("SELECT * FROM label_vectors ORDER BY run_id, label_index").fetchall(),
            "classifications": connection.execute(
                "SELECT classification_id, sha256, image, run_id, setting, labels FROM classifications "
                "ORDER BY classification_id").fetchall(),
            "labels": connection.execute("SELECT * FROM classification_labels ORDER BY classification_id, rank").fetchall(),
        }
    finally:
        connection.close()


@pytest.mark.slow
def test_a_full_disk_at_every_write_of_the_store_keeps_whole_calls_and_a_rerun_gives_the_uninterrupted_store(
        tmp_path, mount_namespace):
    """Three classify-like calls (register the run, store 100 results) on a disk with 0, 1, 2, … pages free.

    Every page SQLite allocates (the file, the WAL switch, the schema, the WAL, the shared memory,
    checkpoints) is the one that fails in some attempt: one line, no traceback; what is stored is
    whole calls only; with room again the remaining calls complete the store exactly as without a full disk.
    """
    from tests.conftest import full_disk_at_every_write

    job = {"kind": "store", "rounds": 3, "per_round": 100, "run": str(tmp_path / "run")}
    report = full_disk_at_every_write(mount_namespace, tmp_path, job, mode="pages", pages=400)
    assert report["reference"]["rc"] == 0, report["reference"]["err"]
    copies = tmp_path / "copies"
    reference = _store_rows(copies / "reference" / "results.sqlite")
    assert reference["integrity"] == "ok" and len(reference["classifications"]) == 300
    statuses = [attempt["rc"] for attempt in report["attempts"]]
    assert statuses[0] == 3 and statuses[-1] == 0 and statuses == sorted(statuses, reverse=True), \
        "full disks fail, and from some size on the store fits"
    stored_before = set()
    for number, attempt in enumerate(report["attempts"]):
        if attempt["rc"] == 3:
            assert attempt["err"].count("\n") == 1 and "could not store" in attempt["err"], attempt["err"]
            assert "Traceback" not in attempt["err"]
        stored = copies / str(number) / "attempt" / "results.sqlite"
        if stored.is_file() and stored.stat().st_size:
            rows = _store_rows(stored)
            assert rows["integrity"] == "ok" and len(rows["classifications"]) % 100 == 0, f"{number} free pages: whole calls"
            stored_before.add(len(rows["classifications"]))
        assert attempt["rerun_rc"] == 0, attempt["rerun_err"]
        assert _store_rows(copies / str(number) / "rerun" / "results.sqlite") == reference, f"{number} free pages"
    assert {0, 100, 200} <= stored_before, "the disk filled up in the first, the second and the third call"


def _kill_at_a_random_moment_of_its_writes(command, out, *, draw: int, window: float, environment) -> bool:
    """Start ``command``, ``kill -9`` its process group at a seeded moment after its first output appears; True if killed."""
    import os
    import signal
    import subprocess
    import time

    fraction = float(np.random.default_rng(draw).uniform(0.0, 1.0))
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while process.poll() is None and not (out.exists() and any(out.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.001)
        moment = time.monotonic() + fraction * window
        while process.poll() is None and time.monotonic() < moment:
            time.sleep(0.001)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
    return process.returncode == -signal.SIGKILL


def _writing_window(command, out, environment) -> float:
    """Seconds from an uninterrupted run's first output file to its end."""
    import subprocess
    import time

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment)
    first = None
    while process.poll() is None:
        if first is None and out.exists() and any(out.iterdir()):
            first = time.monotonic()
        time.sleep(0.001)
    end = time.monotonic()
    assert process.returncode == 0, process.stderr.read()
    return end - (first if first is not None else end)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["embed", "compare", "experiment"])
def test_kill_at_random_moments_of_its_writes_then_a_rerun_gives_the_uninterrupted_result(tmp_path, command):
    """``kill -9`` (the whole process group) at three seeded moments drawn uniformly over the time the command
    writes (from its first output file to its end, as measured on an uninterrupted run), each followed by the
    same command again: the uninterrupted result, and no temporary left behind."""
    import os
    import subprocess
    import sys

    from workbench.data.scenes import write_scenes

    write_scenes(coloured_squares(48, seed=12), tmp_path / "data")
    small = ["--image-size", "16", "--width", "4", "--depth", "2", "--batch-size", "16", "--workers", "1"]
    if command == "embed":
        arguments = ["embed", "--data", str(tmp_path / "data"), "--dim", "3", "--projector", "--save-counts"]
    elif command == "compare":
        arguments = ["compare", "--data", str(tmp_path / "data"), "--dim", "3", "--heads", "pmi,sigmoid", "--seeds", "1",
                     "--epochs", "2", "--validation-fraction", "0.25", *small]
    else:
        (tmp_path / "grid.toml").write_text(
            "[data]\nlabels = 6\nimages = 48\nsize = 16\nvalidation_fraction = 0.25\n[embedding]\ndim = [2, 3]\n"
            "[train]\nheads = [\"pmi\"]\nseeds = [0]\nepochs = 2\nimage_size = 16\nbatch_size = 16\nwidth = 4\ndepth = 2\n")
        arguments = ["experiment", "--grid", str(tmp_path / "grid.toml"), "--cores", "1"]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_DETERMINISTIC_OPS": "1"}
    whole = tmp_path / "whole"
    window = _writing_window([sys.executable, "-m", "workbench.cli", *arguments, "--out", str(whole)], whole, environment)
    killed = []
    for draw in range(3):
        out = tmp_path / f"killed-{draw}"
        command_line = [sys.executable, "-m", "workbench.cli", *arguments, "--out", str(out)]
        killed.append(_kill_at_a_random_moment_of_its_writes(command_line, out, draw=draw, window=window,
                                                             environment=environment))
        rerun = subprocess.run(command_line, capture_output=True, text=True, env=environment, timeout=600)
        assert rerun.returncode == 0, f"draw {draw}: {rerun.stderr}"
        assert "Traceback" not in rerun.stderr
        assert [path for path in out.rglob(".*") if path.is_file()] == [], f"draw {draw}: no temporary left behind"
        if command == "embed":
            assert _same_embedding_output(out, whole), f"draw {draw}"
            continue
        results, again = (json.loads((folder / "results.json").read_text()) for folder in (whole, out))
        if command == "compare":
            assert [(run["head"], run["seed"]) for run in again["runs"]] == [(run["head"], run["seed"]) for run in results["runs"]]
            for first, second in zip(results["runs"], again["runs"]):
                assert [r["map_at_100"] for r in second["history"]] == \
                    pytest.approx([r["map_at_100"] for r in first["history"]], abs=1e-4), f"draw {draw}"
            assert _same_embedding_output(out / "embedding", whole / "embedding"), f"draw {draw}"
        else:
            key = lambda row: (row["cell"], row["head"], row["seed"])  # noqa: E731
            assert sorted(map(key, again["rows"])) == sorted(map(key, results["rows"])) and len(results["rows"]) == 2
            by_key = {key(row): row for row in results["rows"]}
            for row in again["rows"]:
                assert row["map_at_100"] == pytest.approx(by_key[key(row)]["map_at_100"], abs=1e-4), f"draw {draw}"
    assert any(killed), "at least one draw killed the command before it ended"
