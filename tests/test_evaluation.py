"""The quality figures, on rankings small enough to check by hand."""

import numpy as np
import pytest

from lablr.core.pipeline.metrics import popularity_scores, ranking_metrics, relevance


def test_metrics_follow_the_definitions():
    # photo 1 owns tags 0 and 2 and they rank 1st and 3rd; photo 2 owns tag 4 ranked 6th (last)
    scores = np.array([[6, 5, 4, 3, 2, 1], [1, 2, 3, 4, 5, 0]], dtype=float)
    relevant = relevance([["a", "c"], ["e"]], ["a", "b", "c", "d", "e", "f"])
    relevant[1] = [False, False, False, False, False, True]
    figures = ranking_metrics(scores, relevant)
    assert figures["precision_at_5"] == pytest.approx((2 / 5 + 0 / 5) / 2)
    assert figures["recall_at_5"] == pytest.approx((2 / 2 + 0 / 1) / 2)
    assert figures["map"] == pytest.approx(((1 / 1 + 2 / 3) / 2 + (1 / 6) / 1) / 2)
    assert figures["photos"] == 2


def test_photos_without_any_known_tag_are_not_counted():
    figures = ranking_metrics(np.ones((2, 3)), np.array([[True, False, False], [False, False, False]]))
    assert figures["photos"] == 1


def test_popularity_baseline_ranks_by_count():
    scores = popularity_scores([10, 30, 20], photos=2)
    relevant = np.array([[False, True, False], [True, False, False]])
    figures = ranking_metrics(scores, relevant)
    assert figures["map"] == pytest.approx((1.0 + 1 / 3) / 2)
