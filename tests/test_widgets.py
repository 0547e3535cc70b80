"""ClassifyApp and LabelExplorer driven as ipywidgets 8 would drive them; 2-D label maps."""

from __future__ import annotations

import datetime
import html
import io
import re

import numpy as np
import pytest
import scipy.sparse as sp
from PIL import Image

from workbench.apps.classify import ClassificationResult, Classifier
from workbench.method.cooccurrence import CooccurrenceCounts
from workbench.apps.labelmap import label_coordinates, read_coordinates_csv, write_coordinates_csv
from workbench.data.labels import Vocabulary
from workbench.method.embedding import LabelEmbedding
from workbench.apps.widgets import ClassifyApp, LabelExplorer, similarity_bars_html

PALETTE = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "white": (245, 245, 245)}


class PaletteRun:
    """Stand-in run: label score = 1 − distance of the image's mean colour to the label's colour / 441."""

    vocabulary = Vocabulary(tuple(PALETTE))
    image_size = 8
    embedding = None

    def label_scores(self, images):
        means = np.asarray(images).reshape(len(images), -1, 3).mean(axis=1)
        palette = np.array(list(PALETTE.values()), dtype=np.float64)
        return (1 - np.linalg.norm(means[:, None] - palette[None], axis=2) / 441.0).astype(np.float32)


