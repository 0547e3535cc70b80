"""Spectral label embeddings: solvers against dense references, LabelEmbedding, diagnostics."""

import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics.pairwise import cosine_similarity as sklearn_cosine

from workbench.method.cooccurrence import CooccurrenceCounts, count_cooccurrence
from workbench.data.labels import Vocabulary, label_matrix
from workbench.method.pmi import pmi_matrix
from workbench.method.eigensolvers import eigenpairs
from workbench.method.embedding import LabelEmbedding, cosine_similarities, nearest_labels; from workbench.method.embed import embed_labels, energy_kept, reconstruction_error, spectral_embedding, spectrum


def symmetric_matrix(size, *, seed=0, positive=None):
    """A random symmetric matrix with separated eigenvalues, ``positive`` of them > 0."""
    rng = np.random.default_rng(seed)
    positive = size // 2 if positive is None else positive
    values = np.concatenate([np.linspace(10.0, 1.0, positive), -np.linspace(0.5, 8.0, size - positive)])
    basis, _ = np.linalg.qr(rng.standard_normal((size, size)))
    matrix = (basis * values) @ basis.T
    return (matrix + matrix.T) / 2


def decaying_matrix(size, *, seed=0):
    """Symmetric, with geometrically decaying eigenvalues of both signs (as PMI spectra)."""
    rng = np.random.default_rng(seed)
    half = size // 2
    values = np.concatenate([100.0 * 0.9 ** np.arange(half), -60.0 * 0.9 ** np.arange(size - half)])
    basis, _ = np.linalg.qr(rng.standard_normal((size, size)))
    matrix = (basis * values) @ basis.T
    return (matrix + matrix.T) / 2


