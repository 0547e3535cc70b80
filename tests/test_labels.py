"""Tests for workbench.data.labels: vocabularies and multi-hot label matrices."""

import numpy as np
import pytest
import scipy.sparse as sp

from workbench.data.labels import (
    LABEL_MATRIX_DTYPE,
    Vocabulary,
    label_matrix,
    label_sets_from_matrix,
    summarize_label_sets,
)

LABEL_SETS = [("sea", "sunset"), ("trees",), (), ("sea", "sea", "mountains"), ("sunset", "trees", "sea")]


# -- Vocabulary ---------------------------------------------------------------------
def test_from_label_sets_sorted_and_first_appearance():
    assert Vocabulary.from_label_sets(LABEL_SETS).names == ("mountains", "sea", "sunset", "trees")
    assert Vocabulary.from_label_sets(LABEL_SETS, sort=False).names == ("sea", "sunset", "trees", "mountains")


def test_index_and_indices():
    vocabulary = Vocabulary(("cat", "dog", "bird"))
    assert vocabulary.index("dog") == 1
    assert vocabulary.indices(["bird", "cat"]).tolist() == [2, 0]
    assert vocabulary.indices(["bird"]).dtype == np.int64
    assert "cat" in vocabulary and "cow" not in vocabulary
    assert len(vocabulary) == vocabulary.num_labels == 3
    assert list(vocabulary) == ["cat", "dog", "bird"] and vocabulary[2] == "bird"


def test_unknown_label_names_close_matches():
    vocabulary = Vocabulary(("mountains", "sea", "sunset", "trees"))
    with pytest.raises(KeyError) as raised:
        vocabulary.index("mountain")
    message = raised.value.args[0]
    assert "'mountain'" in message and "'mountains'" in message and "\n" not in message
    # No close match by spelling: a substring match is offered instead.
    assert "'sunset'" in vocabulary.unknown_label_message("SUN")
    assert "Did you mean" not in vocabulary.unknown_label_message("zzzz")


@pytest.mark.parametrize(
    "names, groups, message",
    [
        (("a", "a"), None, "appears twice"),
        (("a", " "), None, "empty name"),
        (("a", "b"), ("g",), "2 names but 1 groups"),
        (("a", "dog\tcat"), None, r"Label 1 \('dog\\tcat'\) contains the control character '\\t'"),
        (("first\nsecond", "b"), None, r"Label 0 .* control character '\\n'"),
        (("a", "b\r"), None, r"Label 1 .* control character '\\r'"),
        (("a\x00", "b"), None, r"Label 0 .* control character '\\x00'"),
        (("a", "\x1b[31mred"), None, r"Label 1 .* control character '\\x1b'"),
        (("a", "next\x85line"), None, r"Label 1 .* control character '\\x85'"),
        (("a", "b"), ("g", "two\nlines"), r"The group of label 1 .* control character '\\n'"),
    ],
)
def test_invalid_vocabulary(names, groups, message):
    with pytest.raises(ValueError, match=message) as error:
        Vocabulary(names, groups)
    assert "\n" not in str(error.value), "one line, whatever the label holds"


def test_printable_names_with_spaces_and_accents_are_kept():
    vocabulary = Vocabulary(("crème brûlée", "dog, pet", "  padded  ", "日本"))
    assert vocabulary.names[0] == "crème brûlée" and len(vocabulary) == 4


