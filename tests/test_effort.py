"""The pre-label/correction diff and its cost, on hand-made boxes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from detal.effort import Effort, box_iou, diff_boxes

A = [0.0, 0.0, 10.0, 10.0]  # a 10 x 10 box
A_NEAR = [0.0, 0.0, 10.0, 11.0]  # IoU 100/110 = 0.909 with A
A_SHIFTED = [0.0, 0.0, 10.0, 16.0]  # IoU 100/160 = 0.625 with A
A_OFF = [0.0, 0.0, 10.0, 25.0]  # IoU 100/250 = 0.4: no match
B = [50.0, 50.0, 60.0, 60.0]


@pytest.mark.parametrize(
    ("shipped", "shipped_cls", "returned", "returned_cls", "outcome", "drawn"),
    [
        ([A_NEAR], [1], [A], [1], ("verified",), 0),
        ([A_SHIFTED], [1], [A], [1], ("adjusted",), 0),
        ([A_NEAR], [2], [A], [1], ("relabeled",), 0),
        ([A_OFF], [1], [A], [1], ("deleted",), 1),  # too far off: deleted, and drawn anew
        ([B], [1], [], [], ("deleted",), 0),
        ([], [], [A, B], [1, 2], (), 2),  # nothing shipped (the initial batch): all drawn
        ([], [], [], [], (), 0),  # an empty image, returned empty
        ([A_NEAR, A], [1, 1], [A], [1], ("deleted", "verified"), 0),  # a duplicate: the better one matches
        # a class swap of two boxes: both relabeled, nothing drawn
        ([A, B], [2, 1], [A, B], [1, 2], ("relabeled", "relabeled"), 0),
        # one of each: verified, adjusted, relabeled, deleted, and one drawn
        ([A, [20, 0, 30, 16], [40, 0, 50, 10], [80, 80, 90, 90]], [0, 1, 2, 3],
         [A, [20, 0, 30, 10], [40, 0, 50, 10], B], [0, 1, 5, 4],
         ("verified", "adjusted", "relabeled", "deleted"), 1),
    ],
)
def test_diff_table(shipped, shipped_cls, returned, returned_cls, outcome, drawn):
    d = diff_boxes(np.asarray(shipped), shipped_cls, np.asarray(returned), returned_cls)
    assert d.outcome == outcome and d.drawn == drawn
    assert d.shipped == len(shipped) and d.returned == len(returned)


def test_same_class_is_matched_before_a_higher_iou_of_another_class():
    # the shipped box overlaps a class-1 box at 0.625 and a class-2 box at 0.909: it is adjusted, not relabeled
    d = diff_boxes(np.asarray([A]), [1], np.asarray([A_SHIFTED, A_NEAR]), [1, 2])
    assert d.outcome == ("adjusted",) and d.iou[0] == pytest.approx(0.625) and d.drawn == 1


def test_ties_go_to_the_more_confident_box():
    d = diff_boxes(np.asarray([A, A]), [1, 1], np.asarray([A]), [1], shipped_conf=[0.3, 0.9])
    assert d.outcome == ("deleted", "verified") and d.correct == (False, True)


def test_thresholds_are_checked():
    with pytest.raises(ValueError, match="iou_match"):
        diff_boxes(np.asarray([A]), [1], np.asarray([A]), [1], iou_match=0.8, iou_verify=0.7)


def test_cost_by_hand():
    e = Effort()  # verify 1.6, adjust 4, relabel 3, delete 1.5, draw 7, per image 3
    counts = {"verified": 2, "adjusted": 1, "relabeled": 1, "deleted": 3, "drawn": 2}
    assert e.seconds(counts) == pytest.approx(3 + 2 * 1.6 + 4 + 3 + 3 * 1.5 + 2 * 7.0)  # 31.7
    assert e.from_scratch(returned=6) == pytest.approx(3 + 6 * 7.0)  # 45
    assert Effort(draw=25.0).from_scratch(6) == pytest.approx(153.0)
    assert e.seconds({}) == pytest.approx(3.0)  # open, look, submit
    with pytest.raises(ValueError, match="effort_seconds.draw"):
        Effort(draw=-1.0)


def test_box_iou_by_hand():
    assert box_iou(np.asarray([A]), np.asarray([A_NEAR, A_SHIFTED, B]))[0] == pytest.approx([100 / 110, 0.625, 0.0])


_box = st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(1, 20), st.integers(1, 20))


@given(st.lists(st.tuples(_box, st.integers(0, 2)), max_size=6), st.lists(st.tuples(_box, st.integers(0, 2)), max_size=6))
def test_counts_conserve_boxes(shipped, returned):
    def xyxy(rows):
        return np.asarray([[x, y, x + w, y + h] for (x, y, w, h), _ in rows], dtype=float).reshape(-1, 4)

    d = diff_boxes(xyxy(shipped), [c for _, c in shipped], xyxy(returned), [c for _, c in returned])
    c = d.counts()
    assert c["verified"] + c["adjusted"] + c["relabeled"] + c["deleted"] == len(shipped)
    assert c["verified"] + c["adjusted"] + c["relabeled"] + c["drawn"] == len(returned)


class _Image:
    """A returned image's figures, as the store keeps them."""

    def __init__(self, prelabeled, **counts):
        self.prelabeled = prelabeled
        self._counts = {"verified": 0, "adjusted": 0, "relabeled": 0, "deleted": 0, "drawn": 0, **counts}
        c = self._counts
        self.shipped = c["verified"] + c["adjusted"] + c["relabeled"] + c["deleted"]
        self.returned = c["verified"] + c["adjusted"] + c["relabeled"] + c["drawn"]

    def counts(self):
        return dict(self._counts)


