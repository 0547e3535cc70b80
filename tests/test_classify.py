"""Ranking, decoding and classifying images; the ``workbench classify`` command.

The end-to-end tests use a real run trained by :func:`tests.conftest.train_tiny_run` (the
``tiny_run`` fixture: 16×16 images of two colour bands, six colour labels, a PMI head, a few seconds).
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tests.conftest import COLOURS, colour_bands
from workbench.apps.classify import ClassificationResult, Classifier
from workbench.method.decoding import LabelScorer, decode_predictions, rank_labels, setting_name
from workbench.data.labels import Vocabulary


# ---------------------------------------------------------------------------------
# image bytes and a brute-force ranking
# ---------------------------------------------------------------------------------
def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width × height`` pixels (a decompression bomb's signature)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def brute_force_ranking(scores: np.ndarray, *, top=None, threshold=None) -> list[list[int]]:
    """Reference: Python's sort of every row by (-score, index)."""
    out = []
    for row in np.asarray(scores):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))
        if threshold is not None:
            order = [j for j in order if row[j] >= threshold]
        out.append(order if top is None else order[:top])
    return out


# ---------------------------------------------------------------------------------
# rank_labels
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_rank_labels_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    num_rows, num_labels = int(rng.integers(1, 12)), int(rng.integers(1, 700))
    scores = rng.normal(size=(num_rows, num_labels)).astype(np.float32)
    if seed % 2:  # many exact ties
        scores = np.round(scores * 2) / 2
    for top, threshold in [(1, None), (5, None), (37, None), (num_labels, None), (num_labels + 3, None),
                           (None, 0.5), (None, 5.0), (4, 0.0), (50, -0.25)]:
        ranked = rank_labels(scores, top=top, threshold=threshold)
        assert [[index for index, _ in row] for row in ranked] == brute_force_ranking(scores, top=top, threshold=threshold)
        for row, ranking in zip(scores, ranked):
            assert all(value == pytest.approx(float(row[index])) for index, value in ranking)
            assert all(isinstance(index, int) and isinstance(value, float) for index, value in ranking)


def test_rank_labels_ties_at_the_cut_keep_lower_indices():
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.1]])
    assert rank_labels(scores, top=2) == [[(1, 0.9), (0, 0.5)]]
    assert rank_labels(scores, top=3) == [[(1, 0.9), (0, 0.5), (2, 0.5)]]


def test_rank_labels_integer_and_empty_inputs():
    assert rank_labels(np.array([[1, 3, 2]], dtype=np.uint8), top=2) == [[(1, 3.0), (2, 2.0)]]
    assert rank_labels(np.zeros((0, 5)), top=3) == []
    assert rank_labels(np.zeros((2, 0)), top=3) == [[], []]
    assert rank_labels(np.array([[0.1, 0.2]]), threshold=0.9) == [[]]


@pytest.mark.parametrize(
    "scores, options, message",
    [
        (np.zeros((2, 3)), {}, "top=N"),
        (np.zeros((2, 3)), {"top": 0}, "positive integer"),
        (np.zeros((2, 3)), {"top": 2.5}, "positive integer"),
        (np.zeros((2, 3)), {"top": True}, "positive integer"),
        (np.zeros((2, 3)), {"threshold": float("nan")}, "finite"),
        (np.zeros((2, 3)), {"threshold": "0.5"}, "number"),
        (np.zeros(3), {"top": 1}, "matrix"),
        (np.array([[0.1, np.nan]]), {"top": 1}, "NaN"),
        (np.array([["a", "b"]]), {"top": 1}, "numbers"),
    ],
)
def test_rank_labels_refuses_bad_input(scores, options, message):
    with pytest.raises(ValueError, match=message) as caught:
        rank_labels(scores, **options)
    assert "\n" not in str(caught.value)


def test_setting_name():
    assert setting_name(top=5) == "top:5"
    assert setting_name(threshold=0.25) == "threshold:0.25"
    assert setting_name(top=3, threshold=0.5) == "top:3,threshold:0.5"
    with pytest.raises(ValueError):
        setting_name()