def png(colour, size=20) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def upload_entry(name: str, content: bytes, *, size: int | None = None) -> dict:
    """One entry of ``FileUpload.value`` as ipywidgets 8 sets it."""
    return {
        "name": name,
        "type": "image/png",
        "size": len(content) if size is None else size,
        "content": memoryview(content),
        "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    }


def text_of(widget) -> str:
    """All HTML text below a widget (values of HTML children), tags stripped and unescaped."""
    parts = []

    def walk(node):
        if hasattr(node, "children"):
            for child in node.children:
                walk(child)
        elif hasattr(node, "value") and isinstance(node.value, str):
            parts.append(node.value)

    walk(widget)
    return html.unescape(re.sub(r"<[^>]+>", " ", " ".join(parts)))


@pytest.fixture()
def app_and_calls():
    classifier = Classifier(PaletteRun())
    calls = []

    def classify(content, name, **setting):
        calls.append((name, setting))
        if name == "crash.png":
            raise RuntimeError("model exploded")
        return classifier.classify_bytes(content, name, **setting)

    stored = []
    app = ClassifyApp(classify=classify, store=lambda results: stored.extend(results) or len(results), top=2, max_top=4)
    return app, calls, stored


def test_upload_shows_ranked_labels_and_bad_files_per_file(app_and_calls):
    app, calls, _ = app_and_calls
    assert app.store_button.disabled and app.clear_button.disabled
    truncated = png((30, 180, 40), size=64)[:60]
    bomb = png((0, 0, 0))  # fine bytes, but declared "size" above the limit below
    app.max_upload_bytes = 10_000
    app.upload.value = (
        upload_entry("red.png", png((220, 30, 30))),
        upload_entry("notes.txt", b"hello, I am text"),
        upload_entry("half.png", truncated),
        upload_entry("huge.png", bomb, size=50_000),
        upload_entry("crash.png", png((1, 2, 3))),
        upload_entry("empty.png", b""),
    )
    assert app.upload.value == ()  # reset, so the same file can be uploaded again
    assert [r.image for r in app.results] == ["red.png"]
    assert app.results[0].labels[0][0] == "red" and len(app.results[0].labels) == 2
    errors = dict(app.errors)
    assert set(errors) == {"notes.txt", "half.png", "huge.png", "crash.png", "empty.png"}
    assert "not an image" in errors["notes.txt"]
    assert "truncated" in errors["half.png"] or "corrupt" in errors["half.png"]
    assert "limit" in errors["huge.png"]
    assert "model exploded" in errors["crash.png"]
    assert all("\n" not in message for message in errors.values())
    assert [name for name, _ in calls] == ["red.png", "notes.txt", "half.png", "crash.png"]  # huge/empty never reach it
    assert calls[0][1] == {"top": 2}
    rows = app.results_box.children
    assert len(rows) == 6
    assert sum("workbench-result" in row._dom_classes for row in rows) == 1
    assert sum("workbench-upload-error" in row._dom_classes for row in rows) == 5
    shown = text_of(app)
    assert "red" in shown and "model exploded" in shown and "1 of 6" in shown
    preview = Image.open(io.BytesIO(bytes(rows[0].children[0].value)))
    assert preview.format == "PNG" and preview.size == (20, 20)  # a thumbnail of the upload itself
    # the app carries on: another upload works
    app.upload.value = (upload_entry("blue.png", png((30, 60, 220))),)
    assert [r.image for r in app.results] == ["red.png", "blue.png"]
    assert app.results[1].labels[0][0] == "blue"
    assert len(app.results_box.children) == 7


def test_decoder_toggle_and_calibrated_threshold_rerank_every_image():
    chosen, calls, calibrated = [], [], {"value": 0.8}

    def classify(content, name, **setting):
        calls.append((chosen[-1] if chosen else "cosine", setting))
        return ClassificationResult(image=name, labels=(("red", 0.9),), setting=str(setting))

    def auto_threshold():
        if calibrated["value"] is None:
            raise ValueError("runs/x is not calibrated; run 'workbench calibrate runs/x --data DATASET' first.")
        return calibrated["value"]

    app = ClassifyApp(classify=classify, decoders=("cosine", "greedy", "nnls"), set_decoder=chosen.append,
                      auto_threshold=auto_threshold)
    assert app.decoder.layout.display is None and app.auto_button.layout.display is None
    app.upload.value = (upload_entry("a.png", png((220, 30, 30))),)
    app.decoder.value = "nnls"
    assert chosen == ["nnls"] and calls[-1] == ("nnls", {"top": 5})
    assert "nnls decoder" in text_of(app)
    app.auto_button.click()
    assert app.mode.value == "threshold" and app.threshold_slider.value == pytest.approx(0.8)
    assert calls[-1] == ("nnls", {"threshold": 0.8})
    calibrated["value"] = None
    app.auto_button.click()  # not calibrated: one message, the app carries on
    assert "is not calibrated" in app.status.value and len(app.results) == 1
    plain = ClassifyApp(classify=classify)
    assert plain.decoder.layout.display == "none" and plain.auto_button.layout.display == "none"
    with pytest.raises(ValueError, match="decoders need set_decoder"):
        ClassifyApp(classify=classify, decoders=("cosine",))


def test_threshold_mode_reranks_every_image(app_and_calls):
    app, calls, _ = app_and_calls
    app.upload.value = (upload_entry("white.png", png((238, 238, 238))), upload_entry("bad.png", b"xx"))
    assert app.threshold_slider.layout.display == "none"
    app.mode.value = "threshold"
    assert app.top_slider.layout.display == "none" and app.threshold_slider.layout.display is None
    assert calls[-1] == ("white.png", {"threshold": 0.5})
    labels = app.results[0].labels
    assert labels and all(value >= 0.5 for _, value in labels)
    app.threshold_slider.value = 0.95  # white scores 1 - 7·√3/441 ≈ 0.973
    assert [name for name, _ in app.results[0].labels] == ["white"]
    app.threshold_slider.value = 0.99
    assert app.results[0].labels == ()
    assert "No label reaches the threshold" in text_of(app)
    app.mode.value = "top"
    app.top_slider.value = 4
    assert len(app.results[0].labels) == 4
    assert len(app.errors) == 1  # the bad upload stays reported, it is not re-run
    assert sum(1 for name, _ in calls if name == "bad.png") == 1


def test_store_button_stores_each_result_once(app_and_calls):
    app, _, stored = app_and_calls
    app.upload.value = (upload_entry("red.png", png((220, 30, 30))), upload_entry("bad.png", b"xx"))
    assert not app.store_button.disabled
    app.store_button.click()
    assert [r.image for r in stored] == ["red.png"] and app.store_button.disabled
    assert "Stored 1" in app.status.value
    app.store_button.click()
    assert len(stored) == 1
    app.upload.value = (upload_entry("green.png", png((30, 180, 40))),)
    app.store_button.click()
    assert [r.image for r in stored] == ["red.png", "green.png"]
    app.clear_button.click()
    assert app.results == [] and app.results_box.children == () and app.clear_button.disabled


def test_preview_falls_back_to_the_model_input():
    def broken_thumbnail(content):
        raise RuntimeError("no thumbnails today")

    app = ClassifyApp(classify=Classifier(PaletteRun()).classify_bytes, thumbnail=broken_thumbnail)
    app.upload.value = (upload_entry("wide.png", png((30, 60, 220), size=40)),)
    preview = Image.open(io.BytesIO(bytes(app.results_box.children[0].children[0].value)))
    assert preview.size == (8, 8)  # the run's 8×8 input
    assert app.errors == []


def test_store_failure_is_reported_and_retried():
    attempts = []

    def failing_store(results):
        attempts.append(len(results))
        if len(attempts) == 1:
            raise OSError("disk full")
        return len(results)

    app = ClassifyApp(classify=Classifier(PaletteRun()).classify_bytes, store=failing_store)
    app.upload.value = (upload_entry("red.png", png((220, 30, 30))),)
    app.store_button.click()
    assert "disk full" in app.status.value and not app.store_button.disabled
    app.store_button.click()
    assert attempts == [1, 1] and app.store_button.disabled


def test_names_are_escaped_and_results_without_preview_render():
    def classify(content, name, **setting):
        return ClassificationResult(image=name, sha256="0" * 64, labels=(("<b>bold</b>", 0.5), ("neg", -0.25)))

    app = ClassifyApp(classify=classify)
    assert app.store_button.layout.display == "none"
    app.upload.value = (upload_entry('<img src=x onerror="alert(1)">.png', b"anything"),)
    markup = app.results_box.children[0].children[1].value
    assert "<img src=x" not in markup and "&lt;img src=x" in markup
    assert "<b>bold</b>" not in markup and "&lt;b&gt;bold&lt;/b&gt;" in markup
    assert "-0.250" in markup
    assert "object_fit" not in repr(app.results_box.children[0].children[0].layout)  # placeholder, not an Image


def test_similarity_bars_html_lengths():
    markup = similarity_bars_html([("a", 0.75), ("b", 1.2), ("c", -0.5)])
    widths = re.findall(r'workbench-bar" style="width:([0-9.]+)%', markup)
    assert widths == ["75.0", "100.0", "0.0"]
    assert markup.count("workbench-label-row") == 3


def test_app_refuses_bad_settings():
    with pytest.raises(ValueError, match="callable"):
        ClassifyApp(classify=None)
    with pytest.raises(ValueError, match="top"):
        ClassifyApp(classify=lambda *a, **k: None, top=30, max_top=20)
    with pytest.raises(ValueError, match="threshold"):
        ClassifyApp(classify=lambda *a, **k: None, threshold=2.0)


# ---------------------------------------------------------------------------------
# label explorer
# ---------------------------------------------------------------------------------
def clustered_embedding(num_labels: int = 1200, dim: int = 8, num_clusters: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_clusters, dim)) * 3
    cluster = np.arange(num_labels) % num_clusters
    vectors = (centres[cluster] + rng.normal(size=(num_labels, dim))).astype(np.float32)
    vocabulary = Vocabulary(tuple(f"label-{i:04d}" for i in range(num_labels)), groups=tuple(f"g{c}" for c in cluster))
    return LabelEmbedding(vocabulary=vocabulary, vectors=vectors, eigenvalues=np.ones(dim), settings={}), cluster


