"""``workbench embed`` and ``workbench neighbours`` end to end (in-process)."""

import json
import re

import numpy as np
import pytest

from workbench.cli import main
from workbench.method.cooccurrence import CooccurrenceCounts, count_cooccurrence
from workbench.data.labels import Vocabulary, label_matrix
from workbench.method.embedding import LabelEmbedding; from workbench.method.embed import embed_labels

LABEL_SETS = [
    ("cat", "sofa"), ("cat", "sofa", "tv"), ("dog", "sofa"), ("dog", "ball"), ("ball", "grass", "dog"),
    ("car", "road"), ("car", "road", "truck"), ("truck", "road"), ("cat",), ("grass", "ball"), ("tv", "sofa"),
    ("car", "truck"), ("dog", "grass"), (), ("cat", "tv"), ("road",), ("sofa", "cat", "dog"), ("truck", "car", "road"),
]


@pytest.fixture()
def counts_file(tmp_path):
    vocabulary = Vocabulary.from_label_sets(LABEL_SETS)
    counts = count_cooccurrence(label_matrix(LABEL_SETS, vocabulary), vocabulary)
    return counts.save_json(tmp_path / "counts.json"), counts


@pytest.fixture()
def dataset_dir(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    rows = "".join(f"img{i}.png,{'|'.join(s)}\n" for i, s in enumerate(LABEL_SETS))
    (folder / "labels.csv").write_text("image,labels\n" + rows)
    return folder


def test_embed_from_counts_writes_the_artefact(counts_file, tmp_path, capsys):
    path, counts = counts_file
    out = tmp_path / "emb"
    assert main(["embed", "--counts", str(path), "--dim", "3", "--out", str(out), "--projector"]) == 0
    printed = capsys.readouterr().out
    assert "embedded 9 labels (0 dropped) from 18 images in 3 dimensions" in printed
    assert "energy kept" in printed and "solver exact" in printed
    embedding = LabelEmbedding.load(out)
    expected = embed_labels(counts, embedding_dim=3)
    np.testing.assert_array_equal(embedding.vectors, expected.vectors)
    assert embedding.settings["pmi"]["policy"] == "zero" and embedding.settings["spectral"]["dim"] == 3
    metadata = (out / "projector" / "metadata.tsv").read_text().splitlines()
    assert metadata[0] == "label\tgroup\tcount" and len(metadata) == 10
    assert not (out / "counts.json").exists()


def test_embed_from_data_with_every_option(dataset_dir, counts_file, tmp_path, capsys):
    out = tmp_path / "emb"
    argv = [
        "embed", "--data", str(dataset_dir), "--format", "list-csv", "--dim", "2", "--pmi", "clip", "--clip-value", "-1.5",
        "--context-exponent", "0.75", "--shift", "2", "--diagonal", "zero", "--negative", "abs", "--solver", "exact",
        "--seed", "3", "--save-counts", "--validation-fraction", "0", "--out", str(out),
    ]
    assert main(argv) == 0
    settings = LabelEmbedding.load(out).settings
    assert settings["pmi"] == {**settings["pmi"], "policy": "clip", "clip_value": -1.5, "context_exponent": 0.75,
                               "shift": 2.0, "diagonal": "zero"}
    assert settings["spectral"]["negative"] == "abs" and settings["spectral"]["random_state"] == 3
    saved = CooccurrenceCounts.load_json(out / "counts.json")
    _, counts = counts_file
    np.testing.assert_array_equal(saved.pair_counts.toarray(), counts.pair_counts.toarray())
    assert saved.n_images == counts.n_images == len(LABEL_SETS)


def test_embed_from_data_counts_the_training_split_that_train_holds_out(dataset_dir, tmp_path, capsys):
    from workbench.data.datasets import load_dataset
    from workbench.method.targets import counted_on

    assert main(["embed", "--data", str(dataset_dir), "--format", "list-csv", "--dim", "2", "--save-counts",
                 "--validation-fraction", "0.25", "--out", str(tmp_path / "emb")]) == 0
    assert "(the training split, validation fraction 0.25)" in capsys.readouterr().out
    dataset = load_dataset(dataset_dir, format="list-csv")
    train_set, validation_set = dataset.split(validation_fraction=0.25, random_state=0)  # what train --validation-fraction 0.25 holds out
    saved = CooccurrenceCounts.load_json(tmp_path / "emb" / "counts.json")
    assert saved.n_images == len(train_set) < len(dataset)
    expected = count_cooccurrence(train_set.labels, train_set.vocabulary)
    np.testing.assert_array_equal(saved.pair_counts.toarray(), expected.pair_counts.toarray())
    assert counted_on(LabelEmbedding.load(tmp_path / "emb"), train_set, validation_set) == "training split only"
    assert main(["embed", "--data", str(dataset_dir), "--format", "list-csv", "--dim", "2", "--validation-fraction", "0",
                 "--out", str(tmp_path / "all")]) == 0
    with pytest.raises(ValueError, match="include the validation split"):
        counted_on(LabelEmbedding.load(tmp_path / "all"), train_set, validation_set)


def test_neighbours_text_and_json(counts_file, tmp_path, capsys):
    path, counts = counts_file
    out = tmp_path / "emb"
    main(["embed", "--counts", str(path), "--dim", "4", "--out", str(out)])
    capsys.readouterr()
    expected = LabelEmbedding.load(out).nearest("car", top=3)
    assert main(["neighbours", str(out), "--label", "car", "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[1].split()[0] == expected[0][0]
    assert main(["neighbours", str(out), "--label", "car", "--top", "3", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert list(payload) == ["label", "neighbours"] and payload["label"] == "car"
    assert [list(item) for item in payload["neighbours"]] == [["label", "similarity"]] * 3
    assert [item["label"] for item in payload["neighbours"]] == [name for name, _ in expected]
    assert [item["similarity"] for item in payload["neighbours"]] == pytest.approx([value for _, value in expected], abs=1e-6)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["embed", "--dim", "2", "--out", "X"], "give exactly one of --data DATASET or --counts"),
        (["embed", "--counts", "COUNTS", "--data", "DATA", "--dim", "2", "--out", "X"], "give exactly one of"),
        (["embed", "--counts", "COUNTS", "--dim", "2", "--pmi", "clip", "--out", "X"], "needs a finite clip_value"),
        (["embed", "--counts", "COUNTS", "--dim", "0", "--out", "X"], "dim must be a positive integer"),
        (["embed", "--counts", "MISSING", "--dim", "2", "--out", "X"], "no such counts file"),
        (["neighbours", "EMB", "--label", "cart"], "Unknown label 'cart'.*Did you mean:.*'car'"),
        (["neighbours", "EMB", "--label", "car", "--top", "0"], "top must be a positive integer"),
        (["neighbours", "MISSING", "--label", "car"], "no such embedding directory"),
    ],
)
def test_user_errors_are_one_line_with_exit_status_2(counts_file, tmp_path, capsys, argv, message):
    path, counts = counts_file
    embedding_dir = embed_labels(counts, embedding_dim=2).save(tmp_path / "emb")
    replace = {"COUNTS": str(path), "DATA": str(tmp_path), "X": str(tmp_path / "out"), "EMB": str(embedding_dir),
               "MISSING": str(tmp_path / "missing")}
    assert main([replace.get(item, item) for item in argv]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert error.startswith(f"workbench {argv[0]}: error: ")
    assert re.search(message, error), error


def test_dimension_warning_goes_to_stderr(counts_file, tmp_path, capsys):
    path, _ = counts_file
    assert main(["embed", "--counts", str(path), "--dim", "50", "--out", str(tmp_path / "e")]) == 0
    captured = capsys.readouterr()
    assert "workbench embed: warning: Asked for embedding_dim=50" in captured.err
    assert LabelEmbedding.load(tmp_path / "e").embedding_dim <= 9


@pytest.mark.shared_data
def test_coco_counts_through_the_cli(shared_data, tmp_path, capsys):
    out = tmp_path / "coco"
    assert main(["embed", "--counts", str(shared_data / "cooccurrence" / "coco2014_train.json"), "--dim", "32", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["neighbours", str(out), "--label", "fork", "--top", "3", "--json"]) == 0
    names = [item["label"] for item in json.loads(capsys.readouterr().out)["neighbours"]]
    assert {"knife", "spoon"} <= set(names)
