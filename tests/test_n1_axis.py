"""The n1 axis of the sweep figures: a tick at every design n1, labels that never overlap."""

import matplotlib.pyplot as plt
import pytest

from simstudy.plotting import _n1_axis


def _labels(n1):
    fig, ax = plt.subplots(figsize=(5, 4))
    try:
        ax.plot(n1, range(len(n1)))  # the sweep figures draw their curves first
        _n1_axis(ax, n1)
        fig.canvas.draw()
        ticks = ax.get_xticklabels()
        boxes = [t.get_window_extent() for t in ticks if t.get_text()]
        return [float(t) for t in ax.get_xticks()], [t.get_text() for t in ticks], boxes
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    "n1",
    [
        [10, 100, 200, 300, 400, 500],
        [50, 250, 500],
        [100, 200, 300, 400, 500, 600, 700],
        [20, 21, 22],
        [10, 1000, 1000000, 1234567],
    ],
)
def test_every_n1_has_a_tick_and_labels_do_not_overlap(n1):
    ticks, texts, boxes = _labels(n1)
    assert ticks == sorted(set(float(v) for v in n1))
    assert texts[-1] == str(max(n1)) and texts[0]  # both ends are labelled, as integers
    for left, right in zip(boxes, boxes[1:]):
        assert left.x1 < right.x0, (texts, left, right)


def test_a_label_is_dropped_only_where_it_would_overlap():
    _, texts, _ = _labels([10, 100, 200, 300, 400, 500])
    assert texts == ["10", "100", "200", "300", "", "500"]
    _, texts, _ = _labels([50, 250, 500])
    assert texts == ["50", "250", "500"]