def counts_for(vocabulary, seed=0):
    rng = np.random.default_rng(seed)
    num_labels = len(vocabulary)
    upper = sp.random(num_labels, num_labels, density=0.01, random_state=seed, data_rvs=lambda n: rng.integers(1, 9, n))
    upper = sp.triu(upper, k=1)
    pairs = (upper + upper.T).tocsr().astype(np.int64)
    pairs.eliminate_zeros()
    label_counts = np.asarray(pairs.sum(axis=1)).ravel().astype(np.int64) + 10
    return CooccurrenceCounts(n_images=10_000, vocabulary=vocabulary, label_counts=label_counts, pair_counts=pairs)


def test_label_explorer_neighbours_pmi_counts_and_map(tmp_path):
    import pandas as pd

    from workbench.apps.explorer import STATIC_FALLBACK

    embedding, _ = clustered_embedding()
    counts = counts_for(embedding.vocabulary)
    num_labels = len(embedding.vocabulary)
    pmi = np.random.default_rng(1).normal(size=(num_labels, num_labels))
    pmi[0, 5] = -np.inf
    explorer = LabelExplorer(embedding=embedding, counts=counts, pmi=pmi, map_method="pca", top=6)
    assert explorer.label == "label-0000"
    rows = explorer.neighbours()
    assert [(r["label"], r["similarity"]) for r in rows] == [
        (name, pytest.approx(value)) for name, value in embedding.nearest("label-0000", top=6)
    ]
    for row in rows:
        other = embedding.vocabulary.index(row["label"])
        assert row["pmi"] == pmi[0, other]
        assert row["cooccurrences"] == counts.pair_counts[0, other]
        assert row["label_count"] == counts.label_counts[other]
    # the WebGL map holds every label (no sampling), hover shows name, group and count
    assert len(explorer.map.points) == num_labels and explorer.map.tooltip_enable
    assert set(explorer.map.tooltip_properties) >= {"label", "group", "count"}
    assert list(explorer.frame["label"]) == list(embedding.vocabulary.names)
    assert np.array_equal(explorer.frame["count"], counts.label_counts)
    assert explorer.selection == []  # nothing selected before a search
    explorer.select("label-0000")  # the search box holds it already: searching it still selects it
    assert explorer.selection[0] == "label-0000" and len(explorer.selection) > 6
    explorer.chooser.value = "label-0042"  # as typing or picking in the search box does
    assert explorer.label == "label-0042"
    neighbours = [r["label"] for r in explorer.neighbours()]
    pmi_neighbours = [r["label"] for r in explorer.pmi_neighbours()]
    table = explorer.table.value
    assert "label-0042" in table and all(name in table for name in neighbours + pmi_neighbours)
    assert table.count("<tr>") == 1 + 2 * (1 + 6)  # the two tables side by side, a header and 6 rows each
    # the search selects the label and its neighbours on the map and zooms there
    marked = sorted({"label-0042", *neighbours, *pmi_neighbours})
    assert explorer.selection == marked
    assert sorted(explorer.map.zoom_to) == sorted(embedding.vocabulary.indices(marked))
    assert "label-0042 and its neighbours" in explorer.selection_status.value
    frame = explorer.selection_frame()
    assert list(frame.columns) == ["label", "group", "count", "x", "y"] and list(frame.label) == marked
    positions = embedding.vocabulary.indices(marked)
    assert np.allclose(frame[["x", "y"]], explorer.coordinates[positions])
    assert list(frame["count"]) == list(counts.label_counts[positions])
    # the static picture for places without a kernel: one image, one hover area per label, neighbours first
    markup = explorer.static_html()
    assert markup.count("<img ") == 1 and markup.count("<area ") == num_labels
    titles = re.findall(r'title="([^"]+)"', markup)
    assert titles[:7] == [f"{name} (g{int(name[-4:]) % 12})" for name in neighbours] + ["label-0042 (g6)"]
    data, metadata = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data and "<img " in data["text/html"]
    assert metadata == {STATIC_FALLBACK: True}
    # unknown names leave a message and keep the view
    explorer.chooser.value = "label-99999"
    assert explorer.label == "label-0042" and "Unknown label" in explorer.status.value
    explorer.top_slider.value = 3
    assert explorer.table.value.count("<tr>") == 1 + 2 * (1 + 3)
    # a lasso in the browser sets the widget's selection: read back as names, a frame and a CSV
    explorer.map.selection = np.array([7, 3, 5], dtype=np.uint32)
    assert explorer.selection == ["label-0003", "label-0005", "label-0007"]
    assert "3 labels" in explorer.selection_status.value and not explorer.selection_button.disabled
    explorer.selection_path.value = str(tmp_path / "picked.csv")
    explorer.selection_button.click()
    picked = pd.read_csv(tmp_path / "picked.csv", keep_default_na=False)
    assert list(picked.label) == explorer.selection and list(picked.group) == ["g3", "g5", "g7"]
    assert np.allclose(picked[["x", "y"]], explorer.coordinates[[3, 5, 7]])
    assert "Wrote 3 selected points" in explorer.status.value
    # export of the whole map
    explorer.export_path.value = str(tmp_path / "map.csv")
    explorer.export_button.click()
    names, groups, points = read_coordinates_csv(tmp_path / "map.csv")
    assert names == list(embedding.vocabulary.names) and groups[:2] == ["g0", "g1"]
    assert np.allclose(points, explorer.coordinates)
    assert list(pd.read_csv(tmp_path / "map.csv")["count"]) == list(counts.label_counts)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.csv", "picked.csv"]  # no temporary file left
    explorer.export_path.value = str(tmp_path / "missing-dir-is-a-file.csv" / "x.csv")
    (tmp_path / "missing-dir-is-a-file.csv").write_text("")
    explorer.export_button.click()
    assert "Export failed" in explorer.status.value


