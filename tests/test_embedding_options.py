"""EmbeddingOptions (one record of every embedding choice), the CLI built from it, and the shared value checks."""

import json
import warnings

import numpy as np
import pytest

from workbench import _checks
from workbench.data.labels import Vocabulary, label_matrix
from workbench.method.cooccurrence import count_cooccurrence
from workbench.method.embed import DEFAULT_EMBEDDING_DIM, OPTION_HELP, EmbeddingOptions, embed_labels


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(0)
    vocabulary = Vocabulary(tuple(f"label {i}" for i in range(24)))
    label_sets = [tuple(vocabulary[int(i)] for i in rng.choice(24, size=rng.integers(1, 5), replace=False)) for _ in range(300)]
    return count_cooccurrence(label_matrix(label_sets, vocabulary), vocabulary)


def test_options_round_trip_and_document_every_field():
    options = EmbeddingOptions(embedding_dim=8, policy="clip", clip_value=-1.5, diagonal="zero", negative="abs",
                               solver="exact", random_state=3, tolerance=0.05, context_exponent=0.75, shift=2.0)
    assert EmbeddingOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options
    assert set(OPTION_HELP) == set(options.to_dict()), "every option has its help text, and only options do"
    assert EmbeddingOptions().embedding_dim == DEFAULT_EMBEDDING_DIM
    assert options.differences(EmbeddingOptions(embedding_dim=8, policy="clip", clip_value=-1.5, diagonal="zero",
                                                 negative="abs", solver="exact", random_state=3, tolerance=0.05,
                                                 context_exponent=0.75, shift=3.0)) == {"shift": (2.0, 3.0)}


@pytest.mark.parametrize(
    "values, message",
    [
        ({"embedding_dim": 0}, "embedding_dim must be a positive integer; got 0"),
        ({"embedding_dim": True}, "embedding_dim must be a positive integer"),
        ({"policy": "pmi"}, "Unknown PMI policy 'pmi'; choose one of zero, ppmi, clip, smooth"),
        ({"diagonal": "one"}, "Unknown diagonal 'one'"),
        ({"policy": "clip"}, "needs a finite clip_value"),
        ({"clip_value": -1.0}, "clip_value only applies to policy='clip'"),
        ({"smoothing": 2.0}, "smoothing only applies to policy='smooth'"),
        ({"negative": "keep"}, "Unknown negative 'keep'"),
        ({"solver": "lanczos"}, "Unknown solver 'lanczos'"),
        ({"tolerance": 1.5}, "tolerance must be between 0 and 1"),
        ({"shift": 0.0}, "shift must be a positive finite number"),
        ({"k": 4}, r"Unknown embedding options \['k'\]"),
    ],
)
def test_bad_options_fail_when_made_with_one_line(values, message):
    with pytest.raises(ValueError, match=message):
        EmbeddingOptions.from_dict(values)


def test_embed_labels_takes_options_or_keywords_and_records_them(counts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_options = embed_labels(counts, options=EmbeddingOptions(embedding_dim=5, policy="ppmi"))
        from_keywords = embed_labels(counts, embedding_dim=5, policy="ppmi")
    np.testing.assert_array_equal(from_options.vectors, from_keywords.vectors)
    assert EmbeddingOptions.of(from_options) == EmbeddingOptions(embedding_dim=5, policy="ppmi")
    with pytest.raises(ValueError, match="not both"):
        embed_labels(counts, options=EmbeddingOptions(), embedding_dim=5)
    with pytest.raises(ValueError, match=r"Unknown embedding options \['dim'\]"):
        embed_labels(counts, dim=5)


def test_cli_embed_and_compare_offer_the_same_embedding_options_with_the_same_defaults():
    from workbench.cli import build_parser

    parser = build_parser()
    embed = parser.parse_args(["embed", "--counts", "c.json", "--out", "e"])
    compare = parser.parse_args(["compare", "--data", "d", "--out", "c"])
    from workbench.cli import embedding_options

    assert embedding_options(embed) == embedding_options(compare) == EmbeddingOptions()
    chosen = parser.parse_args(["compare", "--data", "d", "--out", "c", "--dim", "7", "--pmi", "smooth", "--smoothing",
                                "0.5", "--diagonal", "zero", "--negative", "abs", "--solver-seed", "4"])
    assert embedding_options(chosen) == EmbeddingOptions(embedding_dim=7, policy="smooth", smoothing=0.5, diagonal="zero",
                                                         negative="abs", random_state=4)


def test_cli_refuses_bad_embedding_options_before_any_work(tmp_path, capsys):
    from workbench.cli import main

    assert main(["embed", "--counts", str(tmp_path / "missing.json"), "--dim", "4", "--pmi", "clip", "--out", str(tmp_path / "e")]) == 2
    assert "needs a finite clip_value" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_value_checks_say_what_was_wrong():
    assert _checks.integer(np.int64(3), "n") == 3
    with pytest.raises(ValueError, match=r"^n must be a non-negative integer; got -1\.$"):
        _checks.integer(-1, "n", minimum=0)
    with pytest.raises(ValueError, match="top must be an integer between 1 and 5; got 6"):
        _checks.integer(6, "top", maximum=5)
    with pytest.raises(ValueError, match="fan_in must be an integer >= 2; got 1"):
        _checks.integer(1, "fan_in", minimum=2)
    assert _checks.number(2, "rate", positive=True) == 2.0
    for bad in (float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="threshold must be a finite number"):
            _checks.number(bad, "threshold")
    with pytest.raises(ValueError, match="Unknown head 'softmax'; choose one of pmi, sigmoid"):
        _checks.choice("softmax", "head", ("pmi", "sigmoid"))
