"""The label explorer (jupyter-scatter) and its layout: PMI neighbours, linked views, images, colours, the cache, ``workbench map``.

The explorer is driven as the browser drives it: a lasso or a hover sets the widget's
``selection`` or ``hovering`` trait. tests/test_browser.py drives it in a real browser.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tests.test_widgets import clustered_embedding, counts_for
from workbench.apps import labelmap
from workbench.apps.explorer import ImagePoints, LabelExplorer
from workbench.apps.labelmap import label_coordinates, layout_key, read_coordinates_csv
from workbench.data.labels import Vocabulary
from workbench.method.embedding import LabelEmbedding


def reordered(embedding, order, *, dim=None, seed=5):
    """The same labels in another order (and, with ``dim``, other vectors)."""
    names = [embedding.vocabulary.names[i] for i in order]
    groups = [embedding.vocabulary.groups[i] for i in order]
    vectors = embedding.vectors[order] if dim is None else np.random.default_rng(seed).normal(size=(len(order), dim))
    return LabelEmbedding(vocabulary=Vocabulary(tuple(names), groups=tuple(groups)), vectors=vectors.astype(np.float32),
                          eigenvalues=np.ones(vectors.shape[1]), settings={"options": {"policy": "ppmi"}})


def test_pmi_neighbours_are_the_largest_pmi_among_pairs_seen_together():
    embedding, _ = clustered_embedding(num_labels=200)
    counts = counts_for(embedding.vocabulary, seed=3)
    rng = np.random.default_rng(2)
    dense = rng.normal(size=(200, 200))
    dense = (dense + dense.T) / 2
    dense[7, 11] = dense[11, 7] = np.inf  # never a neighbour: not finite
    explorer = LabelExplorer(embedding=embedding, counts=counts, pmi=dense, map_method="pca", top=5, cache=False)
    pairs = counts.pair_counts.toarray()
    for label in ("label-0007", "label-0100"):
        i = embedding.vocabulary.index(label)
        candidates = [j for j in range(200) if j != i and pairs[i, j] >= 1 and np.isfinite(dense[i, j])]
        expected = sorted(candidates, key=lambda j: (-dense[i, j], j))[:5]
        rows = explorer.pmi_neighbours(label)
        assert [row["label"] for row in rows] == [embedding.vocabulary[j] for j in expected]
        assert [row["pmi"] for row in rows] == [dense[i, j] for j in expected]
        unit = embedding.vectors / np.linalg.norm(embedding.vectors, axis=1, keepdims=True)
        assert [row["similarity"] for row in rows] == pytest.approx([float(unit[i] @ unit[j]) for j in expected], abs=1e-6)
        assert [row["cooccurrences"] for row in rows] == [pairs[i, j] for j in expected]
    # a sparse PMI gives the same lists; without counts every finite pair is a candidate
    sparse = LabelExplorer(embedding=embedding, counts=counts, pmi=sp.csr_matrix(np.where(pairs > 0, dense, 0)),
                           map_method="pca", top=5, cache=False)
    assert sparse.pmi_neighbours("label-0100") == explorer.pmi_neighbours("label-0100")
    free = LabelExplorer(embedding=embedding, pmi=dense, map_method="pca", top=3, cache=False)
    i = embedding.vocabulary.index("label-0100")
    expected = sorted((j for j in range(200) if j != i), key=lambda j: (-dense[i, j], j))[:3]
    assert [row["label"] for row in free.pmi_neighbours("label-0100")] == [embedding.vocabulary[j] for j in expected]
    often = LabelExplorer(embedding=embedding, counts=counts, pmi=dense, map_method="pca", top=50, min_together=5,
                          cache=False)
    assert all(row["cooccurrences"] >= 5 for row in often.pmi_neighbours("label-0100"))
    assert "seen together ≥ 5×" in often.table.value
    assert LabelExplorer(embedding=embedding, map_method="pca", cache=False).pmi_neighbours() == []


def test_linked_views_follow_each_other_by_label_name():
    embedding, _ = clustered_embedding(num_labels=120)
    order = np.random.default_rng(0).permutation(120)
    other = reordered(embedding, order, dim=5)
    explorer = LabelExplorer(embedding=embedding, compare=other, map_method="pca", top=4, cache=False)
    assert explorer.compare_map is not None and len(explorer.compare_map.points) == 120
    # the second map is the other embedding's own layout, its rows put in this vocabulary's order
    expected = label_coordinates(other.vectors, method="pca")[np.argsort(order)]
    assert np.allclose(explorer.compare_coordinates, expected, atol=1e-5)
    explorer.map.selection = np.array([2, 9], dtype=np.uint32)  # a lasso on the first map
    assert sorted(explorer.compare_map.selection.tolist()) == [2, 9]  # the same labels, by name
    assert explorer.selection == ["label-0002", "label-0009"]
    explorer.compare_map.selection = np.array([40], dtype=np.uint32)  # and back
    assert explorer.selection == ["label-0040"]
    explorer.compare_map.hovering = 17
    assert explorer.map.hovering == 17
    explorer.map.hovering = None
    assert explorer.compare_map.hovering == -1
    explorer.select("label-0033")  # a search zooms both maps
    assert np.array_equal(explorer.compare_map.zoom_to, explorer.map.zoom_to) and "label-0033" in explorer.selection
    captions = [box.children[0].value for box in explorer.children[2].children]
    assert "k = 8" in captions[0] and "k = 5, ppmi" in captions[1]
    with pytest.raises(ValueError, match="same labels"):
        LabelExplorer(embedding=embedding, compare=reordered(embedding, np.arange(100)), map_method="pca", cache=False)


def test_images_share_the_layout_hover_their_true_labels_and_can_be_hidden(tmp_path):
    embedding, cluster = clustered_embedding(num_labels=60, num_clusters=6)
    rng = np.random.default_rng(4)
    members = [np.flatnonzero(cluster == c)[:2] for c in range(6)]
    vectors = np.stack([embedding.vectors[m].sum(axis=0) + rng.normal(scale=0.1, size=8) for m in members])
    images = ImagePoints(vectors=vectors, names=[f"img{c}.jpg" for c in range(6)],
                         labels=[tuple(embedding.vocabulary[int(j)] for j in m) for m in members])
    explorer = LabelExplorer(embedding=embedding, images=images, map_method="pca", cache=False)
    joint = label_coordinates(np.vstack([embedding.vectors, vectors]), method="pca")
    assert np.allclose(explorer.coordinates, joint[:60], atol=1e-5) and np.allclose(explorer.image_coordinates, joint[60:], atol=1e-5)
    assert len(explorer.map.points) == 66 and "true labels" in explorer.map.tooltip_properties
    assert explorer.frame["true labels"].iloc[60] == "label-0000, label-0006"
    assert list(explorer.frame["group"].iloc[60:].astype(str)) == ["(image)"] * 6
    explorer.map.selection = np.array([0, 60, 61], dtype=np.uint32)
    assert "1 label and 2 images" in explorer.selection_status.value
    frame = explorer.selection_frame()
    assert list(frame.kind) == ["label", "image", "image"] and list(frame.label) == ["label-0000", "img0.jpg", "img1.jpg"]
    explorer.show_images.value = False
    assert list(explorer.map.filter) == list(range(60))
    explorer.show_images.value = True
    assert explorer.map.filter is None
    with pytest.raises(ValueError, match="k = 8"):
        LabelExplorer(embedding=embedding, images=ImagePoints(vectors=np.ones((2, 3)), names=["a", "b"], labels=[(), ()]),
                      map_method="pca", cache=False)
    with pytest.raises(ValueError, match="one point per label and image"):
        LabelExplorer(embedding=embedding, images=images, coordinates=np.zeros((60, 2)))


def test_colour_by_group_frequency_and_ap_and_size_by_frequency():
    embedding, _ = clustered_embedding(num_labels=40, num_clusters=4)
    counts = counts_for(embedding.vocabulary)
    ap = np.linspace(0, 1, 40)
    ap[3] = np.nan
    explorer = LabelExplorer(embedding=embedding, counts=counts, map_method="pca", cache=False,
                             per_label_ap={name: value for name, value in zip(embedding.vocabulary.names, ap)})
    assert [value for _, value in explorer.colour.options] == ["group", "frequency", "ap"]
    assert explorer.map.color_by == "valueA" or explorer.map.color_title == "group"
    explorer.colour.value = "frequency"
    assert explorer.map.color_title == "frequency"
    assert np.allclose(explorer.frame["frequency"], np.log10(counts.label_counts + 1))
    explorer.colour.value = "ap"
    assert explorer.map.color_title == "AP bin"
    bins = list(explorer.frame["AP bin"].astype(str))
    assert bins[0] == "AP 0–0.2" and bins[39] == "AP 0.8–1" and bins[3] == "no validation image"
    assert bins[20] == "AP 0.4–0.6"  # 20/39 = 0.51
    explorer.colour.value = "group"
    assert explorer.map.color_title == "group"
    explorer.size_by_frequency.value = True
    assert explorer.map.size_title == "frequency"
    explorer.size_by_frequency.value = False
    assert explorer.map.size_title is None and explorer.map.size == 4
    plain = LabelExplorer(embedding=embedding, map_method="pca", cache=False)
    assert [value for _, value in plain.colour.options] == ["group"] and plain.size_by_frequency.disabled


def fake_layout(calls):
    def layout(unit, **settings):
        calls.append(settings)
        return np.column_stack([unit[:, 0], unit[:, 1] + len(calls)]).astype(np.float32)
    return layout


def test_layouts_are_cached_by_vectors_and_settings(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(labelmap, "_umap_layout", fake_layout(calls))
    vectors = np.random.default_rng(0).normal(size=(30, 6)).astype(np.float32)
    first = label_coordinates(vectors, cache=tmp_path)
    assert len(calls) == 1 and calls[0] == {"random_state": 0, "deterministic": False, "n_neighbors": 15, "min_dist": 0.1}
    assert np.array_equal(label_coordinates(vectors, cache=tmp_path), first) and len(calls) == 1  # read back
    assert np.array_equal(label_coordinates(vectors * 2, cache=tmp_path), first) is False  # other vectors, other key
    label_coordinates(vectors, cache=tmp_path, deterministic=True)
    label_coordinates(vectors, cache=tmp_path, random_state=1)
    label_coordinates(vectors, cache=None)
    assert len(calls) == 5 and len(list(tmp_path.glob("*.npy"))) == 4
    settings = labelmap._settings("umap", random_state=0, deterministic=False, n_neighbors=15, min_dist=0.1)
    path = tmp_path / f"{layout_key(vectors, settings)}.npy"
    assert path.is_file()
    path.write_bytes(b"not an array")  # a damaged cache file is computed again
    again = label_coordinates(vectors, cache=tmp_path)
    assert len(calls) == 6 and np.load(path).shape == (30, 2) and again.shape == (30, 2)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert label_coordinates(vectors, cache=blocked).shape == (30, 2)  # a cache that cannot be written: still a map
    label_coordinates(vectors, method="pca", cache=tmp_path)
    assert len(calls) == 7 and len(list(tmp_path.glob("*.npy"))) == 4  # PCA is never cached
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert labelmap.default_cache_dir() == tmp_path / "xdg" / "pmi-workbench" / "labelmaps"
    label_coordinates(vectors, cache=True)
    assert len(list((tmp_path / "xdg" / "pmi-workbench" / "labelmaps").glob("*.npy"))) == 1


def test_nearest_neighbours_are_the_exact_cosine_ones_itself_first():
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(300, 12)).astype(np.float32)
    vectors[7] = vectors[3] * 2.0  # the same direction: a tie, kept in row order
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for block_bytes in (64 << 20, 4 * 300 * 7):  # one block, and blocks of 7 rows
        indices, distances = labelmap._nearest_neighbours(unit, 6, block_bytes=block_bytes)
        cosine = unit.astype(np.float64) @ unit.T.astype(np.float64)
        np.fill_diagonal(cosine, np.inf)
        expected = np.argsort(-cosine, axis=1, kind="stable")[:, :6]
        assert np.array_equal(indices[:, 0], np.arange(300)) and np.array_equal(indices, expected)
        chord = np.sqrt(np.clip(2 - 2 * np.take_along_axis(cosine, expected, axis=1)[:, 1:], 0, None))
        assert distances[:, 0].tolist() == [0.0] * 300
        assert np.allclose(distances[:, 1:], chord, atol=1e-3)  # float32 products: sqrt(2 - 2 cos) to 1e-3 near 0
    assert indices[3, 1] == 7 and indices[7, 1] == 3 and distances[3, 1] < 1e-3


@pytest.mark.slow
def test_umap_gets_the_exact_neighbours_and_starts_from_pca(monkeypatch):
    """What umap-learn receives: the unit rows, their exact nearest neighbours and their first two principal components."""
    captured = {}

    class FakeUMAP:
        def __init__(self, **settings):
            captured.update(settings)

        def fit_transform(self, points):
            captured["points"] = points
            return points[:, :2]

    umap = labelmap._import_umap()
    monkeypatch.setattr(umap, "UMAP", FakeUMAP)
    vectors = np.random.default_rng(1).normal(size=(300, 96)).astype(np.float32)
    label_coordinates(vectors, n_neighbors=7, random_state=3)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert np.allclose(captured["points"], unit, atol=1e-6)
    indices, distances, _ = captured["precomputed_knn"]
    expected_indices, expected_distances = labelmap._nearest_neighbours(unit, 7)
    assert np.array_equal(indices, expected_indices) and np.allclose(distances, expected_distances, atol=1e-6)
    assert np.allclose(captured["init"], label_coordinates(vectors, method="pca"), atol=1e-5)
    assert captured["n_jobs"] == -1 and captured["random_state"] is None and captured["n_neighbors"] == 7
    label_coordinates(vectors, deterministic=True, random_state=3)
    assert captured["n_jobs"] == 1 and captured["random_state"] == 3


def test_umap_import_leaves_tensorflow_out_and_keeps_compiled_code():
    import subprocess
    import sys

    code = ("import sys; from numba.core.caching import NullCache; from numba.core.dispatcher import Dispatcher; "
            "from workbench.apps.labelmap import _import_umap; umap = _import_umap(); "
            "jitted = [v for m in (umap.umap_, umap.layouts) for v in vars(m).values() if isinstance(v, Dispatcher)]; "
            "print('tensorflow' in sys.modules, 'umap.parametric_umap' in sys.modules, hasattr(umap, 'UMAP'), "
            "len(jitted) > 5, sum(isinstance(v._cache, NullCache) for v in jitted))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False", "True", "True", "0"]  # every jitted function cached on disk


@pytest.mark.slow
def test_parallel_umap_keeps_clusters_and_seeded_start():
    from sklearn.manifold import trustworthiness

    embedding, cluster = clustered_embedding(num_labels=600, num_clusters=6, dim=16)
    first = label_coordinates(embedding.vectors, random_state=3)
    vectors = embedding.vectors / np.linalg.norm(embedding.vectors, axis=1, keepdims=True)
    assert first.shape == (600, 2) and trustworthiness(vectors, first, n_neighbors=10) > 0.9
    distances = np.linalg.norm(first[:, None] - first[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    assert np.mean(cluster[distances.argmin(axis=1)] == cluster) > 0.9
    state = np.random.get_state()[1].copy()
    label_coordinates(embedding.vectors, random_state=4)
    assert np.array_equal(np.random.get_state()[1], state)  # NumPy's global generator is left as it was


def save_embedding(path, *, num_labels=80):
    embedding, _ = clustered_embedding(num_labels=num_labels, num_clusters=4)
    counts = np.arange(1, num_labels + 1, dtype=np.int64)
    LabelEmbedding(vocabulary=embedding.vocabulary, vectors=embedding.vectors, eigenvalues=np.ones(8), label_counts=counts,
                   settings={}).save(path)
    return embedding, counts


def test_workbench_map_writes_coordinates_and_picture(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from workbench.cli import main

    calls = []
    monkeypatch.setattr(labelmap, "_umap_layout", fake_layout(calls))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    embedding, counts = save_embedding(tmp_path / "emb")
    assert main(["map", str(tmp_path / "emb"), "--out", str(tmp_path / "map")]) == 0
    printed = capsys.readouterr().out
    assert "80 labels laid out (umap) in" in printed and "computed and cached" in printed
    frame = pd.read_csv(tmp_path / "map" / "coordinates.csv", keep_default_na=False)
    assert list(frame.columns) == ["label", "group", "count", "x", "y"]
    assert list(frame.label) == list(embedding.vocabulary.names) and list(frame["count"]) == list(counts)
    names, groups, points = read_coordinates_csv(tmp_path / "map" / "coordinates.csv")
    assert np.allclose(points, label_coordinates(embedding.vectors, cache=tmp_path / "xdg" / "pmi-workbench" / "labelmaps"))
    assert Image.open(tmp_path / "map" / "map.png").size[0] > 300
    assert main(["map", str(tmp_path / "emb"), "--out", str(tmp_path / "map")]) == 0
    assert "read from the cache" in capsys.readouterr().out and len(calls) == 1
    assert main(["map", str(tmp_path / "emb"), "--out", str(tmp_path / "map"), "--no-cache", "--deterministic", "--seed", "2"]) == 0
    assert calls[-1]["deterministic"] is True and calls[-1]["random_state"] == 2 and "(computed)" in capsys.readouterr().out
    assert main(["map", str(tmp_path / "emb"), "--out", str(tmp_path / "pca"), "--method", "pca"]) == 0
    assert len(calls) == 2 and "(pca)" in capsys.readouterr().out
    assert main(["map", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert "no such embedding directory" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["map", str(tmp_path / "emb"), "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_workbench_run_keeps_the_static_picture_where_no_kernel_runs():
    import nbformat

    from workbench.apps.explorer import STATIC_FALLBACK
    from workbench.notebook.pipeline import keep_static_pictures

    widget = {"application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2, "version_minor": 0}}
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("explorer", outputs=[
        nbformat.v4.new_output("display_data", data={**widget, "text/html": "<img>", "text/plain": "LabelExplorer"},
                               metadata={STATIC_FALLBACK: True}),
        nbformat.v4.new_output("display_data", data={**widget, "text/plain": "ClassifyApp"}),
    ])])
    assert keep_static_pictures(notebook) == 1
    first, second = notebook.cells[0].outputs
    assert set(first.data) == {"text/html", "text/plain"} and "application/vnd.jupyter.widget-view+json" in second.data
    nbformat.validate(notebook)
    assert json.loads(nbformat.writes(notebook))  # still a notebook


def test_explore_colours_by_a_runs_ap_and_shows_its_validation_images(tiny_run):
    import workbench as wb
    from tests.conftest import colour_dataset
    from workbench.evaluation.metrics import per_label_average_precision

    run = wb.load_run(tiny_run)
    data = colour_dataset(192)
    explorer = wb.explore(run.embedding, run=run, data=data, map_method="pca", max_images=10)
    trained = run.artefact
    _, validation = trained.splits(data)
    expected = per_label_average_precision(trained.label_scores(trained.images_of(validation)), validation.labels)
    order = [trained.vocabulary.index(name) for name in explorer.vocabulary.names]
    assert np.allclose(explorer.per_label_ap, expected[order], equal_nan=True)
    assert len(explorer.images.names) == 10 and explorer.images.names[0].startswith("validation image ")
    assert explorer.images.vectors.shape == (10, trained.embedding.embedding_dim)
    assert len(wb.explore(run.embedding, run=run, data=data, map_method="pca").images.names) == len(validation)
    assert [value for _, value in explorer.colour.options][-1] == "ap"
    with pytest.raises(ValueError, match="needs data="):
        wb.explore(run.embedding, run=run)