# ---------------------------------------------------------------------------------
# decode_predictions
# ---------------------------------------------------------------------------------
def test_decode_predictions_matches_cosine_reference_across_batches():
    from workbench.method.embedding import cosine_similarities

    rng = np.random.default_rng(1)
    points = rng.normal(size=(23, 8)).astype(np.float32)
    points[4] = 0.0  # a zero output has similarity 0 to everything
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    reference = cosine_similarities(points, vectors)
    for options in ({"top": 7}, {"threshold": 0.6}, {"top": 4, "threshold": 0.7}):
        decoded = decode_predictions(points, vectors, batch_size=5, **options)
        expected = rank_labels(reference, **options)
        assert len(decoded) == len(points)
        for row, (got, want) in enumerate(zip(decoded, expected)):
            assert [value for _, value in got] == pytest.approx([value for _, value in want], abs=1e-5)
            # indices agree except where two scores are within rounding of each other
            for (got_index, _), (want_index, _) in zip(got, want):
                assert got_index == want_index or abs(reference[row, got_index] - reference[row, want_index]) < 1e-5
    zero_row = decode_predictions(points, vectors, top=3)[4]
    assert [value for _, value in zero_row] == [0.0, 0.0, 0.0]
    assert [index for index, _ in zero_row] == [0, 1, 2]
    assert all(-1.0 <= value <= 1.0 for row in decode_predictions(points, vectors, top=300) for _, value in row)


def test_decode_predictions_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="dimensions"):
        decode_predictions(np.zeros((2, 3)), np.zeros((4, 5)), top=1)
    with pytest.raises(ValueError, match="NaN"):
        decode_predictions(np.full((2, 3), np.nan), np.ones((4, 3)), top=1)
    with pytest.raises(ValueError, match="batch_size"):
        decode_predictions(np.ones((2, 3)), np.ones((4, 3)), top=1, batch_size=0)


# ---------------------------------------------------------------------------------
# Classifier with a stand-in run (real image decoding)
# ---------------------------------------------------------------------------------
class MeanColourRun:
    """A stand-in run whose score of each colour label is minus the distance to the image's mean colour."""

    def __init__(self, image_size: int = 16):
        self.vocabulary = Vocabulary(tuple(COLOURS))
        self.image_size = image_size
        self.embedding = None
        self.head = "sigmoid"
        self.calls = 0
        self._palette = np.array(list(COLOURS.values()), dtype=np.float32)

    def label_scores(self, images):
        self.calls += 1
        images = np.asarray(images)
        assert images.dtype == np.uint8 and images.shape[1:] == (self.image_size, self.image_size, 3)
        means = images.reshape(len(images), -1, 3).mean(axis=1)
        return (-np.linalg.norm(means[:, None, :] - self._palette[None], axis=2) / 441.0).astype(np.float32)


@pytest.fixture()
def image_files(tmp_path):
    red = tmp_path / "red.png"
    red.write_bytes(png_bytes(colour_bands("red", "red", size=40)))
    blue = tmp_path / "blue.jpg"
    Image.fromarray(colour_bands("blue", "blue", size=40)).save(blue, format="JPEG", quality=95)
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(png_bytes(colour_bands("green", "green", size=64, noise=60))[:300])
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(100_000, 100_000))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    return SimpleNamespace(red=red, blue=blue, text=text, truncated=truncated, bomb=bomb, empty=empty,
                           missing=tmp_path / "missing.png", folder=tmp_path)


