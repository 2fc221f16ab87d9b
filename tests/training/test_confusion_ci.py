import numpy as np

from training.common.confusion_ci import bootstrap, confusion_matrices, pairs_from_confusion, scores

RHYTHM = ["normal", "atrial_fibrillation", "other", "noisy"]


def test_pairs_rebuild_the_matrix():
    counts = np.array([[5, 1, 0], [2, 3, 4], [0, 0, 7]])
    true, pred = pairs_from_confusion(counts)
    rebuilt = np.zeros_like(counts)
    np.add.at(rebuilt, (true, pred), 1)
    assert (rebuilt == counts).all()


def test_scores_on_a_hand_checked_matrix():
    # recalls 8/10, 1/2, 3/4; F1 of class 0: 2*8 / (10 + 9) ; absent classes leave BA alone
    counts = np.array([[8, 1, 1, 0], [1, 1, 0, 0], [0, 1, 3, 0], [0, 0, 0, 0]])
    s = scores(counts, RHYTHM)
    assert np.isclose(s["balanced_accuracy"], (0.8 + 0.5 + 0.75) / 3)
    assert np.isclose(s["f1_normal"], 16 / 19)
    assert np.isclose(s["challenge_score"], (16 / 19 + 2 / 5 + 6 / 8) / 3)


def test_interval_holds_the_value_and_narrows_with_more_examples():
    small = np.array([[8, 2], [3, 7]])
    a = bootstrap(small, ["a", "b"], n=500)["balanced_accuracy"]
    b = bootstrap(small * 20, ["a", "b"], n=500)["balanced_accuracy"]
    assert a["ci95_low"] <= a["value"] <= a["ci95_high"]
    assert np.isclose(a["value"], b["value"])
    assert b["ci95_high"] - b["ci95_low"] < 0.5 * (a["ci95_high"] - a["ci95_low"])


def test_finds_matrices_under_either_key_on_a_card():
    card = {
        "metrics": {
            "test": {
                "confusion_matrix": {"rows_true_cols_pred": ["a", "b"], "counts": [[1, 0], [0, 1]]}
            },
            "other": {
                "confusion_matrix": {"rows_true_cols_pred": ["a", "b"], "matrix": [[2, 1], [0, 3]]}
            },
            "per_source": {"confusion_matrix": [[1, 2]]},
        }
    }
    found = {where for where, _, _ in confusion_matrices(card)}
    assert found == {"metrics.test.confusion_matrix", "metrics.other.confusion_matrix"}
