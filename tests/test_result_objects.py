"""Helpers of the result objects the notebooks lean on: real counts, neighbours of several labels, an experiment's
cells, per-label AP and mistakes, and a workspace's decoding ceiling."""

import numpy as np
import pytest

pytest.importorskip("pandas")


def test_load_counts_reads_a_counts_file_and_defaults_to_the_coco_counts_in_the_package(tmp_path):
    import workbench as wb
    from workbench.method.cooccurrence import CooccurrenceCounts
    from workbench.results import Counts

    coco = wb.load_counts()
    assert isinstance(coco, Counts) and coco.num_labels == 80 and coco.n_images == 82081
    assert {"fork", "knife"} <= set(coco.vocabulary.names)
    data = wb.scenes(num_images=60, num_labels=8, image_size=16, random_state=1)
    path = wb.count(data).save_json(tmp_path / "counts.json")
    counts = wb.load_counts(path)
    assert counts.fingerprint() == wb.count(data).fingerprint()
    assert wb.embed(counts, dim=3).embedding_dim == 3  # counts go straight into the embedding
    with pytest.raises((ValueError, OSError)):
        wb.load_counts(tmp_path / "missing.json")
    assert isinstance(counts.artefact, CooccurrenceCounts)


def test_neighbours_of_several_labels_is_one_frame_with_the_query_first():
    import workbench as wb

    embedding = wb.embed(wb.load_counts(), dim=16)
    one = embedding.neighbours("fork", top=3)
    assert list(one.columns) == ["label", "similarity"] and len(one) == 3
    several = embedding.neighbours(["keyboard", "fork"], top=3)
    assert list(several.columns) == ["query", "label", "similarity"]
    assert list(several["query"]) == ["keyboard"] * 3 + ["fork"] * 3  # in the order asked
    forks = several[several["query"] == "fork"]
    assert list(forks.label) == list(one.label) and np.allclose(forks.similarity, one.similarity)
    assert (np.diff(forks.similarity.to_numpy()) <= 0).all()
    with pytest.raises(KeyError, match="Unknown label 'unicorn'"):
        embedding.neighbours(["fork", "unicorn"])


def _analysis(cell, head, ap, errors):
    return {"cell": cell, "head": head, "seeds": [0, 1], "labels": ["a", "b", "c"], "train_counts": [9, 4, 1],
            "validation_counts": [3, 1, 0], "per_label_ap": ap, "companion_share_top": 0.5 if head == "pmi" else 0.25,
            "companion_share_all": 0.4, "companion_share_chance": 0.1, "errors": errors}


def _experiment():
    from workbench.results import Experiment

    rows = [{"cell": cell, "head": head, "dim": dim, "seed": seed, "num_labels": 3}
            for cell, dim in (("dim-2", 2), ("dim-4", 4)) for head in ("pmi", "random") for seed in (0, 1)]
    errors = [{"image": 5, "path": "images/5.png", "true": ["a", "c"], "wrong": "b", "score": 0.9, "companion_of": "a"},
              {"image": 2, "path": "images/2.png", "true": ["b"], "wrong": "c", "score": 0.7, "companion_of": None}]
    per_label = [_analysis("dim-2", "pmi", [0.9, 0.5, None], errors), _analysis("dim-2", "random", [0.8, 0.25, None], [])]
    return Experiment({"rows": rows, "per_label": per_label, "paired": [], "histories": []}, "experiment")


def test_an_experiment_names_its_cells_by_setting():
    experiment = _experiment()
    assert experiment.cells() == ["dim-2", "dim-4"]
    assert experiment.cells(dim=4) == ["dim-4"]
    assert experiment.cells(dim=4, head="pmi") == ["dim-4"] and experiment.cells(dim=8) == []
    with pytest.raises(ValueError, match="Unknown setting"):
        experiment.cells(k=4)


def test_an_experiment_gives_per_label_ap_mistakes_and_companion_shares_as_frames():
    experiment = _experiment()
    labels = experiment.per_label("dim-2")
    assert list(labels.columns) == ["label", "train_count", "validation_count", "pmi", "random"]
    assert list(labels.label) == ["a", "b", "c"] and list(labels.train_count) == [9, 4, 1]
    assert labels.pmi.iloc[1] == 0.5 and np.isnan(labels.random.iloc[2])  # None (absent from validation) is NaN
    mistakes = experiment.mistakes("dim-2")
    assert list(mistakes.columns) == ["image", "path", "true", "wrong", "score", "companion_of"]
    assert list(mistakes.image) == [5, 2] and mistakes.companion_of.iloc[0] == "a" and mistakes.companion_of.iloc[1] is None
    assert experiment.mistakes("dim-2", head="random").empty
    shares = experiment.companion_shares("dim-2")
    assert list(shares.index) == ["pmi", "random"] and list(shares.columns) == ["most_confident", "every_image", "chance"]
    assert shares.loc["pmi", "most_confident"] == 0.5 and shares.loc["random", "chance"] == 0.1
    with pytest.raises(ValueError, match="No per-label analysis of cell 'dim-4'"):
        experiment.per_label("dim-4")
    with pytest.raises(ValueError, match="no analysis of head 'sigmoid'"):
        experiment.mistakes("dim-2", head="sigmoid")


def test_a_workspace_ceiling_uses_its_data_embedding_options_and_split(tmp_path):
    import workbench as wb

    data = {"num_images": 120, "num_labels": 10, "image_size": 16, "max_labels": 3, "random_state": 2}
    ws = wb.workspace(tmp_path, profile="ci", data=data, embedding=wb.EmbeddingOptions(embedding_dim=4, policy="ppmi"),
                      verbose=False)
    ceiling = ws.ceiling(dims=(2, 4), embeddings=("pmi", "random"))
    direct = wb.ceiling(ws.scenes(), dims=(2, 4), embeddings=("pmi", "random"), options=ws.embedding_options,
                        validation_fraction=ws.validation_fraction, split_random_state=ws.seed)
    frame = ceiling.to_frame()
    assert list(frame.columns[:2]) == ["embedding", "dim"] and len(frame) == 4
    assert frame.drop(columns="seconds", errors="ignore").equals(direct.to_frame().drop(columns="seconds", errors="ignore"))
    config = ceiling.report["config"]
    assert config["embedding_options"]["policy"] == "ppmi" and config["split_random_state"] == ws.seed == 2