def test_read_csv_refuses_a_label_with_a_line_break_naming_file_and_position(tmp_path):
    (tmp_path / "v.csv").write_text('label,group\nsea,water\n"sky\nblue",air\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"v\.csv: Label 1 \('sky\\nblue'\) contains the control character") as error:
        Vocabulary.read_csv(tmp_path / "v.csv")
    assert "\n" not in str(error.value)


def test_csv_round_trip_with_groups(tmp_path):
    vocabulary = Vocabulary(("grinning face", "dog, pet"), ("Smileys", "Animals"), ("face-smiling", "animal-mammal"))
    vocabulary.write_csv(tmp_path / "vocabulary.csv")
    assert Vocabulary.read_csv(tmp_path / "vocabulary.csv") == vocabulary
    assert (tmp_path / "vocabulary.csv").read_text(encoding="utf-8").splitlines()[0] == "label,group,subgroup"


def test_csv_round_trip_without_groups(tmp_path):
    vocabulary = Vocabulary(("a", "b"))
    vocabulary.write_csv(tmp_path / "v.csv")
    again = Vocabulary.read_csv(tmp_path / "v.csv")
    assert again == vocabulary and again.groups is None and again.subgroups is None


def test_read_csv_byte_order_mark_and_label_only(tmp_path):
    (tmp_path / "v.csv").write_bytes("\ufefflabel\nsea\nsky\n".encode("utf-8"))
    vocabulary = Vocabulary.read_csv(tmp_path / "v.csv")
    assert vocabulary.names == ("sea", "sky") and vocabulary.group_of(0) == ""


def test_read_csv_errors_name_file(tmp_path):
    (tmp_path / "bad.csv").write_text("name\nsea\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.csv.*'label'"):
        Vocabulary.read_csv(tmp_path / "bad.csv")
    (tmp_path / "twice.csv").write_text("label\nsea\nsea\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"twice\.csv.*'sea' appears twice"):
        Vocabulary.read_csv(tmp_path / "twice.csv")


def test_subset_keeps_groups_in_given_order():
    vocabulary = Vocabulary(("a", "b", "c"), ("ga", "gb", "gc"), ("sa", "sb", "sc"))
    subset = vocabulary.subset([2, 0])
    assert subset.names == ("c", "a") and subset.groups == ("gc", "ga") and subset.subgroups == ("sc", "sa")
    assert Vocabulary(("a", "b")).subset([1]).groups is None


def test_dict_round_trip():
    vocabulary = Vocabulary(("a", "b"), ("g1", "g2"))
    assert Vocabulary.from_dict(vocabulary.to_dict()) == vocabulary
    assert "subgroups" not in vocabulary.to_dict()


# -- label matrix -------------------------------------------------------------------
def test_label_matrix_against_dense_reference():
    vocabulary = Vocabulary.from_label_sets(LABEL_SETS)
    matrix = label_matrix(LABEL_SETS, vocabulary)
    assert sp.issparse(matrix) and matrix.format == "csr"
    assert matrix.shape == (5, 4) and matrix.dtype == LABEL_MATRIX_DTYPE
    expected = np.zeros((5, 4), dtype=np.uint8)
    for row, label_set in enumerate(LABEL_SETS):
        for label in label_set:
            expected[row, vocabulary.index(label)] = 1
    np.testing.assert_array_equal(matrix.toarray(), expected)
    # Duplicates count once: row 3 has "sea" twice but a single stored 1.
    assert matrix[3].nnz == 2 and matrix.data.max() == 1
    assert all(np.all(np.diff(matrix.indices[a:b]) > 0) for a, b in zip(matrix.indptr[:-1], matrix.indptr[1:]))


def test_label_matrix_unknown_label_and_string_set():
    vocabulary = Vocabulary(("a", "b"))
    with pytest.raises(ValueError, match=r"Image 1 has label 'c'"):
        label_matrix([("a",), ("c",)], vocabulary)
    with pytest.raises(ValueError, match=r"Image 0 has the string 'ab'"):
        label_matrix(["ab"], vocabulary)


def test_label_matrix_empty_inputs():
    matrix = label_matrix([], Vocabulary(("a",)))
    assert matrix.shape == (0, 1)
    assert summarize_label_sets(matrix)["num_images"] == 0
    assert summarize_label_sets(matrix)["mean_labels_per_image"] == 0.0


def test_empty_sets_kept_and_reported():
    label_sets = [("a",), (), ("a", "b"), ()]
    vocabulary = Vocabulary(("a", "b", "unused"))
    summary = summarize_label_sets(label_matrix(label_sets, vocabulary))
    assert summary == {
        "num_images": 4,
        "num_labels": 3,
        "num_empty_images": 2,
        "mean_labels_per_image": 0.75,
        "max_labels_per_image": 2,
        "num_unused_labels": 1,
    }


def test_label_sets_from_matrix_inverts_label_matrix():
    vocabulary = Vocabulary.from_label_sets(LABEL_SETS, sort=False)
    recovered = label_sets_from_matrix(label_matrix(LABEL_SETS, vocabulary), vocabulary)
    order = {name: i for i, name in enumerate(vocabulary.names)}
    assert recovered == [tuple(sorted(set(s), key=order.__getitem__)) for s in LABEL_SETS]
    # Dense input works too.
    assert label_sets_from_matrix(np.array([[0, 1, 0, 1]]), vocabulary) == [("sunset", "mountains")]


def test_explicit_zeros_and_duplicates_are_not_labels():
    vocabulary = Vocabulary(("a", "b", "c"))
    # Row 0 stores an explicit zero for "b"; row 1 stores "c" twice.
    matrix = sp.csr_matrix(
        (np.array([1, 0, 1, 1], dtype=np.uint8), np.array([0, 1, 2, 2]), np.array([0, 2, 4])), shape=(2, 3)
    )
    assert label_sets_from_matrix(matrix, vocabulary) == [("a",), ("c",)]
    summary = summarize_label_sets(matrix)
    assert summary["max_labels_per_image"] == 1 and summary["num_unused_labels"] == 1
    assert matrix.nnz == 4  # the caller's matrix is not modified


def test_label_sets_from_matrix_shape_mismatch():
    with pytest.raises(ValueError, match="3 columns but the vocabulary has 2 labels"):
        label_sets_from_matrix(sp.csr_matrix((1, 3), dtype=np.uint8), Vocabulary(("a", "b")))