def test_classifier_classifies_files_and_reports_bad_ones(image_files):
    run = MeanColourRun()
    classifier = Classifier(run)
    sources = [image_files.red, image_files.text, image_files.blue, image_files.truncated, image_files.bomb,
               image_files.missing, image_files.folder, image_files.empty]
    results = classifier.classify(sources, top=2)
    assert [result.image for result in results] == [str(source) for source in sources]
    assert [result.ok for result in results] == [True, False, True, False, False, False, False, False]
    assert run.calls == 1  # the good images are scored in one batch
    red, blue = results[0], results[2]
    assert red.labels[0][0] == "red" and blue.labels[0][0] == "blue"
    assert len(red.labels) == 2 and red.labels[0][1] >= red.labels[1][1]
    assert red.sha256 == hashlib.sha256(image_files.red.read_bytes()).hexdigest()
    assert red.setting == "top:2" and red.pixels.shape == (16, 16, 3)
    messages = {Path(result.image).name: result.error for result in results if not result.ok}
    assert "not an image" in messages["notes.png"]
    assert "truncated" in messages["truncated.png"] or "corrupt" in messages["truncated.png"]
    assert "pixels" in messages["bomb.png"]
    assert messages["missing.png"] == "No such file."
    assert "folder" in messages[image_files.folder.name]
    assert "empty" in messages["empty.png"]
    for message in messages.values():
        assert "\n" not in message and message.endswith(".")
    assert results[1].sha256 == hashlib.sha256(image_files.text.read_bytes()).hexdigest()


def test_classifier_works_in_batches_and_keeps_order(image_files):
    run = MeanColourRun()
    sources = [image_files.red, image_files.text, image_files.blue, image_files.red, image_files.bomb]
    results = Classifier(run, batch_size=2).classify(sources, top=1, keep_pixels=False)
    assert run.calls == 2  # chunks {red, text}, {blue, red}, {bomb}: the last has no good image to score
    assert [r.labels[0][0] if r.ok else None for r in results] == ["red", None, "blue", "red", None]
    assert all(r.pixels is None for r in results)


def test_classifier_matches_scores_of_the_decoded_image(image_files):
    from workbench.data.images import load_image

    run = MeanColourRun()
    result = Classifier(run).classify([image_files.blue], threshold=-0.5)[0]
    scores = run.label_scores(load_image(image_files.blue, size=16)[None])[0]
    expected = [(run.vocabulary[i], float(scores[i])) for i in brute_force_ranking(scores[None], threshold=-0.5)[0]]
    assert [name for name, _ in result.labels] == [name for name, _ in expected]
    assert [value for _, value in result.labels] == pytest.approx([value for _, value in expected])
    assert result.setting == "threshold:-0.5"


def test_classifier_bytes_limits_and_json_form(image_files):
    run = MeanColourRun()
    content = image_files.red.read_bytes()
    result = Classifier(run).classify_bytes(content, "upload.png", top=1)
    assert result.to_dict() == {
        "image": "upload.png",
        "sha256": hashlib.sha256(content).hexdigest(),
        "labels": [{"label": "red", "similarity": pytest.approx(result.labels[0][1])}],
    }
    small = Classifier(run, max_bytes=100).classify_bytes(content, "upload.png", top=1)
    assert not small.ok and "limit" in small.error and set(small.to_dict()) == {"image", "error"}
    too_many_pixels = Classifier(run, max_pixels=100).classify_bytes(content, "upload.png", top=1)
    assert not too_many_pixels.ok and "pixels" in too_many_pixels.error
    names = Classifier(run).classify([content, content], top=1)
    assert [r.image for r in names] == ["image 1", "image 2"]
    with pytest.raises(ValueError, match="one name per image"):
        Classifier(run).classify([content], top=1, names=["a", "b"])
    with pytest.raises(ValueError, match="max_bytes"):
        Classifier(run, max_bytes=0)


def test_classifier_reports_decoder_crashes_per_image(image_files):
    def flaky_loader(source, **options):
        if str(source).endswith("blue.jpg"):
            raise RuntimeError("decoder exploded")
        from workbench.data.images import load_image

        return load_image(source, **options)

    results = Classifier(MeanColourRun(), load_image=flaky_loader).classify([image_files.blue, image_files.red], top=1)
    assert not results[0].ok and "decoder exploded" in results[0].error
    assert results[1].ok


# ---------------------------------------------------------------------------------
# a real trained run
# ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for top, bottom in [("red", "red"), ("yellow", "green"), ("white", "black")]:
        path = folder / f"{top}-{bottom}.png"
        Image.fromarray(colour_bands(top, bottom, size=48, seed=7)).save(path)
        paths.append(path)
    bad = folder / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return paths, bad