def test_label_explorer_checks_its_inputs():
    embedding, _ = clustered_embedding(num_labels=20)
    with pytest.raises(ValueError, match="coordinates"):
        LabelExplorer(embedding=embedding, coordinates=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="pmi"):
        LabelExplorer(embedding=embedding, pmi=np.zeros((3, 3)), map_method="pca")
    other = Vocabulary(tuple(reversed(embedding.vocabulary.names)))
    with pytest.raises(ValueError, match="different labels"):
        LabelExplorer(embedding=embedding, counts=counts_for(other), map_method="pca")
    with pytest.raises(KeyError, match="Unknown label"):
        LabelExplorer(embedding=embedding, label="nope", map_method="pca")


def test_pca_coordinates_match_scikit_learn():
    from sklearn.decomposition import PCA

    embedding, _ = clustered_embedding(num_labels=300)
    vectors = embedding.vectors.astype(np.float64)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = PCA(n_components=2).fit_transform(unit)
    got = label_coordinates(embedding.vectors, method="pca")
    assert got.shape == (300, 2) and got.dtype == np.float32
    for axis in range(2):
        sign = np.sign(np.dot(got[:, axis], expected[:, axis]))
        assert np.allclose(got[:, axis], sign * expected[:, axis], atol=1e-5)
    assert np.allclose(got, label_coordinates(embedding.vectors * 3.0, method="pca"), atol=1e-6)  # cosine geometry


