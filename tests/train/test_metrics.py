import math
import statistics

import pytest
import torch

from graphfuse.train.metrics import (
    classification_metrics,
    multilabel_metrics,
    ranking_metrics,
    regression_metrics,
    retrieval_metrics,
)


def brute_force_ranks(similarity: torch.Tensor, positives: torch.Tensor) -> list[int]:
    """Sorts each row by decreasing score, non-positives first among ties; the rank is the first positive's place."""
    ranks = []
    for scores, matches in zip(similarity.tolist(), positives.tolist(), strict=True):
        order = sorted(zip(scores, matches, strict=True), key=lambda item: (-item[0], item[1]))
        ranks.append(1 + [match for _, match in order].index(True))
    return ranks


def brute_force_metrics(similarity: torch.Tensor, positives: torch.Tensor, ks) -> dict[str, float]:
    ranks = brute_force_ranks(similarity, positives)
    result = {f"R@{k}": 100 * sum(r <= k for r in ranks) / len(ranks) for k in ks}
    result["MRR"] = sum(1 / r for r in ranks) / len(ranks)
    result["median_rank"] = float(statistics.median(ranks))
    return result


def assert_metrics_equal(received: dict, expected: dict) -> None:
    assert list(received) == list(expected)
    for key, value in expected.items():
        assert isinstance(received[key], float), key
        assert received[key] == pytest.approx(value, rel=1e-5), key


# Row q ranks the gallery; column g ranks the queries. The positives are the diagonal.
TINY = torch.tensor([[0.9, 0.1, 0.5],
                     [0.8, 0.3, 0.3],
                     [0.2, 0.7, 0.4]])


def test_ranking_hand_checked():
    # q2g ranks: row 0: 0.9 is the top -> 1; row 1: 0.8 above and 0.3 tied (counted ahead) -> 3;
    # row 2: 0.7 above 0.4 -> 2. So ranks [1, 3, 2].
    result = ranking_metrics(TINY, ks=(1, 2, 10))
    assert_metrics_equal(result, {"R@1": 100 / 3, "R@2": 200 / 3, "R@10": 100.0, "MRR": (1 + 1 / 3 + 1 / 2) / 3,
                                  "median_rank": 2.0})


def test_retrieval_hand_checked():
    # g2q ranks (columns): col 0: 0.9 top -> 1; col 1: 0.7 above 0.3 -> 2; col 2: 0.5 above 0.4 -> 2. So [1, 2, 2].
    result = retrieval_metrics(TINY, ks=(1, 2))
    assert_metrics_equal(result, {
        "q2g/R@1": 100 / 3, "q2g/R@2": 200 / 3, "q2g/MRR": 11 / 18, "q2g/median_rank": 2.0,
        "g2q/R@1": 100 / 3, "g2q/R@2": 100.0, "g2q/MRR": 2 / 3, "g2q/median_rank": 2.0,
        "rsum": 100 / 3 + 200 / 3 + 100 / 3 + 100.0,
    })


def test_ranking_4x4_with_ties_and_even_median():
    similarity = torch.tensor([[1.0, 1.0, 0.0, 0.0],
                               [0.5, 0.5, 0.5, 0.5],
                               [0.2, 0.1, 0.3, 0.0],
                               [0.0, 0.0, 0.0, 0.0]])
    positives = torch.eye(4, dtype=torch.bool)
    assert brute_force_ranks(similarity, positives) == [2, 4, 1, 4]
    expected = brute_force_metrics(similarity, positives, (1, 5, 10))
    assert expected["median_rank"] == 3.0
    assert_metrics_equal(ranking_metrics(similarity), expected)


