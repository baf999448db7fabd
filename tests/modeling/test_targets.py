"""RCNN sampler, RCNN target generator and mask targets on hand-built cases."""
import mxnet as mx
import numpy as np
from mxnet import nd

from gluon_maskrcnn.boxes import encode_boxes
from gluon_maskrcnn.modeling.mask_targets import MaskTargetGenerator
from gluon_maskrcnn.modeling.roi_heads import RCNNTargetGenerator, RCNNTargetSampler


def _proposals():
    # 4 near-copies of the gt (IoU >= 0.5), 4 far boxes, 2 invalid (score -1)
    near = [[10, 10, 50, 50], [12, 10, 52, 50], [10, 14, 50, 54], [8, 8, 48, 48]]
    far = [[100, 100, 140, 140], [150, 10, 190, 50], [10, 150, 50, 190], [120, 150, 180, 190]]
    rois = nd.array([near + far + [[-1, -1, -1, -1]] * 2])
    scores = nd.array([[[0.9]] * 8 + [[-1.0]] * 2])
    return rois, scores


def test_sampler_one_gt():
    rois, scores = _proposals()
    gt = nd.array([[[10, 10, 50, 50], [-1, -1, -1, -1]]])  # one real box, one padding row
    sampler = RCNNTargetSampler(1, num_proposal=10, num_sample=8, pos_iou_thresh=0.5, pos_ratio=0.5,
                                max_num_gt=2)
    mx.random.seed(0)
    sampled, samples, matches = sampler(rois, scores, gt)
    samples, matches, sampled = samples.asnumpy()[0], matches.asnumpy()[0], sampled.asnumpy()[0]
    assert samples.shape == (8,)
    # 5 positives exist (4 near + the gt itself); max_pos = 4 fill the first 4 slots
    np.testing.assert_array_equal(samples[:4], [1, 1, 1, 1])
    assert np.all(matches[:4] == 0)
    # the other slots: negatives first (4 far boxes), never the invalid proposals
    np.testing.assert_array_equal(samples[4:], [-1, -1, -1, -1])
    assert np.all(sampled[4:, 0] >= 100) | np.all(sampled[4:].max(axis=1) >= 140)


def test_sampler_orders_each_kind_by_the_given_keys():
    """With keys, the positives taken are the 4 with the largest keys among the 5, in key order;
    the slots after them take the negatives in key order. Exact, and the same every call."""
    rois, scores = _proposals()
    gt = nd.array([[[10, 10, 50, 50], [-1, -1, -1, -1]]])
    sampler = RCNNTargetSampler(1, num_proposal=10, num_sample=8, pos_iou_thresh=0.5, pos_ratio=0.5,
                                max_num_gt=2)
    assert sampler.key_count == 12
    # rows: 4 near (positive), 4 far (negative), 2 invalid, the gt (positive), padding
    keys = nd.array([[0.1, 0.7, 0.3, 0.9, 0.2, 0.8, 0.6, 0.4, 0.99, 0.98, 0.5, 0.97]])
    first = sampler(rois, scores, gt, keys)
    again = sampler(rois, scores, gt, keys)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    expected = [[8, 8, 48, 48], [12, 10, 52, 50], [10, 10, 50, 50], [10, 14, 50, 54],  # keys .9 .7 .5 (gt) .3
                [150, 10, 190, 50], [10, 150, 50, 190], [120, 150, 180, 190], [100, 100, 140, 140]]  # .8 .6 .4 .2
    np.testing.assert_array_equal(first[0].asnumpy()[0], expected)
    np.testing.assert_array_equal(first[1].asnumpy()[0], [1, 1, 1, 1, -1, -1, -1, -1])


def test_sampler_no_gt_gives_only_negatives():
    rois, scores = _proposals()
    gt = -nd.ones((1, 2, 4))
    sampler = RCNNTargetSampler(1, num_proposal=10, num_sample=6, pos_iou_thresh=0.5, pos_ratio=0.5,
                                max_num_gt=2)
    _, samples, _ = sampler(rois, scores, gt)
    samples = samples.asnumpy()[0]
    assert (samples == 1).sum() == 0
    assert (samples == -1).sum() == 6  # 8 valid proposals available


def test_target_generator_class_specific_boxes():
    rois = nd.array([[[10, 10, 50, 50], [12, 10, 52, 50], [100, 100, 140, 140]]])
    samples = nd.array([[1, 1, -1]])
    matches = nd.array([[0, 1, 0]])
    gt_boxes = nd.array([[[10, 12, 50, 52], [14, 10, 54, 50]]])
    gt_labels = nd.array([[[2], [0]]])
    gen = RCNNTargetGenerator(num_class=3, max_pos=2)
    cls_t, box_t, box_m, indices = gen(rois, samples, matches, gt_labels, gt_boxes)
    np.testing.assert_array_equal(cls_t.asnumpy(), [[3, 1, 0]])
    expected = encode_boxes(gt_boxes.asnumpy()[0], rois.asnumpy()[0, :2], stds=(0.1, 0.1, 0.2, 0.2))
    np.testing.assert_allclose(box_t.asnumpy()[0, :, 0], expected, rtol=1e-5, atol=1e-6)
    masks = box_m.asnumpy()[0]  # (P, C, 4): only each ROI's own class
    np.testing.assert_array_equal(masks[:, :, 0], [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(indices.asnumpy(), [[0, 1]])


def test_mask_targets_roi_aligned_and_weighted_on_positives():
    masks = np.zeros((1, 2, 40, 40), np.float32)
    masks[0, 0, 10:30, 10:30] = 1  # gt 0: a 20x20 square
    masks[0, 1, :, :20] = 1  # gt 1: left half
    rois = nd.array([[[10, 10, 30, 30], [0, 0, 40, 40]]])
    gen = MaskTargetGenerator(1, mask_size=(4, 4))
    targets, weights = gen(rois, nd.array(masks), nd.array([[0, 1]]), nd.array([[2, 1]]))
    assert targets.shape == (1, 2, 4, 4)
    np.testing.assert_allclose(targets.asnumpy()[0, 0], np.ones((4, 4)), atol=1e-6)
    np.testing.assert_allclose(targets.asnumpy()[0, 1], [[1, 1, 0, 0]] * 4, atol=1e-6)
    np.testing.assert_array_equal(weights.asnumpy(), [[1, 1]])
    # slots that are not positives (background 0, ignored -1) get no weight
    _, weights = gen(rois, nd.array(masks), nd.array([[0, 1]]), nd.array([[0, -1]]))
    np.testing.assert_array_equal(weights.asnumpy(), [[0, 0]])


def test_mask_targets_batch_of_two_uses_each_images_masks():
    masks = np.zeros((2, 1, 20, 20), np.float32)
    masks[1, 0] = 1
    rois = nd.array([[[0, 0, 20, 20]], [[0, 0, 20, 20]]])
    gen = MaskTargetGenerator(2, mask_size=(2, 2))
    targets, _ = gen(rois, nd.array(masks), nd.zeros((2, 1)), nd.ones((2, 1)))
    np.testing.assert_allclose(targets.asnumpy()[:, 0, 0, 0], [0, 1], atol=1e-6)