def topic_counts(*, num_labels, num_images, seed=0, labels_per_topic=10):
    """Counts of label sets drawn from topics: a PMI spectrum with a few strong directions."""
    rng = np.random.default_rng(seed)
    topics = rng.integers(0, max(1, num_labels // labels_per_topic), size=num_labels)
    weights = 1.0 / np.arange(1, num_labels + 1)
    label_sets = []
    for _ in range(num_images):
        topic = rng.integers(0, topics.max() + 1)
        members = np.flatnonzero(topics == topic)
        pool = np.concatenate([members, rng.integers(0, num_labels, size=2)])
        p = weights[pool] / weights[pool].sum()
        label_sets.append({f"l{i}" for i in rng.choice(pool, size=min(4, len(pool)), p=p)})
    vocabulary = Vocabulary(tuple(f"l{i}" for i in range(num_labels)))
    return count_cooccurrence(label_matrix(label_sets, vocabulary), vocabulary)


# -- solvers ---------------------------------------------------------------------------------
def test_drop_gives_the_psd_projection_when_k_is_the_number_of_positive_eigenvalues():
    matrix = symmetric_matrix(40, positive=15)
    result = spectral_embedding(matrix, embedding_dim=15, solver="exact")
    values, vectors = np.linalg.eigh(matrix)
    psd = (vectors * np.maximum(values, 0)) @ vectors.T
    reconstruction = result.vectors.astype(np.float64) @ result.vectors.T
    np.testing.assert_allclose(reconstruction, psd, atol=1e-5 * np.abs(psd).max())
    np.testing.assert_allclose(result.eigenvalues, np.sort(values)[::-1][:15], rtol=1e-10)
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (40, 15)


def test_drop_warns_and_returns_the_achievable_dimension():
    matrix = symmetric_matrix(30, positive=6)
    with pytest.warns(UserWarning, match=r"embedding_dim=10 but the 30-label PMI matrix has only 6 usable positive"):
        result = spectral_embedding(matrix, embedding_dim=10, solver="exact")
    assert result.vectors.shape == (30, 6) and np.all(result.eigenvalues > 0)
    assert result.info["dim_requested"] == 10 and result.info["dim"] == 6


def test_abs_equals_the_svd_embedding():
    matrix = symmetric_matrix(36, positive=10, seed=3)
    result = spectral_embedding(matrix, embedding_dim=12, negative="abs", solver="exact")
    u, singular, _ = np.linalg.svd(matrix)
    np.testing.assert_allclose(np.abs(result.eigenvalues), singular[:12], rtol=1e-10)
    svd_embedding = u[:, :12] * np.sqrt(singular[:12])
    np.testing.assert_allclose(
        result.vectors.astype(np.float64) @ result.vectors.T, svd_embedding @ svd_embedding.T, atol=1e-5 * singular[0]
    )
    assert np.any(result.eigenvalues < 0)  # large negative eigenvalues are used, with |λ|


def test_signs_are_deterministic():
    matrix = decaying_matrix(200, seed=4)
    first = spectral_embedding(matrix, embedding_dim=8, solver="exact")
    second = spectral_embedding(-(-matrix), embedding_dim=8, solver="exact", random_state=123)
    np.testing.assert_array_equal(first.vectors, second.vectors)
    rows = np.argmax(np.abs(first.vectors), axis=0)
    assert np.all(first.vectors[rows, np.arange(8)] > 0)
    randomized = [spectral_embedding(matrix, embedding_dim=8, solver="randomized", random_state=seed) for seed in (0, 1)]
    for result in randomized:
        rows = np.argmax(np.abs(result.vectors), axis=0)
        assert np.all(result.vectors[rows, np.arange(8)] > 0)
    np.testing.assert_allclose(randomized[0].vectors, randomized[1].vectors, atol=1e-3)


def test_sparse_and_dense_inputs_agree():
    counts = topic_counts(num_labels=60, num_images=800)
    pmi = pmi_matrix(counts)
    from_sparse = spectral_embedding(pmi, embedding_dim=6, solver="exact")
    from_dense = spectral_embedding(pmi.toarray(), embedding_dim=6, solver="exact")
    np.testing.assert_allclose(from_sparse.vectors, from_dense.vectors, atol=1e-6)


def test_randomized_matches_exact_on_a_mid_size_pmi():
    counts = topic_counts(num_labels=500, num_images=8000, seed=7)
    pmi = pmi_matrix(counts)
    exact = spectral_embedding(pmi, embedding_dim=24, solver="exact")
    fast = spectral_embedding(pmi, embedding_dim=24, solver="randomized", tolerance=1e-3)
    # every eigenvalue, the tail included, within 0.1%
    np.testing.assert_allclose(fast.eigenvalues, exact.eigenvalues, rtol=1e-3)
    assert fast.info["solver"] == "randomized" and fast.info["estimated_max_relative_error"] <= 1e-3 / 2
    assert fast.info["max_relative_residual"] < 0.05  # the rigorous bound: each value within 5% of an eigenvalue
    # same subspace: the reconstructions agree
    exact_gram = exact.vectors.astype(np.float64) @ exact.vectors.T
    fast_gram = fast.vectors.astype(np.float64) @ fast.vectors.T
    assert np.linalg.norm(fast_gram - exact_gram) <= 1e-2 * np.linalg.norm(exact_gram)
    for solver_result in (fast, exact):
        assert solver_result.vectors.shape == (pmi.num_labels, 24)


def test_randomized_abs_matches_exact():
    matrix = decaying_matrix(300, seed=9)
    exact = spectral_embedding(matrix, embedding_dim=20, negative="abs", solver="exact")
    assert np.sum(exact.eigenvalues < 0) >= 5
    fast = spectral_embedding(matrix, embedding_dim=20, negative="abs", solver="randomized")
    np.testing.assert_allclose(fast.eigenvalues, exact.eigenvalues, rtol=1e-3)


@pytest.mark.parametrize("num_threads", [1, 3])
@pytest.mark.parametrize("use_kernel", [True, False])
def test_sparse_operator_equals_scipys_product(num_threads, use_kernel, monkeypatch):
    from workbench.method import eigensolvers
    from workbench.method.eigensolvers import _Operator

    rng = np.random.default_rng(4)
    matrix = sp.random(300, 300, density=0.05, format="csr", dtype=np.float32, random_state=4)
    matrix = (matrix + matrix.T).tolil()
    matrix[7, :] = 0  # an empty row
    matrix = matrix.tocsr()
    block = rng.standard_normal((300, 12)).astype(np.float32)[:, ::2]  # strided, as a slice of the basis
    if not use_kernel:
        monkeypatch.setattr(eigensolvers, "_csr_product_kernel", lambda: None)  # the scipy path, as without numba
    operator = _Operator(matrix, np.float32, num_threads=num_threads)
    assert (operator.order is not None) == use_kernel  # the numba path renumbers rows and columns (RCM)
    try:
        product = operator(block)
    finally:
        operator.close()
    assert product.shape == (300, 6) and product.dtype == np.float32
    np.testing.assert_allclose(product, matrix @ block, rtol=1e-6, atol=1e-6)


def test_randomized_survives_an_invariant_subspace():
    # rank-4 matrix: the Krylov space stops growing after 4 directions
    rng = np.random.default_rng(0)
    factor = rng.standard_normal((200, 4))
    matrix = factor @ factor.T
    with pytest.warns(UserWarning, match="only 4 usable positive"):
        result = spectral_embedding(matrix, embedding_dim=6, solver="randomized", block_size=8)
    np.testing.assert_allclose(result.eigenvalues, np.linalg.eigvalsh(matrix)[::-1][:4], rtol=1e-4)


def test_auto_picks_exact_for_small_matrices():
    assert spectral_embedding(symmetric_matrix(20), embedding_dim=3).info["solver"] == "exact"


@pytest.mark.parametrize(
    "matrix, options, message",
    [
        (np.triu(np.ones((4, 4))), {}, "not symmetric"),
        (np.full((3, 3), np.nan), {}, "NaN or infinite"),
        (np.ones((3, 4)), {}, "square"),
        (np.eye(3), {"embedding_dim": 0}, "embedding_dim must be a positive integer"),
        (np.eye(3), {"solver": "lanczos"}, "Unknown solver 'lanczos'"),
        (np.eye(3), {"negative": "keep"}, "Unknown negative 'keep'"),
    ],
)
def test_bad_inputs(matrix, options, message):
    with pytest.raises(ValueError, match=message):
        spectral_embedding(matrix, **{"embedding_dim": 2, **options})


# -- diagnostics ------------------------------------------------------------------------------
def test_spectrum_energy_and_reconstruction_error_follow_their_definitions():
    matrix = symmetric_matrix(30, positive=12, seed=5)
    values = spectrum(matrix)
    np.testing.assert_allclose(values, np.sort(np.linalg.eigvalsh(matrix))[::-1], atol=1e-10)
    result = spectral_embedding(matrix, embedding_dim=5, solver="exact")
    direct = np.linalg.norm(result.vectors.astype(np.float64) @ result.vectors.T - matrix) / np.linalg.norm(matrix)
    assert reconstruction_error(result.vectors, matrix) == pytest.approx(direct, rel=1e-6)
    assert reconstruction_error(result.vectors, sp.csr_matrix(matrix)) == pytest.approx(direct, rel=1e-6)
    kept = energy_kept(result.eigenvalues, matrix)
    assert kept == pytest.approx(np.sum(values[:5] ** 2) / np.sum(values**2), rel=1e-10)
    assert kept == pytest.approx(1 - direct**2, rel=1e-5)  # drop: energy kept = 1 − error²


# -- LabelEmbedding --------------------------------------------------------------------------
@pytest.fixture()
def embedding():
    vocabulary = Vocabulary(("cat", "dog", "car", "truck", "void"), ("animal", "animal", "vehicle", "vehicle", "none"))
    vectors = np.array([[1.0, 0.1], [0.9, 0.2], [-0.1, 1.0], [0.0, 0.8], [0.0, 0.0]])
    return LabelEmbedding(
        vocabulary=vocabulary, vectors=vectors, eigenvalues=[2.0, 1.0],
        label_counts=np.array([5, 4, 3, 2, 1]), settings={"note": "test"},
    )


def test_properties_and_similarities(embedding):
    assert embedding.num_labels == 5 and embedding.embedding_dim == 2
    points = np.array([[1.0, 0.0], [0.0, 0.0], [0.3, -0.7]])
    similarity = embedding.similarities(points)
    assert similarity.shape == (3, 5) and similarity.dtype == np.float32
    np.testing.assert_allclose(similarity, sklearn_cosine(points, embedding.vectors), atol=1e-6)
    assert np.all(similarity[1] == 0) and np.all(similarity[:, 4] == 0)  # zero norm: 0, never NaN
    np.testing.assert_allclose(cosine_similarities(points[0], embedding.vectors), similarity[:1])
    with pytest.raises(ValueError, match="3 dimensions but label vectors have 2"):
        embedding.similarities(np.ones((1, 3)))


def test_nearest(embedding):
    neighbours = embedding.nearest("cat", top=3)
    assert [name for name, _ in neighbours] == ["dog", "truck", "car"]  # car and void tie at 0: vocabulary order
    assert neighbours[0][1] == pytest.approx(float(sklearn_cosine([[1.0, 0.1]], [[0.9, 0.2]])[0, 0]), abs=1e-6)
    assert len(embedding.nearest("cat", top=100)) == 4  # never itself
    with pytest.raises(KeyError, match=r"Unknown label 'kat'.*'cat'"):
        embedding.nearest("kat")
    with pytest.raises(ValueError, match="top must be a positive integer"):
        embedding.nearest("cat", top=0)
    assert nearest_labels(embedding, ["car"], top=1) == {"car": [("truck", pytest.approx(0.99, abs=0.01))]}


def test_save_load_round_trip(embedding, tmp_path):
    embedding.save(tmp_path / "emb")
    assert sorted(p.name for p in (tmp_path / "emb").iterdir()) == ["embedding.json", "embedding.npz"]
    with np.load(tmp_path / "emb" / "embedding.npz", allow_pickle=False) as archive:
        assert set(archive.files) == {"vectors", "eigenvalues", "label_counts"}
        assert archive["vectors"].dtype == np.float32 and archive["label_counts"].dtype == np.int64
    loaded = LabelEmbedding.load(tmp_path / "emb")
    np.testing.assert_array_equal(loaded.vectors, embedding.vectors)
    np.testing.assert_array_equal(loaded.eigenvalues, embedding.eigenvalues)
    np.testing.assert_array_equal(loaded.label_counts, embedding.label_counts)
    assert loaded.vocabulary == embedding.vocabulary and loaded.vocabulary.groups == embedding.vocabulary.groups
    assert loaded.settings == {"note": "test"}
    without_counts = LabelEmbedding(vocabulary=embedding.vocabulary, vectors=embedding.vectors, eigenvalues=[1, 1], settings={})
    assert LabelEmbedding.load(without_counts.save(tmp_path / "plain")).label_counts is None


def test_load_detects_broken_directories(embedding, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such embedding directory"):
        LabelEmbedding.load(tmp_path / "absent")
    directory = embedding.save(tmp_path / "emb")
    meta = json.loads((directory / "embedding.json").read_text())
    meta["num_labels"] = 4
    (directory / "embedding.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not belong together"):
        LabelEmbedding.load(directory)
    (directory / "embedding.npz").unlink()
    with pytest.raises(FileNotFoundError, match="missing embedding.npz"):
        LabelEmbedding.load(directory)


def test_constructor_validates_shapes(embedding):
    with pytest.raises(ValueError, match="4 label vectors for a vocabulary of 5"):
        LabelEmbedding(vocabulary=embedding.vocabulary, vectors=np.ones((4, 2)), eigenvalues=[1, 1], settings={})
    with pytest.raises(ValueError, match="1 eigenvalues for 2 embedding dimensions"):
        LabelEmbedding(vocabulary=embedding.vocabulary, vectors=np.ones((5, 2)), eigenvalues=[1], settings={})
    with pytest.raises(ValueError, match="NaN or infinite"):
        LabelEmbedding(vocabulary=embedding.vocabulary, vectors=np.full((5, 2), np.inf), eigenvalues=[1, 1], settings={})


def test_export_projector(embedding, tmp_path):
    with pytest.raises(ValueError, match="control character"):  # a tab or a line break would split a row
        Vocabulary(("tab\tname", "b", "c", "d", "e"), ("g\n1", "", "", "", ""))
    vocabulary = Vocabulary(('dog, "pet"', "b", "c", "d", "e"), ("g 1", "", "", "", ""))
    odd = LabelEmbedding(vocabulary=vocabulary, vectors=embedding.vectors, eigenvalues=[1, 1], label_counts=embedding.label_counts, settings={})
    for item in (embedding, odd):
        directory = item.export_projector(tmp_path / "projector")
        vectors = np.loadtxt(directory / "vectors.tsv", delimiter="\t", dtype=np.float32)
        np.testing.assert_array_equal(vectors, item.vectors)  # 9 significant digits: float32 round trip
        lines = (directory / "metadata.tsv").read_text().splitlines()
        assert lines[0] == "label\tgroup\tcount" and len(lines) == 6
        assert all(len(line.split("\t")) == 3 for line in lines)
    assert lines[1] == 'dog, "pet"\tg 1\t5'
    assert embedding.export_projector(tmp_path / "p2") and (tmp_path / "p2" / "metadata.tsv").read_text().splitlines()[1] == "cat\tanimal\t5"


# -- embed_labels ----------------------------------------------------------------------------
def test_embed_labels_records_every_choice(tmp_path):
    counts = topic_counts(num_labels=40, num_images=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embedding = embed_labels(counts, embedding_dim=4, policy="clip", clip_value=-1.0, shift=2.0, context_exponent=0.75, negative="abs")
    settings = embedding.settings
    assert settings["pmi"]["policy"] == "clip" and settings["pmi"]["clip_value"] == -1.0
    assert settings["pmi"]["shift"] == 2.0 and settings["pmi"]["context_exponent"] == 0.75
    assert settings["spectral"]["negative"] == "abs" and settings["spectral"]["solver"] == "exact"
    assert settings["data"]["n_images"] == 500
    assert 0 < settings["diagnostics"]["energy_kept"] <= 1
    assert embedding.label_counts is not None and embedding.num_labels == counts.num_labels - settings["pmi"]["num_labels_total"] + settings["pmi"]["num_labels_kept"]
    LabelEmbedding.load(embedding.save(tmp_path / "e"))  # settings are JSON-serialisable


def test_embed_labels_drops_labels_that_never_occur():
    vocabulary = Vocabulary(("a", "b", "c", "ghost"))
    counts = count_cooccurrence(label_matrix([("a", "b"), ("b", "c"), ("a", "c"), ("a",)], vocabulary), vocabulary)
    with pytest.warns(UserWarning, match="'ghost'"):
        embedding = embed_labels(counts, embedding_dim=2)
    assert "ghost" not in embedding.vocabulary


# -- real data: observed neighbours ----------------------------------------------------------
def _names(neighbours):
    return [name for name, _ in neighbours]


@pytest.mark.shared_data
def test_coco_neighbours_make_sense(shared_data):
    counts = CooccurrenceCounts.load_json(shared_data / "cooccurrence" / "coco2014_train.json")
    embedding = embed_labels(counts, embedding_dim=32)
    assert set(_names(embedding.nearest("fork", top=3))) >= {"knife", "spoon"}
    assert _names(embedding.nearest("keyboard", top=1)) == ["mouse"]
    assert "laptop" in _names(embedding.nearest("keyboard", top=3))
    assert _names(embedding.nearest("skis", top=1)) == ["snowboard"]
    assert _names(embedding.nearest("tennis racket", top=1)) == ["sports ball"]
    assert set(_names(embedding.nearest("toothbrush", top=3))) == {"hair drier", "toilet", "sink"}
    ppmi = embed_labels(counts, embedding_dim=32, policy="ppmi")
    assert set(_names(ppmi.nearest("fork", top=4))) >= {"knife", "spoon"}
    assert _names(ppmi.nearest("keyboard", top=1)) == ["mouse"]


@pytest.mark.shared_data
def test_voc_neighbours_make_sense(shared_data):
    counts = CooccurrenceCounts.load_json(shared_data / "cooccurrence" / "voc2007_trainval.json")
    embedding = embed_labels(counts, embedding_dim=8)
    assert _names(embedding.nearest("sofa", top=1)) == ["tvmonitor"]
    assert set(_names(embedding.nearest("chair", top=3))) >= {"pottedplant", "sofa"}
    assert set(_names(embedding.nearest("diningtable", top=2))) == {"bottle", "chair"}
    ppmi = embed_labels(counts, embedding_dim=8, policy="ppmi")
    assert _names(ppmi.nearest("bus", top=1)) == ["car"]
    assert _names(ppmi.nearest("bicycle", top=1))[0] in {"motorbike", "horse"}  # tied at similarity ~1.0


def test_the_jax_solver_gives_the_exact_solvers_eigenpairs_in_float32():
    """``solver="jax"`` (dense eigh on JAX's device; here the CPU) matches LAPACK: values, vectors, signs."""
    pytest.importorskip("jax")
    from workbench.method.eigensolvers import eigenpairs

    rng = np.random.default_rng(2)
    factor = rng.normal(size=(300, 40))
    matrix = factor @ factor.T / 40 - 0.3 * np.eye(300)
    matrix = (matrix + matrix.T) / 2
    for negative in ("drop", "abs"):
        exact_values, exact_vectors, _ = eigenpairs(matrix, num_pairs=12, negative=negative, solver="exact")
        values, vectors, info = eigenpairs(matrix, num_pairs=12, negative=negative, solver="jax")
        assert info["solver"] == "jax" and info["precision"] == "float32"
        scale = np.abs(exact_values).max()
        assert np.allclose(values, exact_values, atol=1e-5 * scale)
        assert np.allclose(vectors, exact_vectors, atol=2e-3), "same vectors with the same deterministic signs"


def test_auto_uses_jax_only_when_jax_sees_a_gpu(monkeypatch):
    from workbench.method import eigensolvers

    assert eigensolvers.jax_gpu_available() is False  # this machine has no GPU
    monkeypatch.setattr(eigensolvers, "EXACT_MAX_LABELS", 50)
    monkeypatch.setattr(eigensolvers, "jax_gpu_available", lambda: True)
    rng = np.random.default_rng(0)
    factor = rng.normal(size=(120, 10))
    matrix = factor @ factor.T
    pytest.importorskip("jax")
    assert eigensolvers.eigenpairs(matrix, num_pairs=4, solver="auto")[2]["solver"] == "jax"
    monkeypatch.undo()
    assert eigensolvers.eigenpairs(matrix, num_pairs=4, solver="auto")[2]["solver"] == "exact"
    monkeypatch.setenv("WORKBENCH_EIGH_ON_CPU", "1")
    assert eigensolvers.jax_gpu_available() is False


def _flat_spectrum_matrix(size: int, seed: int = 0) -> np.ndarray:
    """Eigenvalues 1 + 1e-4·rank: no gap anywhere, the worst case for a Krylov solver."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(size, size)))
    values = 1.0 + 1e-4 * np.arange(size)[::-1]
    return (basis * values) @ basis.T


def test_auto_switches_to_the_dense_solver_when_the_spectrum_converges_too_slowly(monkeypatch):
    from workbench.method import eigensolvers

    monkeypatch.setattr(eigensolvers, "EXACT_MAX_LABELS", 50)
    matrix = _flat_spectrum_matrix(400)
    exact_values = np.linalg.eigvalsh(matrix)[::-1][:20]
    with pytest.warns(UserWarning, match="basis limit"):  # the Krylov solver alone gives up with a warning
        _, _, info = eigensolvers.eigenpairs(matrix, num_pairs=20, solver="randomized", max_basis=96, tolerance=1e-6)
    assert info["solver"] == "randomized"
    values, vectors, info = eigensolvers.eigenpairs(matrix, num_pairs=20, solver="auto", max_basis=96, tolerance=1e-6)
    assert info["solver"] == "exact" and "randomized solver stopped" in info["switched_from_randomized"]
    np.testing.assert_allclose(values, exact_values, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(matrix @ vectors - vectors * values, axis=0), 0, atol=1e-10)
    # a spectrum with a gap converges: auto keeps the Krylov solver
    easy = decaying_matrix(400, seed=3)
    assert eigensolvers.eigenpairs(easy, num_pairs=20, solver="auto")[2]["solver"] == "randomized"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tolerance", [1e-2, 1e-4])
def test_randomized_results_are_certified_by_their_residuals(seed, tolerance):
    counts = topic_counts(num_labels=400, num_images=6000, seed=seed)
    matrix = pmi_matrix(counts).matrix
    values, vectors, info = eigenpairs(matrix, num_pairs=30, solver="randomized", tolerance=tolerance, random_state=seed)
    residuals = np.linalg.norm(matrix @ vectors - vectors * values, axis=0) / np.abs(values)
    assert residuals.max() <= tolerance * 1.05  # recomputed in float64: the solver's certificate holds
    assert info["max_relative_residual"] <= tolerance
    exact = np.linalg.eigvalsh(matrix.toarray())[::-1][:30]
    assert np.all(np.abs(values - exact) <= tolerance * np.abs(exact))  # so every eigenvalue is within the tolerance


def test_the_band_of_the_projection_is_read_straight_from_its_blocks():
    from workbench.method.eigensolvers import _band, _projection

    rng = np.random.default_rng(0)
    width, count = 5, 4
    diagonal = [rng.normal(size=(width, width)) for _ in range(count)]
    sub = [np.triu(rng.normal(size=(width, width))) for _ in range(count)]  # R factors: upper triangular
    dense = _projection(diagonal, sub)
    expected = np.zeros((width + 1, width * count))
    for offset in range(width + 1):
        expected[offset, : width * count - offset] = np.diagonal(dense, -offset)
    np.testing.assert_array_equal(_band(diagonal, sub), expected)
    assert np.count_nonzero(np.tril(dense, -width - 1)) == 0  # nothing outside the band was dropped