def test_batch_cost_by_hand():
    from detal.effort import batch_cost

    images = [_Image(True, verified=2, adjusted=1, relabeled=1, deleted=3, drawn=2),  # shipped 7, returned 6
              _Image(True, deleted=1),  # a false pre-label on an empty image
              _Image(False, drawn=4)]  # the initial batch: nothing shipped, all drawn
    b = batch_cost(images, Effort())
    assert (b.images, b.prelabeled_images, b.shipped_boxes, b.returned_boxes) == (3, 2, 8, 10)
    assert b.counts == {"verified": 2, "adjusted": 1, "relabeled": 1, "deleted": 4, "drawn": 6}
    assert b.precision == pytest.approx(3 / 8)  # verified + adjusted of the shipped boxes
    assert b.recall == pytest.approx(3 / 6)  # of the returned boxes of the pre-labeled images only
    assert b.annotator_s == pytest.approx(31.7 + (3 + 1.5) + (3 + 4 * 7.0))
    assert b.from_scratch_s == pytest.approx((3 + 6 * 7.0) + 3 + (3 + 4 * 7.0))
    slow = batch_cost(images, Effort(draw=25.0))
    assert slow.annotator_s - b.annotator_s == pytest.approx(6 * 18.0)  # six drawn boxes, 18 s more each


@pytest.mark.parametrize(
    ("images", "precision", "recall"),
    [
        ([], None, None),  # nothing came back
        ([_Image(False, drawn=3)], None, None),  # no pre-labels shipped: nothing to judge
        ([_Image(True)], None, None),  # pre-labeled, empty both ways
        ([_Image(True, drawn=2)], None, 0.0),  # the model found nothing; two boxes were there
        ([_Image(True, deleted=2)], 0.0, None),  # two false boxes on an empty image
        ([_Image(True, verified=1, relabeled=1)], 0.5, 0.5),  # a class swap is a miss both ways
    ],
)
def test_batch_precision_and_recall_edges(images, precision, recall):
    from detal.effort import batch_cost

    b = batch_cost(images, Effort())
    assert (b.precision, b.recall) == (precision, recall)
    assert b.annotator_s == pytest.approx(sum(Effort().seconds(i.counts()) for i in images))