def test_ranking_3x5_with_several_positives():
    similarity = torch.tensor([[0.1, 0.9, 0.4, 0.4, 0.2],
                               [0.3, 0.3, 0.3, 0.8, 0.0],
                               [0.6, 0.5, 0.7, 0.5, 0.5]])
    positives = torch.tensor([[True, False, True, True, False],
                              [False, True, True, False, False],
                              [False, True, False, False, True]])
    # Row 0: 0.9 above its best positive 0.4 -> 2; row 1: 0.8 above and 0.3 tied with 0.3 -> 3;
    # row 2: 0.6, 0.7 above and 0.5 tied with 0.5 -> 4.
    assert brute_force_ranks(similarity, positives) == [2, 3, 4]
    assert_metrics_equal(ranking_metrics(similarity, positives, ks=(1, 2, 3)),
                         brute_force_metrics(similarity, positives, (1, 2, 3)))
    assert brute_force_ranks(similarity.T, positives.T) == [3, 2, 2, 3, 1]
    result = retrieval_metrics(similarity, positives, ks=(1, 2))
    reverse = brute_force_metrics(similarity.T, positives.T, (1, 2))
    assert_metrics_equal({k[4:]: v for k, v in result.items() if k.startswith("g2q/")}, reverse)
    assert result["rsum"] == pytest.approx(0.0 + 100 / 3 + 20.0 + 60.0)


@pytest.mark.parametrize("seed", range(5))
def test_ranking_random_quantised_matches_brute_force(seed):
    generator = torch.Generator().manual_seed(seed)
    similarity = torch.randint(0, 3, (7, 9), generator=generator).float()  # few values: many ties
    positives = torch.rand(7, 9, generator=generator) < 0.2
    positives[torch.arange(7), torch.arange(7)] = True
    positives[torch.arange(2), torch.arange(7, 9)] = True  # every column has a positive too
    ks = (1, 3, 20)
    result = retrieval_metrics(similarity, positives, ks=ks)
    forward = brute_force_metrics(similarity, positives, ks)
    reverse = brute_force_metrics(similarity.T, positives.T, ks)
    assert_metrics_equal(ranking_metrics(similarity, positives, ks=ks), forward)
    assert_metrics_equal({k[4:]: v for k, v in result.items() if k.startswith("q2g/")}, forward)
    assert_metrics_equal({k[4:]: v for k, v in result.items() if k.startswith("g2q/")}, reverse)
    assert result["rsum"] == pytest.approx(sum(forward[f"R@{k}"] + reverse[f"R@{k}"] for k in ks), rel=1e-5)


def test_constant_similarity_ranks_last():
    result = retrieval_metrics(torch.full((5, 5), 0.3))
    assert result["q2g/R@1"] == 0.0 and result["g2q/R@1"] == 0.0
    assert result["q2g/R@5"] == 100.0  # the positive is last of 5
    assert result["q2g/median_rank"] == 5.0
    assert result["q2g/MRR"] == pytest.approx(0.2)


def test_perfect_retrieval_reaches_rsum_600():
    result = retrieval_metrics(torch.eye(6) + 0.01 * torch.arange(36.0).view(6, 6) / 36)
    assert result["rsum"] == pytest.approx(600.0)
    assert result["q2g/MRR"] == 1.0 and result["g2q/median_rank"] == 1.0


def test_ranking_errors():
    with pytest.raises(ValueError, match=r"ranking_metrics.*non-square.*pass `positives`"):
        ranking_metrics(torch.rand(3, 5))
    with pytest.raises(ValueError, match=r"retrieval_metrics.*non-square"):
        retrieval_metrics(torch.rand(3, 5))
    nan = torch.eye(3)
    nan[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"ranking_metrics.*NaN/Inf"):
        ranking_metrics(nan)
    with pytest.raises(ValueError, match=r"retrieval_metrics.*NaN/Inf"):
        retrieval_metrics(torch.eye(3) * float("inf"))
    positives = torch.eye(3, dtype=torch.bool)
    positives[1, 1] = False
    with pytest.raises(ValueError, match=r"query rows \[1\].*no positive"):
        ranking_metrics(torch.rand(3, 3), positives)
    positives = torch.tensor([[True, True, False], [False, True, False]])
    with pytest.raises(ValueError, match=r"gallery columns \[2\].*no positive"):
        retrieval_metrics(torch.rand(2, 3), positives)
    with pytest.raises(TypeError, match=r"bool"):
        ranking_metrics(torch.rand(3, 3), torch.eye(3))
    with pytest.raises(ValueError, match=r"shape"):
        ranking_metrics(torch.rand(3, 3), torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"'ks'"):
        ranking_metrics(torch.rand(3, 3), ks=(0, 1))
    with pytest.raises(TypeError, match=r"'ks'"):
        ranking_metrics(torch.rand(3, 3), ks=5)
    with pytest.raises(ValueError, match=r"shape"):
        ranking_metrics(torch.rand(3))


