"""Plot functions of the embedding and classify sections: they draw what they are given and return the axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from workbench.apps.plot import (  # noqa: E402
    clustered_order,
    figure_png,
    plot_image_grid,
    plot_label_map,
    plot_pmi_heatmap,
    plot_similarity_bars,
    plot_spectrum,
    plot_threshold_sweep,
    save_figure,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_spectrum_one_bar_per_eigenvalue_coloured_by_sign(tmp_path):
    values = np.array([5.0, -3.0, 2.0, -0.5])
    ax = plot_spectrum(values)
    bars = ax.patches
    assert len(bars) == 4
    assert [bar.get_height() for bar in bars] == values.tolist()
    colours = [matplotlib.colors.to_hex(bar.get_facecolor()) for bar in bars]
    assert colours[0] == colours[2] != colours[1] == colours[3]
    path = save_figure(ax, tmp_path / "spectrum.png")
    assert path.read_bytes().startswith(b"\x89PNG") and [p.name for p in tmp_path.iterdir()] == ["spectrum.png"]
    with pytest.raises(ValueError):
        plot_spectrum([np.nan])


def test_given_axes_are_used_and_returned():
    figure, axes = plt.subplots(1, 2)
    assert plot_spectrum([1.0, 0.5], ax=axes[1]) is axes[1]
    assert plot_similarity_bars(["a"], [0.3], ax=axes[0]) is axes[0]
    assert len(figure.axes) == 2


def test_clustered_order_groups_blocks():
    rng = np.random.default_rng(0)
    block = np.kron(np.eye(3), np.ones((4, 4))) * 5 + rng.normal(scale=0.1, size=(12, 12))
    shuffle = rng.permutation(12)
    order = clustered_order(block[np.ix_(shuffle, shuffle)])
    assert sorted(order.tolist()) == list(range(12))
    blocks = (shuffle[order] // 4).tolist()
    # each block's 4 members are contiguous in the order
    assert all(len(set(blocks[i : i + 4])) == 1 for i in range(0, 12, 4))
    from scipy.cluster.hierarchy import leaves_list, linkage

    assert order.tolist() == leaves_list(linkage(block[np.ix_(shuffle, shuffle)], "average", optimal_ordering=True)).tolist()


def test_pmi_heatmap_orders_labels_and_greys_undefined_pairs(tmp_path):
    rng = np.random.default_rng(2)
    values = rng.normal(size=(6, 6))
    values = values + values.T
    values[0, 3] = values[3, 0] = -np.inf
    labels = [f"l{i}" for i in range(6)]
    ax = plot_pmi_heatmap(values, labels=labels)
    image = ax.images[0].get_array()
    order = ax.label_order
    assert sorted(order.tolist()) == list(range(6))
    assert [tick.get_text() for tick in ax.get_xticklabels()] == [labels[i] for i in order]
    assert image.mask.sum() == 2  # the two undefined entries
    finite = np.isfinite(values[np.ix_(order, order)])
    assert np.allclose(image.data[finite], values[np.ix_(order, order)][finite])
    low, high = ax.images[0].get_clim()
    assert low == -high == -np.abs(values[np.isfinite(values)]).max()
    unordered = plot_pmi_heatmap(sp.csr_matrix(np.eye(70)), order=None)
    assert unordered.get_xticklabels() == [] or len(unordered.get_xticks()) == 0
    with pytest.raises(ValueError, match="square"):
        plot_pmi_heatmap(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="one name per row"):
        plot_pmi_heatmap(values, labels=labels[:2])
    save_figure(ax, tmp_path / "heatmap.svg")
    assert (tmp_path / "heatmap.svg").read_text().lstrip().startswith("<?xml")


def test_label_map_highlights_and_names_neighbours():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(1500, 2))
    labels = [f"label {i}" for i in range(1500)]
    groups = [f"g{i % 30}" for i in range(1500)]
    ax = plot_label_map(points, labels=labels, groups=groups, chosen=7, highlight=[1, 2, 3])
    assert len(ax.collections) == 3  # all labels, neighbours, chosen
    assert ax.collections[0].get_offsets().shape == (1500, 2)
    assert [text.get_text() for text in ax.texts] == ["label 1", "label 2", "label 3", "label 7"]
    assert np.allclose(ax.texts[-1].xy, points[7])
    plain = plot_label_map(points[:10])
    assert len(plain.collections) == 1 and len(plain.texts) == 0
    with pytest.raises(ValueError, match="labels="):
        plot_label_map(points, chosen=1)
    with pytest.raises(ValueError, match="indices"):
        plot_label_map(points, labels=labels, highlight=[5000])


def test_similarity_bars_one_bar_and_value_per_label():
    ax = plot_similarity_bars(["dog", "cat", "car"], [0.9, 0.4, -0.2], title="photo.jpg")
    assert [bar.get_width() for bar in ax.patches] == pytest.approx([0.9, 0.4, -0.2])
    assert [tick.get_text() for tick in ax.get_yticklabels()] == ["dog", "cat", "car"]
    assert [text.get_text() for text in ax.texts] == ["0.900", "0.400", "-0.200"]
    # best label on top
    assert ax.patches[0].get_y() > ax.patches[1].get_y() > ax.patches[2].get_y()
    assert ax.get_title() == "photo.jpg"
    with pytest.raises(ValueError, match="one similarity per label"):
        plot_similarity_bars(["a", "b"], [0.1])


def test_image_grid_tiles_images_with_captions():
    images = np.stack([np.full((8, 8, 3), value, dtype=np.uint8) for value in (0, 80, 160, 240, 255)])
    ax = plot_image_grid(images, titles=["a\nb", "c", "d", "e", "f"], columns=3)
    assert len(ax.images) == 5 and [text.get_text() for text in ax.texts] == ["a\nb", "c", "d", "e", "f"]
    extents = [image.get_extent() for image in ax.images]
    assert extents[3][0] == pytest.approx(0.05) and extents[3][3] > extents[0][3]  # 4th image starts row 2
    png = figure_png(ax)
    assert png.startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="one title per image"):
        plot_image_grid(images, titles=["a"])
    with pytest.raises(ValueError, match="at least one"):
        plot_image_grid([])


def test_label_map_legend_names_every_group():
    import numpy as np

    from workbench.apps.plot import plot_label_map

    coordinates = np.random.default_rng(0).normal(size=(6, 2))
    groups = ["Food & Drink", "Animals & Nature", "Food & Drink", "Objects", "Objects", "Objects"]
    ax = plot_label_map(coordinates, labels=list("abcdef"), groups=groups, chosen=0, highlight=[1, 2])
    legend_names = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend_names == ["Food & Drink", "Animals & Nature", "Objects"]
    assert plot_label_map(coordinates, groups=groups, legend=False).get_legend() is None


def test_threshold_sweep_curves_and_the_chosen_threshold():
    from sklearn.metrics import f1_score

    from workbench.evaluation.calibration import best_threshold, threshold_sweep

    rng = np.random.default_rng(2)
    truth = rng.random((50, 6)) < 0.3
    scores = truth * 0.5 + rng.random((50, 6)) * 0.7
    sweep = threshold_sweep(scores, truth, num_thresholds=11)
    assert len(sweep["thresholds"]) == 11
    for threshold, f1 in zip(sweep["thresholds"], sweep["f1"]):
        assert f1 == pytest.approx(f1_score(truth.ravel(), scores.ravel() >= threshold))
    chosen, best = best_threshold(scores, truth)
    assert best >= np.nanmax(sweep["f1"]) - 1e-12, "the exact search is at least as good as any grid point"
    ax = plot_threshold_sweep(sweep, chosen=chosen)
    assert [line.get_label() for line in ax.get_lines()][:3] == ["precision", "recall", "F1"]
    assert any(f"{chosen:.2f}" in text.get_text() for text in ax.get_legend().get_texts())


def _experiment_results():
    """A results.json-shaped dict: two k values for pmi and random, identity and sigmoid once, two seeds."""
    rows, histories, per_label = [], [], []
    for head, base in (("pmi", 0.5), ("random", 0.4), ("identity", 0.45), ("sigmoid", 0.3)):
        cell = "no-embedding" if head in ("identity", "sigmoid") else None
        for dim in ((4, 8) if cell is None else (None,)):
            name = cell or f"dim-{dim}"
            for seed in (0, 1):
                value = base + 0.01 * seed + (0.02 if dim == 8 else 0)
                rows.append({"cell": name, "head": head, "dim": dim if dim else 10, "num_labels": 10, "seed": seed,
                             "map_at_100": value, "map_at_100_low": value - 0.05, "map_at_100_high": value + 0.05,
                             "macro_ap": value / 2, "ceiling_map_at_100": 0.9 if dim else None})
                histories.append({"cell": name, "head": head, "seed": seed,
                                  "history": [{"epoch": e, "map_at_100": value * e / 3, "seconds": 1.5} for e in (1, 2, 3)]})
            per_label.append({"cell": name, "head": head, "train_counts": [1, 3, 9, 27, 81, 0],
                              "per_label_ap": [0.1, 0.2, 0.4, None, 0.9, None]})
    for row in rows:
        if row["head"] == "sigmoid":
            row["dim"] = None
    return {"rows": rows, "histories": histories, "per_label": per_label}


def test_plot_experiment_draws_a_line_per_embedding_head_and_a_level_for_the_others():
    from workbench.apps.plot import plot_experiment

    ax = plot_experiment(_experiment_results())
    labels = [line.get_label() for line in ax.get_lines()]
    assert "pmi (mean of 2 seeds)" in labels and "random ceiling" in labels
    pmi = next(line for line in ax.get_lines() if line.get_label() == "pmi (mean of 2 seeds)")
    assert list(pmi.get_xdata()) == [4, 8] and list(pmi.get_ydata()) == pytest.approx([0.505, 0.525])
    identity = next(line for line in ax.get_lines() if line.get_label().startswith("identity"))
    assert identity.get_ydata()[0] == pytest.approx(0.455)


def test_plot_experiment_curves_against_epochs_and_seconds():
    from workbench.apps.plot import plot_experiment_curves

    results = _experiment_results()
    ax = plot_experiment_curves(results, cells=["dim-4", "no-embedding"])
    thick = [line for line in ax.get_lines() if line.get_linewidth() == 2]
    assert len(thick) == 4 and len(ax.get_lines()) == 4 * 3  # two seeds and the mean per head
    ax = plot_experiment_curves(results, cells=["dim-4"], x="seconds")
    assert list(ax.get_lines()[0].get_xdata()) == pytest.approx([1.5, 3.0, 4.5])
    with pytest.raises(ValueError, match="x must be"):
        plot_experiment_curves(results, cells=["dim-4"], x="minutes")


def test_plot_label_ap_by_frequency_leaves_out_absent_labels():
    from workbench.apps.plot import plot_label_ap_by_frequency

    ax = plot_label_ap_by_frequency(_experiment_results(), cells=["dim-4"], bins=2)
    scatter = ax.collections[0].get_offsets()
    assert len(scatter) == 4  # the unseen label and the label without validation AP are left out
    assert ax.get_xscale() == "log"


def test_plot_spectrum_marks_k_and_counts_signs_in_its_legend():
    ax = plot_spectrum([3.0, 2.0, 0.5, -0.2, -1.0], k=2, label="zero")
    texts = [text.get_text() for text in ax.get_legend().get_texts()]
    assert texts == ["zero: 3 positive", "zero: 2 negative", "k = 2 (kept: the bars to its left)"]
    marker = [line for line in ax.get_lines() if line.get_linestyle() == "--"][0]
    assert marker.get_xdata()[0] == pytest.approx(2.5)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        plot_spectrum([1.0], k=0)


def test_label_map_group_colours_never_use_the_highlight_colours_and_the_legend_matches_the_points():
    from matplotlib.colors import to_rgba

    rng = np.random.default_rng(0)
    groups = [f"group {i % 18}" for i in range(90)]  # more groups than colours: the rest are grey
    names = [f"label {i}" for i in range(90)]
    ax = plot_label_map(rng.normal(size=(90, 2)), labels=names, groups=groups, chosen=0, highlight=[1, 2])
    group_colours = {tuple(np.round(colour[:3], 3)) for colour in ax.collections[0].get_facecolors()}
    for highlight in ("tab:orange", "red"):
        assert tuple(np.round(to_rgba(highlight)[:3], 3)) not in group_colours
    for colour in group_colours:  # no orange or red hue at all (red channel well above the others)
        red, green, blue = colour
        assert not (red > 0.8 and green < 0.75 and blue < 0.6), colour
    legend = ax.get_legend()
    assert len(legend.get_texts()) == 14
    assert all(handle.get_alpha() == pytest.approx(ax.collections[0].get_alpha()) for handle in legend.legend_handles)


def test_label_map_legend_title_says_what_the_groups_are():
    import numpy as np

    from workbench.apps.plot import plot_label_map

    coordinates = np.random.default_rng(0).normal(size=(4, 2))
    ax = plot_label_map(coordinates, groups=["kitchen", "farm", "kitchen", "other"], legend_title="scene theme")
    assert ax.get_legend().get_title().get_text() == "scene theme"
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["kitchen", "farm", "other"]