def test_classifier_with_a_trained_run_matches_label_scores(tiny_run, sample_images):
    from workbench.data.images import load_image
    from workbench.learning.runs import load_run

    run = load_run(tiny_run)
    classifier = Classifier(run)
    paths, _ = sample_images
    results = classifier.classify(paths, top=3)
    images = np.stack([load_image(path, size=run.image_size) for path in paths])
    reference = run.label_scores(images)
    for result, row in zip(results, reference):
        expected = brute_force_ranking(row[None], top=3)[0]
        assert [name for name, _ in result.labels] == [run.vocabulary[i] for i in expected]
        assert [value for _, value in result.labels] == pytest.approx([float(row[i]) for i in expected], abs=1e-5)
    # the one scoring path (predict_on_batch + LabelScorer) agrees with the definition, computed in float64
    # from model.predict: the cosine of each output to each label vector
    outputs = run.model.predict(images, verbose=0).astype(np.float64)
    vectors = run.embedding.vectors.astype(np.float64)
    definition = (outputs / np.linalg.norm(outputs, axis=1, keepdims=True)) @ (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).T
    np.testing.assert_allclose(reference, definition, atol=1e-5)
    np.testing.assert_allclose(classifier.scores(images), reference, atol=1e-6)


def test_cli_classify_json_reports_bad_files_and_stores(tiny_run, sample_images, tmp_path, capsys):
    from workbench.cli import main

    paths, bad = sample_images
    store_path = tmp_path / "results.sqlite"
    status = main(["classify", str(tiny_run), str(paths[0]), str(bad), str(paths[1]), "--top", "2", "--json",
                   "--store", str(store_path)])
    captured = capsys.readouterr()
    assert status == 1
    output = json.loads(captured.out)
    assert [item["image"] for item in output] == [str(paths[0]), str(bad), str(paths[1])]
    assert set(output[1]) == {"image", "error", "sha256"} and "\n" not in output[1]["error"]
    for item, path in ((output[0], paths[0]), (output[2], paths[1])):
        assert item["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert len(item["labels"]) == 2
        assert all(set(label) == {"label", "similarity"} and label["label"] in COLOURS for label in item["labels"])
        assert item["labels"][0]["similarity"] >= item["labels"][1]["similarity"]
    assert "Traceback" not in captured.err and "1 of 3" in captured.err
    with sqlite3.connect(store_path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM classifications").fetchone()[0] == 2
        assert connection.execute("SELECT DISTINCT setting FROM classifications").fetchall() == [("top:2",)]

    from workbench.apps.store import ResultStore

    history = ResultStore(store_path).history(output[0]["sha256"])
    assert [entry["labels"] for entry in history] == [output[0]["labels"]]
    (run,) = ResultStore(store_path).runs()
    assert (run["head"], run["image_size"], run["num_labels"], run["num_classifications"]) == ("pmi", 16, len(COLOURS), 2)
    assert run["settings"]["epochs"] == 6 and run["path"] == str(tiny_run.resolve())
    names, vectors, _ = ResultStore(store_path).label_vectors(run["run_id"])
    assert names == list(COLOURS) and vectors.shape[0] == len(COLOURS)


def test_cli_classify_table_threshold_and_default_store(tiny_run, sample_images, capsys):
    from workbench.cli import main

    paths, _ = sample_images
    store_path = tiny_run / "results.sqlite"
    before = 0
    if store_path.exists():
        with sqlite3.connect(store_path) as connection:
            before = connection.execute("SELECT COUNT(*) FROM classifications").fetchone()[0]
    assert main(["classify", str(tiny_run), str(paths[2]), "--threshold", "-1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{paths[2]}  (sha256 ")
    assert sum(1 for line in out.splitlines() if "similarity" in line) == len(COLOURS)
    with sqlite3.connect(store_path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM classifications").fetchone()[0] == before + 1


def test_cli_classify_prints_a_file_name_with_a_newline_escaped(tiny_run, sample_images, tmp_path, capsys):
    """One result is one block: a name with a newline (or another control character) is shown as repr shows it."""
    import shutil

    from workbench.cli import main

    paths, _ = sample_images
    odd = tmp_path / "two\nlines\t.png"
    shutil.copy(paths[0], odd)
    assert main(["classify", str(tiny_run), str(odd), "--top", "2", "--no-store"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].startswith(f"{str(odd)!r}  (sha256 ") and "\\n" in lines[0]
    assert all(line.startswith("    ") for line in lines[1:])
    assert main(["classify", str(tiny_run), str(odd), "--top", "2", "--no-store", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["image"] == str(odd)  # JSON keeps the name as it is


def test_result_text_escapes_control_characters_in_names():
    from workbench.apps.classify import format_results, printable

    assert printable("plain name.png") == "plain name.png" and printable("a\rb") == "'a\\rb'"
    ok = ClassificationResult(image="x\ny.png", sha256="ab" * 32, labels=(("red", 0.9), ("tab\tlabel", 0.5)))
    failed = ClassificationResult(image="\x1b[31mred.png", error="Not an image:\x07.")
    text = format_results([ok, failed])
    assert text.splitlines() == [
        "'x\\ny.png'  (sha256 abababababab…)",
        "    1. red" + " " * 9 + "  similarity 0.9000",  # padded to the escaped name's width
        "    2. 'tab\\tlabel'  similarity 0.5000",
        "'\\x1b[31mred.png': error: Not an image:\\x07.",
    ]


def test_cli_classify_user_errors_are_one_line(tiny_run, sample_images, tmp_path, capsys):
    from workbench.cli import main

    paths, _ = sample_images
    cases = [
        ["classify", str(tmp_path / "nowhere"), str(paths[0]), "--top", "3"],
        ["classify", str(tiny_run), str(paths[0]), "--top", "0"],
        ["classify", str(tiny_run), str(paths[0]), "--top", "1", "--no-store", "--store", str(tmp_path / "x.sqlite")],
        ["classify", str(tmp_path), str(paths[0]), "--top", "1", "--no-store"],
    ]
    for argv in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("workbench classify: error: ") and err.count("\n") == 1, err
    assert main(["classify", str(tiny_run), str(paths[0]), "--top", "1", "--no-store", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    with pytest.raises(SystemExit):  # argparse: --top or --threshold is required
        main(["classify", str(tiny_run), str(paths[0])])


def test_cli_no_store_writes_nothing(tiny_run, sample_images, tmp_path, capsys):
    import shutil

    from workbench.cli import main

    run_copy = tmp_path / "run"
    shutil.copytree(tiny_run, run_copy, ignore=shutil.ignore_patterns("results.sqlite*"))
    paths, _ = sample_images
    assert main(["classify", str(run_copy), str(paths[0]), "--top", "1", "--no-store"]) == 0
    capsys.readouterr()
    assert not (run_copy / "results.sqlite").exists()


def test_classification_result_error_form():
    result = ClassificationResult(image="x.png", error="Not an image.")
    assert not result.ok and result.to_dict() == {"image": "x.png", "error": "Not an image."}


def test_label_scorer_gives_cosines_and_passes_probabilities_through():
    rng = np.random.default_rng(0)
    points = rng.standard_normal((5, 3)).astype(np.float32)
    vectors = rng.standard_normal((4, 3)).astype(np.float32)
    vectors[2] = 0.0
    scores = LabelScorer(vectors)(points)
    assert scores.shape == (5, 4) and scores.dtype == np.float32
    for n in range(5):
        for c in (0, 1, 3):
            expected = points[n] @ vectors[c] / np.linalg.norm(points[n]) / np.linalg.norm(vectors[c])
            assert scores[n, c] == pytest.approx(expected, abs=1e-6)
    assert np.all(scores[:, 2] == 0)
    probabilities = rng.random((5, 4))
    np.testing.assert_array_equal(LabelScorer()(probabilities), probabilities.astype(np.float32))
    with pytest.raises(ValueError, match="dimensions"):
        LabelScorer(np.zeros((4, 2)))(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        LabelScorer(vectors)(np.full((1, 3), np.nan))