def test_classification_hand_checked():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [0.0, 2.0, 0.0]])
    target = torch.tensor([0, 1, 2, 2])
    result = classification_metrics(logits, target)
    # Per-class F1: class 0 = 1; class 1: precision 1/2, recall 1 -> 2/3; class 2: precision 1, recall 1/2 -> 2/3.
    assert result == {"accuracy": pytest.approx(3 / 4), "macro_f1": pytest.approx(7 / 9)}
    assert all(isinstance(v, float) for v in result.values())


def test_classification_errors():
    with pytest.raises(ValueError, match=r"classification_metrics.*4 samples.*3"):
        classification_metrics(torch.rand(4, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\)"):
        classification_metrics(torch.rand(2, 3), torch.tensor([0, 3]))
    with pytest.raises(TypeError, match=r"\.long\(\)"):
        classification_metrics(torch.rand(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"no samples"):
        classification_metrics(torch.rand(0, 3), torch.zeros(0, dtype=torch.long))


def test_multilabel_hand_checked():
    logits = torch.tensor([[3.0, -2.0, -1.0, -3.0],
                           [-3.0, 2.0, -0.5, -3.0]])
    target = torch.tensor([[1, 0, 1, 0],
                           [0, 1, 0, 0]])
    result = multilabel_metrics(logits, target)
    # Predictions [[1, 0, 0, 0], [0, 1, 0, 0]]: row 0 misses label 2 -> subset accuracy 1/2.
    # Micro: tp 2, fp 0, fn 1 -> F1 0.8. Macro: labels 0, 1 -> 1; label 2 -> 0; label 3 (no positive, no
    # prediction) -> 0 -> 2/4. mAP over labels 0-2: AP 1, 1, and 1/2 for label 2 (the negative scores higher).
    assert result == {"subset_accuracy": pytest.approx(0.5), "micro_f1": pytest.approx(0.8),
                      "macro_f1": pytest.approx(0.5), "mAP": pytest.approx(2.5 / 3)}
    # Threshold 0.25 also predicts label 2 (sigmoid(-1) = 0.27, sigmoid(-0.5) = 0.38): tp 3, fp 1 -> micro-F1 6/7.
    assert multilabel_metrics(logits, target, threshold=0.25)["micro_f1"] == pytest.approx(6 / 7)
    assert multilabel_metrics(logits, target, threshold=0.99)["micro_f1"] == 0.0
    assert multilabel_metrics(logits, torch.zeros(2, 4))["mAP"] == 0.0


def test_multilabel_errors():
    with pytest.raises(ValueError, match=r"multilabel_metrics.*one shape"):
        multilabel_metrics(torch.rand(3, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"0/1"):
        multilabel_metrics(torch.rand(2, 2), torch.tensor([[0, 2], [1, 0]]))
    with pytest.raises(ValueError, match=r"'threshold'"):
        multilabel_metrics(torch.rand(2, 2), torch.ones(2, 2), threshold=1.5)


def test_regression_hand_checked():
    pred = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    target = torch.tensor([1.0, 2.0, 3.0, 6.0])
    # Errors 0, 0, 0, 2: MSE 4/4, MAE 2/4; R^2 = 1 - 4 / (4 + 1 + 0 + 9).
    assert regression_metrics(pred, target) == {"mse": pytest.approx(1.0), "mae": pytest.approx(0.5),
                                                "r2": pytest.approx(1 - 4 / 14)}
    two = regression_metrics(torch.stack([pred.flatten(), target], 1), torch.stack([target, target], 1))
    assert two == {"mse": pytest.approx(0.5), "mae": pytest.approx(0.25), "r2": pytest.approx((1 - 4 / 14 + 1) / 2)}


def test_regression_errors():
    with pytest.raises(ValueError, match=r"regression_metrics.*\(4,\) and \(3,\)"):
        regression_metrics(torch.rand(4), torch.rand(3))
    with pytest.raises(ValueError, match=r"at least 2"):
        regression_metrics(torch.rand(1), torch.rand(1))
    with pytest.raises(ValueError, match=r"NaN/Inf"):
        regression_metrics(torch.tensor([1.0, math.nan]), torch.rand(2))
