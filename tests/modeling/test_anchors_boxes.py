"""Anchors and box coding against hand-computed values and GluonCV's own anchors."""
import mxnet as mx
import numpy as np
import pytest

from gluon_maskrcnn.boxes import (anchor_grid, base_anchors, box_iou, decode_boxes, encode_boxes,
                                  feature_sizes)
from gluon_maskrcnn.modeling.anchors import AnchorGenerator


def test_base_anchors_hand_computed():
    # stride 16, size 32: ratio 0.5 -> w=round(sqrt(512))=23, h=round(11.5)=12 (half to even),
    # scaled by 2 -> 46x24 centred at 7.5; ratio 1 -> 32x32; ratio 2 -> 11x22 scaled -> 22x44
    anchors = base_anchors(16, (32,), (0.5, 1, 2))
    np.testing.assert_array_equal(anchors, [[-15, -4, 30, 19], [-8, -8, 23, 23], [-3, -14, 18, 29]])


def test_base_anchors_order_is_ratio_major():
    anchors = base_anchors(16, (32, 64), (0.5, 1))
    widths = anchors[:, 2] - anchors[:, 0] + 1
    np.testing.assert_array_equal(widths, [46, 92, 32, 64])


def test_anchor_grid_shifts_by_stride():
    grid = anchor_grid(8, (32,), (1,), 3, 4)  # (3, 4, 4)
    assert grid.shape == (3, 4, 4)
    np.testing.assert_array_equal(grid[1, 2], base_anchors(8, (32,), (1,))[0] + [16, 8, 16, 8])


@pytest.mark.parametrize("stride,sizes,alloc", [(16, (32, 64, 128, 256, 512), (8, 10)), (4, (32,), (12, 12))])
def test_anchors_equal_gluoncv(stride, sizes, alloc):
    from gluoncv.model_zoo.rcnn.rpn.anchor import RPNAnchorGenerator

    scales = tuple(s / 16 for s in sizes)
    ref = RPNAnchorGenerator(stride, 16, (0.5, 1, 2), scales, alloc)
    ref.initialize()
    ours = AnchorGenerator(stride, sizes, (0.5, 1, 2), alloc)
    ours.initialize()
    feat = mx.nd.zeros((1, 1, alloc[0] - 1, alloc[1] - 2))
    np.testing.assert_array_equal(ours(feat).asnumpy(), ref(feat).asnumpy())


@pytest.mark.parametrize("h,w", [(64, 64), (97, 131), (600, 800), (801, 1217)])
def test_feature_sizes_match_resnet_fpn(h, w):
    import gluon_maskrcnn as gm

    net = gm.get_model("mask_rcnn_fpn_resnet18_v1b_coco", pretrained_base=False)
    feats = net.features(mx.nd.zeros((1, 3, h, w)))
    assert feature_sizes(h, w, (4, 8, 16, 32, 64)) == [f.shape[2:] for f in feats]


def test_box_iou_hand_values_and_degenerate():
    a = np.array([[0, 0, 10, 10], [5, 5, 5, 9]], np.float32)  # second box has zero width
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    iou = box_iou(a, b)
    np.testing.assert_allclose(iou[0], [1.0, 50 / 150, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(iou[1], [0, 0, 0])
    assert box_iou(a, np.zeros((0, 4))).shape == (2, 0)


def test_encode_hand_values_and_roundtrip():
    anchors = np.array([[0, 0, 10, 20]], np.float32)  # centre (5, 10), size 10 x 20
    gt = np.array([[2, 4, 22, 24]], np.float32)  # centre (12, 14), size 20 x 20
    deltas = encode_boxes(gt, anchors, stds=(0.1, 0.1, 0.2, 0.2))
    np.testing.assert_allclose(deltas, [[7 / 10 / 0.1, 4 / 20 / 0.1, np.log(2) / 0.2, 0.0]], rtol=1e-5)
    np.testing.assert_allclose(decode_boxes(deltas, anchors, stds=(0.1, 0.1, 0.2, 0.2)), gt, atol=1e-4)


def test_decode_clips_log_size():
    anchors = np.array([[0, 0, 10, 10]], np.float32)
    boxes = decode_boxes(np.array([[0, 0, 100, 100]], np.float32), anchors, clip=np.log(4))
    np.testing.assert_allclose(boxes, [[-15, -15, 25, 25]], rtol=1e-5)


def test_mxnet_box_decode_agrees_with_numpy():
    rng = np.random.RandomState(0)
    anchors = np.sort(rng.uniform(0, 100, (1, 50, 4)).astype(np.float32).reshape(50, 2, 2), axis=1)
    anchors = anchors.transpose(0, 2, 1).reshape(1, 50, 4)[:, :, [0, 2, 1, 3]]
    deltas = rng.normal(0, 1, (1, 50, 4)).astype(np.float32)
    ours = decode_boxes(deltas[0], anchors[0], stds=(0.1, 0.1, 0.2, 0.2), clip=4.42)
    mx_out = mx.nd.contrib.box_decode(mx.nd.array(deltas), mx.nd.array(anchors), 0.1, 0.1, 0.2, 0.2,
                                      clip=4.42, format="corner")
    np.testing.assert_allclose(mx_out.asnumpy()[0], ours, rtol=1e-5, atol=1e-3)
