"""RPN proposals and multi-level ROIAlign on exact values."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon, nd

from gluon_maskrcnn.modeling.roi_align import MultiLevelROIAlign, roi_levels, with_batch_index
from gluon_maskrcnn.modeling.rpn import RPN, decode_proposals


def test_decode_proposals_clips_and_drops_small_boxes():
    anchors = nd.array([[[-10, -10, 20, 20], [10, 10, 10.5, 10.5], [30, 30, 90, 50]]])
    logits = nd.array([[[2.0], [3.0], [-1.0]]])
    img = nd.zeros((1, 3, 40, 60))
    out = decode_proposals(nd, anchors, logits, nd.zeros((1, 3, 4)), img, clip=4.42, min_size=2)
    np.testing.assert_allclose(out.asnumpy()[0], [[2.0, 0, 0, 20, 20],  # clipped to the image
                                                  [-1e30, -1, -1, -1, -1],  # 1.5 px wide < 2
                                                  [-1.0, 30, 30, 60, 40]])  # clipped to (W, H)


def _logit_rpn(fast):
    """A 4x4 grid of 32-px anchors (stride 16) on a 64x64 image whose objectness logit at a cell
    is the input feature's channel 0 there (relu'd), with zero box deltas."""
    from gluon_maskrcnn import ops

    rpn = RPN(8, (16,), ((32,),), (1,), (4, 4), clip=4.42, test_pre_nms=16, test_post_nms=3)
    rpn.initialize()
    feat = nd.zeros((1, 4, 4, 4))
    rpn(nd.zeros((1, 3, 64, 64)), feat)
    for param in rpn.collect_params().values():
        param.set_data(nd.zeros(param.shape))
    conv = rpn.conv1[0].weight  # the 3x3 conv before relu
    conv.set_data(_center_tap(conv.shape))
    rpn.score.weight.set_data(_first_channel(rpn.score.weight.shape))
    rpn.fast = fast and ops.available(mx.cpu())
    return rpn


def _center_tap(shape):
    weight = np.zeros(shape, np.float32)
    weight[0, 0, 1, 1] = 1  # hidden channel 0 = input channel 0 at the same cell
    return nd.array(weight)


def _first_channel(shape):
    weight = np.zeros(shape, np.float32)
    weight[0, 0] = 1  # logit = hidden channel 0
    return nd.array(weight)


@pytest.mark.parametrize("fast", [False, True])
def test_rpn_ranks_by_logit_even_where_the_probabilities_tie(fast):
    """Logits 20, 25, 30 and 35 all give probability 1.0 in float32: the three proposals must be
    the anchors of logits 35, 30 and 25, in that order, each with probability exactly 1."""
    rpn = _logit_rpn(fast)
    logits = np.ones((4, 4), np.float32)
    logits[0, 0], logits[3, 0], logits[0, 3], logits[3, 3] = 20, 25, 30, 35
    feat = nd.zeros((1, 4, 4, 4))
    feat[0, 0] = nd.array(logits)
    scores, rois = rpn(nd.zeros((1, 3, 64, 64)), feat)
    anchors = rpn.anchor_generator(feat).asnumpy()[0]  # (16, 4), row-major over the cells
    expected = np.clip(anchors[[15, 3, 12]], 0, 64)  # cells (3, 3), (0, 3), (3, 0)
    np.testing.assert_allclose(rois.asnumpy()[0], expected, atol=1e-5)
    np.testing.assert_array_equal(scores.asnumpy()[0, :, 0], np.float32([1, 1, 1]))


@pytest.mark.parametrize("fast", [False, True])
def test_rpn_returns_the_highest_distinct_logits_as_probabilities(fast):
    """Distinct logits 0.0, 0.1, ..., 1.5 over the cells: the top three, 1.5, 1.4 and 1.3 (the
    last row's anchors overlap by IoU 1/3, under NMS's 0.7), with their sigmoid."""
    rpn = _logit_rpn(fast)
    feat = nd.zeros((1, 4, 4, 4))
    feat[0, 0] = nd.arange(16).reshape((4, 4)) / 10
    scores, rois = rpn(nd.zeros((1, 3, 64, 64)), feat)
    anchors = rpn.anchor_generator(feat).asnumpy()[0]
    np.testing.assert_allclose(rois.asnumpy()[0], np.clip(anchors[[15, 14, 13]], 0, 64), atol=1e-5)
    np.testing.assert_allclose(scores.asnumpy()[0, :, 0], 1 / (1 + np.exp(-np.float32([1.5, 1.4, 1.3]))),
                               rtol=1e-6)


def test_rpn_training_outputs_cover_all_levels():
    rpn = RPN(8, (4, 8), ((16,), (32,)), (0.5, 1, 2), (16, 16), clip=4.42, train_pre_nms=50,
              train_post_nms=10)
    rpn.initialize()
    feats = [nd.zeros((2, 4, 16, 16)), nd.zeros((2, 4, 8, 8))]
    with mx.autograd.train_mode():
        scores, rois, raw_scores, raw_deltas, anchors = rpn(nd.zeros((2, 3, 64, 64)), *feats)
    n = (16 * 16 + 8 * 8) * 3
    assert raw_scores.shape == (2, n, 1) and raw_deltas.shape == (2, n, 4) and anchors.shape == (1, n, 4)
    assert rois.shape == (2, 10, 4)


def test_roi_levels_canonical_224_is_level_4():
    boxes = nd.array([[0, 0, 0, 223, 223], [0, 0, 0, 111, 111], [0, 0, 0, 447, 447],
                      [0, 0, 0, 3, 3], [0, 0, 0, 2000, 2000], [0, 5, 5, 5, 5]])
    np.testing.assert_array_equal(roi_levels(nd, boxes, 2, 5).asnumpy(), [4, 3, 5, 2, 5, 2])


def test_with_batch_index():
    boxes = nd.arange(2 * 3 * 4).reshape((2, 3, 4))
    rois = with_batch_index(nd, boxes).asnumpy()
    np.testing.assert_array_equal(rois[:, 0], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(rois[4, 1:], boxes.asnumpy()[1, 1])


def _pyramid(rng):
    return [nd.array(rng.normal(size=(1, 4, 64 // s, 64 // s)).astype(np.float32)) for s in (4, 8, 16, 32)]


def _one_by_one(feats, rois, size):
    """Reference: each ROI pooled alone on its own level."""
    levels = roi_levels(nd, rois, 2, 5).asnumpy().astype(int)
    return np.concatenate([nd.contrib.ROIAlign(feats[level - 2], rois[i:i + 1], size, 1.0 / 2 ** level,
                                               sample_ratio=2).asnumpy()
                           for i, level in enumerate(levels)])


def test_multilevel_roialign_uses_each_rois_level(rng):
    feats = _pyramid(rng)
    rois = nd.array([[0, 4, 4, 40, 40], [0, 0, 0, 150, 150], [0, 10, 10, 20, 20], [0, 0, 0, 400, 300]])
    pooled = MultiLevelROIAlign((3, 3), (4, 8, 16, 32))(rois, *feats).asnumpy()
    np.testing.assert_allclose(pooled, _one_by_one(feats, rois, (3, 3)), rtol=1e-6)


class _Pool(gluon.HybridBlock):
    def __init__(self):
        super().__init__()
        self.pool = MultiLevelROIAlign((7, 7), (4, 8, 16, 32))

    def hybrid_forward(self, F, boxes, *feats):
        return self.pool(with_batch_index(F, boxes * 1.0), *[f * 1.0 for f in feats])


def test_multilevel_roialign_is_deterministic_hybridized(rng):
    """Regression: MXNet's ROIAlign zeroes element n of ROI 0's row for skipped ROI n."""
    feats = _pyramid(rng)
    xy = rng.uniform(0, 40, size=(1, 300, 2))
    boxes = nd.array(np.concatenate([xy, xy + rng.uniform(2, 60, size=(1, 300, 2))], -1))
    block = _Pool()
    expected = _one_by_one(feats, with_batch_index(nd, boxes), (7, 7))
    np.testing.assert_allclose(block(boxes, *feats).asnumpy(), expected, rtol=1e-5, atol=1e-6)
    block.hybridize(static_alloc=True, static_shape=True)
    for _ in range(10):
        np.testing.assert_allclose(block(boxes, *feats).asnumpy(), expected, rtol=1e-5, atol=1e-6)
