"""benchmarks.fusion's reference rows for the fusions: the single-modality models combined."""

import doctest

import numpy as np

from benchmarks import fusion


def test_the_docstring_example_runs():
    assert doctest.testmod(fusion, extraglobs={"np": np}).failed == 0


def test_the_ensemble_weights_come_from_val_and_the_oracle_counts_rows_any_model_gets_right():
    y_val, y_test = np.array([0, 1, 0, 1]), np.array([0, 1, 1, 0, 1])
    # on val only b is right; on test a is right on rows 0, 1 and b on rows 2, 3
    a_val = np.array([[.2, .8], [.9, .1], [.3, .7], [.6, .4]])
    b_val = np.array([[.7, .3], [.4, .6], [.8, .2], [.1, .9]])
    a_test = np.array([[.9, .1], [.1, .9], [.9, .1], [.2, .8], [.6, .4]])
    b_test = np.array([[.3, .7], [.6, .4], [.2, .8], [.7, .3], [.6, .4]])
    rows = fusion.ensemble_bounds({"a": [{"val": (a_val, y_val), "test": (a_test, y_test)}],
                                   "b": [{"val": (b_val, y_val), "test": (b_test, y_test)}]})
    late = rows[fusion.LATE_ENSEMBLE]
    assert late["runs"][0]["weights"] == {"a": 0.0, "b": 1.0}  # the first weights with the best val accuracy
    assert late["mean"] == float((b_test.argmax(-1) == y_test).mean()) == 0.4
    assert rows[fusion.EITHER_RIGHT]["mean"] == 0.8  # row 4 neither gets right


def test_bounds_average_over_seeds():
    y = np.array([0, 1])
    right, wrong = np.array([[.9, .1], [.1, .9]]), np.array([[.1, .9], [.9, .1]])
    seeds = {"a": [{"val": (right, y), "test": (right, y)}, {"val": (wrong, y), "test": (wrong, y)}],
             "b": [{"val": (wrong, y), "test": (wrong, y)}, {"val": (wrong, y), "test": (wrong, y)}]}
    rows = fusion.ensemble_bounds(seeds)
    assert [r["test_accuracy"] for r in rows[fusion.EITHER_RIGHT]["runs"]] == [1.0, 0.0]
    assert rows[fusion.EITHER_RIGHT]["mean"] == 0.5
