"""``wb.pmi`` and the objects notebooks 01 and 02 read: PMI pairs and submatrices, the spectrum, counts by label."""

import numpy as np
import pytest

pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def small():
    import workbench as wb

    data = wb.scenes(num_images=240, num_labels=14, image_size=16, random_state=5)
    return data, wb.count(data)


def test_wb_pmi_of_a_data_set_counts_its_training_split_and_takes_options_or_keywords(small):
    import workbench as wb
    from workbench.method.pmi import pmi_matrix

    data, counts = small
    pmi = wb.pmi(data, policy="ppmi", diagonal="zero")
    assert np.allclose(pmi.toarray(), pmi_matrix(counts.artefact, policy="ppmi", diagonal="zero").toarray())
    options = wb.EmbeddingOptions(policy="clip", clip_value=-1.5)
    assert np.allclose(wb.pmi(counts, options=options).toarray(), wb.pmi(counts, policy="clip", clip_value=-1.5).toarray())
    with pytest.raises(ValueError, match="either as options"):
        wb.pmi(counts, options=options, policy="zero")
    assert pmi.summary().startswith(f"{pmi.num_labels} labels, policy 'ppmi', diagonal 'zero'")
    assert pmi._repr_html_().startswith("<h4>PMI matrix</h4>") and pmi.table().strip()


def test_pmi_pairs_are_the_pairs_seen_together_largest_first_and_every_pair_with_min_count_zero(small):
    import workbench as wb

    _, counts = small
    pmi = wb.pmi(counts)
    values, names = pmi.toarray(), list(pmi.vocabulary.names)
    together = counts.pair_counts.toarray()[np.ix_(pmi.kept, pmi.kept)]
    pairs = pmi.to_frame()
    assert list(pairs.columns) == ["label_i", "label_j", "c_ij", "c_i", "c_j", "pmi"]
    assert len(pairs) == int(np.count_nonzero(np.triu(together, k=1)))
    assert (pairs.c_ij >= 1).all() and pairs.pmi.is_monotonic_decreasing
    for row in pairs.head(5).itertuples():
        i, j = names.index(row.label_i), names.index(row.label_j)
        assert i < j and row.c_ij == together[i, j] and np.isclose(row.pmi, values[i, j])
        assert (row.c_i, row.c_j) == (pmi.label_counts[i], pmi.label_counts[j])
    assert (pmi.to_frame(min_count=3).c_ij >= 3).all()
    everything = pmi.to_frame(min_count=0)
    assert len(everything) == pmi.num_labels * (pmi.num_labels - 1) // 2 and (everything.c_ij == 0).any()
    assert (everything[everything.c_ij == 0].pmi == 0).all(), "never seen together: 0 under the 'zero' policy"


def test_submatrices_are_named_on_both_axes_and_match_the_arrays(small):
    import workbench as wb

    _, counts = small
    handful = counts.example_labels(num_groups=2, per_group=2)
    from workbench.notebook.helpers import example_labels

    assert handful == [counts.vocabulary[int(i)] for i in example_labels(counts.artefact, num_groups=2, per_group=2)]
    positions = counts.vocabulary.indices(handful)
    pairs = counts.submatrix(handful)
    assert list(pairs.index) == handful == list(pairs.columns)
    assert np.array_equal(pairs.to_numpy(), counts.pair_counts.toarray()[np.ix_(positions, positions)])
    assert np.array_equal(counts.submatrix(positions).to_numpy(), pairs.to_numpy()), "positions work as names do"
    pmi = wb.pmi(counts, policy="smooth")
    assert np.allclose(pmi.submatrix(handful).to_numpy(), pmi.toarray()[np.ix_(positions, positions)])
    assert pmi.submatrix().shape == (pmi.num_labels, pmi.num_labels)
    frame = counts.to_frame()
    assert list(frame.columns) == ["label", "group", "subgroup", "images", "frequency"]
    assert frame.images.is_monotonic_decreasing and set(frame.subgroup) <= set(counts.vocabulary.subgroups)


def test_pmi_statistics_describe_storage_and_off_diagonal_values(small):
    import workbench as wb

    _, counts = small
    zero, clip = wb.pmi(counts, policy="zero"), wb.pmi(counts, policy="clip", clip_value=-1.0, diagonal="zero")
    facts = zero.statistics()
    off = zero.toarray()[~np.eye(zero.num_labels, dtype=bool)]
    assert facts["storage"] == "sparse" and facts["stored"] == zero.matrix.nnz
    assert np.isclose(facts["min"], off.min()) and np.isclose(facts["negative"], np.mean(off < 0))
    assert np.isclose(facts["mean_diagonal"], np.diag(zero.toarray()).mean())
    assert clip.statistics()["storage"] == "dense" and clip.statistics()["min"] >= -1.0
    assert clip.statistics()["mean_diagonal"] == 0.0


def test_the_spectrum_gives_energy_and_error_for_every_k_as_the_embedding_measures_them(small):
    import workbench as wb

    _, counts = small
    pmi = wb.pmi(counts)
    spectrum = pmi.spectrum()
    assert len(spectrum) == pmi.num_labels and np.all(np.diff(spectrum.eigenvalues) <= 1e-12)
    assert np.isclose(spectrum.norm_squared, np.sum(spectrum.eigenvalues ** 2)), "‖PMI‖² = Σ λ²"
    facts = spectrum.statistics()
    assert facts["positive"] + facts["negative"] <= len(spectrum) and facts["largest"] == spectrum.eigenvalues[0]
    frame = spectrum.to_frame()
    assert list(frame.columns) == ["rank", "eigenvalue", "energy_kept", "reconstruction_error"]
    embedding = wb.embed(counts, dim=4)
    diagnostics = embedding.settings["diagnostics"]
    assert np.isclose(frame.energy_kept[3], diagnostics["energy_kept"])
    assert np.isclose(frame.reconstruction_error[3], diagnostics["reconstruction_error"], atol=1e-6)
    assert np.isclose(pmi.reconstruction_error(embedding), diagnostics["reconstruction_error"])
    assert frame.energy_kept[spectrum.eigenvalues < 0].isna().all(), "energy is over the positive eigenvalues only"
    assert "positive and" in spectrum.summary() and spectrum._repr_html_().startswith("<h4>Spectrum</h4>")


def test_plots_draw_and_the_explorer_shares_the_embeddings_map(small):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import workbench as wb

    _, counts = small
    pmi, handful = wb.pmi(counts), counts.example_labels()
    spectrum = pmi.spectrum()
    assert pmi.plot(labels=handful, cluster=False).get_title()
    assert list(pmi.plot(labels=handful).label_order) != [] and counts.plot_pairs(handful).images
    assert len(spectrum.plot(k=3, top=6).patches) == 6 and spectrum.plot_energy(k=3).lines
    embedding = wb.embed(counts, dim=4)
    themes = {handful[0]: "first"}
    ax = embedding.plot(label=handful[0], method="pca", groups=themes, legend_title="theme", top=3)
    assert ax.get_legend().get_title().get_text() == "theme"
    plt.close("all")

    explorer = wb.explore(embedding, counts=counts, pmi=pmi, label=handful[0], top=3, map_method="pca")
    assert np.array_equal(explorer.coordinates, embedding.coordinates(method="pca"))
    rows = explorer.neighbours()
    assert [row["label"] for row in rows] == list(embedding.neighbours(handful[0], top=3).label)
    other = pmi.vocabulary.index(rows[0]["label"])
    assert np.isclose(rows[0]["pmi"], pmi.toarray()[pmi.vocabulary.index(handful[0]), other])
