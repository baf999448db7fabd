"""Second-stage detections (per-class NMS, force_nms, score threshold) on hand-built cases."""
import numpy as np
import pytest
from mxnet import nd

from gluon_maskrcnn.modeling.postprocess import detect

A, B, C = [0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]  # IoU(A, B) = 81/119 = 0.68
# class probabilities (background, class 0, class 1) of each ROI, given as log-probabilities
PROBS = np.float32([[0.1, 0.8, 0.1],  # A
                    [0.1, 0.6, 0.3],  # B
                    [0.5, 0.005, 0.495]])  # C


def _detect(**kwargs):
    cls_pred = nd.array(np.log(PROBS)[None])  # (1, 3, 3)
    box_pred = nd.zeros((1, 3, 2, 4))  # zero deltas: every class's box is its ROI
    ids, scores, boxes = detect(nd, cls_pred, box_pred, nd.array([[A, B, C]]), num_class=2, num_rois=3,
                                clip=4.42, max_dets=5, **kwargs)
    return ids.asnumpy()[0, :, 0], scores.asnumpy()[0, :, 0], boxes.asnumpy()[0]


def test_nms_runs_per_class_and_detections_come_best_first():
    """Class 0: A (0.8) suppresses B (0.6); C (0.005) is under the 0.01 threshold. Class 1:
    C (0.495) and B (0.3) do not overlap; B suppresses A (0.1). Two padding rows follow."""
    ids, scores, boxes = _detect()
    np.testing.assert_array_equal(ids, [0, 1, 1, -1, -1])
    np.testing.assert_allclose(scores[:3], [0.8, 0.495, 0.3], rtol=1e-5)
    np.testing.assert_allclose(boxes[:3], [A, C, B], atol=1e-4)


def test_force_nms_suppresses_across_classes():
    """A (class 0, 0.8) now also suppresses B of class 1."""
    ids, scores, boxes = _detect(force_nms=True)
    np.testing.assert_array_equal(ids, [0, 1, -1, -1, -1])
    np.testing.assert_allclose(scores[:2], [0.8, 0.495], rtol=1e-5)
    np.testing.assert_allclose(boxes[:2], [A, C], atol=1e-4)


@pytest.mark.parametrize("thresh, expected", [(0.5, [0, -1, -1, -1, -1]), (0.9, [-1] * 5)])
def test_the_score_threshold_drops_before_nms(thresh, expected):
    ids, scores, _ = _detect(score_thresh=thresh)
    np.testing.assert_array_equal(ids, expected)
    assert np.all(scores[ids < 0] <= 0)
