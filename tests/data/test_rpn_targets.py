"""RPN targets against a slow, obvious reference on small random cases."""
import math

import numpy as np
import pytest

from gluon_maskrcnn.data.rpn_targets import RPNTargetGenerator

EPS = float(np.spacing(np.float32(1.0)))


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_labels(anchors, gts, width, height, pos=0.7, neg=0.3):
    """Labels before subsampling, one anchor and one box at a time."""
    ious = []
    for a in anchors:
        inside = a[0] >= 0 and a[1] >= 0 and a[2] < width and a[3] < height
        ious.append([_iou(a, g) if inside else -1.0 for g in gts])
    best_for_gt = [max(ious[i][j] for i in range(len(anchors))) for j in range(len(gts))]
    labels, matches = [], []
    for row in ious:
        best = max(row)
        label = 0
        if any(row[j] + EPS > best_for_gt[j] for j in range(len(gts))) or best >= pos:
            label = 1
        if 0 <= best < neg:
            label = -1
        labels.append(label)
        matches.append(int(np.argmax(row)))
    return np.array(labels), np.array(matches)


def _random_gts(rng, n, h, w):
    xy = rng.uniform(0, [w * 0.7, h * 0.7], size=(n, 2))
    wh = rng.uniform(8, 60, size=(n, 2))
    return np.concatenate([xy, np.minimum(xy + wh, [w - 1, h - 1])], axis=1).astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("fpn", [True, False])
def test_labels_and_box_targets_match_reference(seed, fpn):
    rng = np.random.RandomState(seed)
    h, w = 70, 90
    strides, sizes = ((8, 16), ((16,), (32,))) if fpn else ((16,), ((16, 32, 64),))
    gen = RPNTargetGenerator(strides, sizes, (0.5, 1, 2), num_sample=10 ** 9, pos_ratio=0.5)
    gts = _random_gts(rng, rng.randint(1, 4), h, w)
    cls_t, box_t, box_m = gen(gts, h, w, rng=rng)
    anchors = gen.anchors(h, w)
    labels, matches = reference_labels(anchors, gts, w, h)
    np.testing.assert_array_equal(cls_t, np.where(labels == 1, 1, np.where(labels == -1, 0, -1)))
    for i in np.flatnonzero(labels == 1):
        a, g = anchors[i], gts[matches[i]]
        aw, ah, gw, gh = a[2] - a[0], a[3] - a[1], g[2] - g[0], g[3] - g[1]
        expected = [((g[0] + gw / 2) - (a[0] + aw / 2)) / aw, ((g[1] + gh / 2) - (a[1] + ah / 2)) / ah,
                    math.log(gw / aw), math.log(gh / ah)]
        np.testing.assert_allclose(box_t[i], expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(box_m[i], 1)
    assert np.all(box_t[labels != 1] == 0) and np.all(box_m[labels != 1] == 0)


def test_subsampling_quota():
    rng = np.random.RandomState(0)
    gen = RPNTargetGenerator((4,), ((16,),), (0.5, 1, 2), num_sample=64, pos_ratio=0.25)
    gts = np.array([[10, 10, 30, 30], [40, 40, 60, 60], [5, 40, 25, 60]], np.float32)
    full = RPNTargetGenerator((4,), ((16,),), (0.5, 1, 2), num_sample=10 ** 9)(gts, 64, 64, rng=rng)[0]
    cls_t = gen(gts, 64, 64, rng=rng)[0]
    num_pos, num_neg = (cls_t == 1).sum(), (cls_t == 0).sum()
    assert num_pos == min(16, (full == 1).sum())
    assert num_neg == 64 - num_pos
    assert np.all(full[cls_t == 1] == 1) and np.all(full[cls_t == 0] == 0)  # subsets of candidates


def test_no_ground_truth_gives_negatives_inside_only():
    gen = RPNTargetGenerator((8,), ((32,),), (1,), num_sample=10 ** 9)
    cls_t, _, box_m = gen(np.zeros((0, 4)), 64, 64)
    anchors = gen.anchors(64, 64)
    inside = (anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] < 64) & (anchors[:, 3] < 64)
    np.testing.assert_array_equal(cls_t, np.where(inside, 0, -1))
    assert box_m.sum() == 0


def test_padding_region_is_ignored_and_layout_matches_padded_size():
    gen = RPNTargetGenerator((8, 16), ((16,), (32,)), (1,), num_sample=10 ** 9)
    gts = np.array([[4, 4, 40, 40]], np.float32)
    small = gen(gts, 48, 48)[0]
    padded = gen(gts, 48, 48, pad_h=64, pad_w=80)[0]
    assert len(padded) == len(gen.anchors(64, 80)) == (8 * 10 + 4 * 5)
    anchors = gen.anchors(64, 80)
    beyond = (anchors[:, 2] >= 48) | (anchors[:, 3] >= 48)
    assert np.all(padded[beyond] == -1)
    assert (padded == 1).sum() == (small == 1).sum()