def test_coordinates_csv_round_trip_and_errors(tmp_path):
    vocabulary = Vocabulary(("a, with comma", 'b "quoted"', "c"), groups=("x", "y", ""))
    points = np.array([[0.1, -2.5], [1e-9, 3.0], [7.0, 1 / 3]])
    write_coordinates_csv(tmp_path / "map.csv", vocabulary=vocabulary, coordinates=points)
    names, groups, read = read_coordinates_csv(tmp_path / "map.csv")
    assert names == list(vocabulary.names) and groups == ["x", "y", ""]
    assert np.array_equal(read, points)
    with pytest.raises(ValueError, match="one row per label"):
        write_coordinates_csv(tmp_path / "bad.csv", vocabulary=vocabulary, coordinates=points[:2])
    assert not (tmp_path / "bad.csv").exists()
    (tmp_path / "wrong.csv").write_text("name,x,y\na,1,2\n")
    with pytest.raises(ValueError, match="header"):
        read_coordinates_csv(tmp_path / "wrong.csv")
    with pytest.raises(ValueError, match="pca"):
        label_coordinates(np.eye(3), method="umap")
    with pytest.raises(ValueError, match="Unknown map method"):
        label_coordinates(np.eye(3), method="tsne")


@pytest.mark.slow
def test_umap_map_keeps_clusters_and_is_seeded():
    from sklearn.manifold import trustworthiness

    embedding, cluster = clustered_embedding(num_labels=240, num_clusters=6)
    first = label_coordinates(embedding.vectors, method="umap", random_state=3, deterministic=True)
    again = label_coordinates(embedding.vectors, method="umap", random_state=3, deterministic=True)
    assert first.shape == (240, 2) and np.allclose(first, again)
    vectors = embedding.vectors / np.linalg.norm(embedding.vectors, axis=1, keepdims=True)
    assert trustworthiness(vectors, first, n_neighbors=10) > 0.9
    # each label's nearest map neighbour is mostly in its own cluster
    distances = np.linalg.norm(first[:, None] - first[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    assert np.mean(cluster[distances.argmin(axis=1)] == cluster) > 0.9
