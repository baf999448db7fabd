"""RPN training targets in vectorised NumPy, from the anchor parameters alone (no network).

Semantics are GluonCV's (``RPNTargetGenerator`` + ``RPNTargetSampler``):

- anchors crossing the image border (``x1 < 0``, ``y1 < 0``, ``x2 >= W``, ``y2 >= H``) get IoU -1;
- an anchor is positive when it is a best anchor of some ground truth (within float32 eps) or
  its best IoU reaches ``pos_iou_thresh``, then negative when its best IoU is in
  ``[0, neg_iou_thresh)`` (this last rule wins);
- positives are subsampled to ``round(num_sample * pos_ratio)``, negatives to
  ``num_sample - min(#positives, max_pos)``, uniformly at random.

Anchors are laid out as the network lays out its RPN outputs: level by level, each row-major
over the feature map, anchors of a cell contiguous.
"""
import numpy as np

from ..boxes import anchor_grid, encode_boxes, feature_sizes

__all__ = ["RPNTargetGenerator", "sample_anchors"]

_EPS = np.spacing(np.float32(1.0))


def sample_anchors(ious, num_sample, pos_iou_thresh, neg_iou_thresh, pos_ratio, rng, outside=None):
    """Label anchors from their IoU matrix, gt-major: (M, N), invalid anchors' columns -1.

    ``outside`` (N,) marks invalid anchors; it matters only without ground truth (M = 0).
    Returns (samples (N,) float32 in {1, -1, 0}, matches (N,) int64).
    """
    num_anchors = ious.shape[1]
    if ious.shape[0] == 0:  # no ground truth: every valid anchor is background
        matches = np.zeros(num_anchors, np.int64)
        best_per_anchor = np.zeros(num_anchors, np.float32)
        if outside is not None:
            best_per_anchor[outside] = -1
        is_best_for_gt = np.zeros(num_anchors, bool)
    else:
        matches = ious.argmax(axis=0)
        best_per_anchor = ious.max(axis=0)
        best_per_gt = ious.max(axis=1, keepdims=True)  # (M, 1)
        is_best_for_gt = ((ious + _EPS) > best_per_gt).any(axis=0)
    samples = np.zeros(num_anchors, np.float32)
    samples[is_best_for_gt | (best_per_anchor >= pos_iou_thresh)] = 1
    samples[(best_per_anchor < neg_iou_thresh) & (best_per_anchor >= 0)] = -1
    _subsample(samples, num_sample, pos_ratio, rng)
    return samples, matches


def _ious_gt_major(columns, areas, gt_boxes, outside):
    """IoU (M, N) of each ground truth with each anchor; -1 for anchors outside the image.

    ``columns`` are the anchors' x1, y1, x2, y2 as contiguous (N,) arrays: one pass of
    contiguous vector arithmetic per ground truth (M is small), GluonCV's area convention.
    """
    ious = np.empty((len(gt_boxes), len(areas)), np.float32)
    x1, y1, x2, y2 = columns
    for j, (gx1, gy1, gx2, gy2) in enumerate(gt_boxes):
        iw = np.minimum(x2, gx2) - np.maximum(x1, gx1)
        ih = np.minimum(y2, gy2) - np.maximum(y1, gy1)
        inter = np.maximum(iw, 0) * np.maximum(ih, 0)
        union = areas + max(gx2 - gx1, 0) * max(gy2 - gy1, 0) - inter
        np.divide(inter, union, out=ious[j], where=union > 0)
        ious[j][union <= 0] = 0
    ious[:, outside] = -1
    return ious


def _subsample(samples, num_sample, pos_ratio, rng):
    """Disable (set to 0) random positives and negatives above their quotas, in place."""
    max_pos = int(round(num_sample * pos_ratio))
    positives = np.flatnonzero(samples > 0)
    if len(positives) > max_pos:
        samples[rng.choice(positives, len(positives) - max_pos, replace=False)] = 0
    negatives = np.flatnonzero(samples < 0)
    max_neg = num_sample - min(len(positives), max_pos)
    if len(negatives) > max_neg:
        samples[rng.choice(negatives, len(negatives) - max_neg, replace=False)] = 0


class RPNTargetGenerator:
    """RPN targets for an image padded to ``(pad_h, pad_w)`` whose real size is ``(h, w)``.

    Parameters
    ----------
    strides, sizes, ratios, alloc_size :
        The anchor parameters of the network (``net.rpn``'s, or a preset's).
    num_sample, pos_iou_thresh, neg_iou_thresh, pos_ratio :
        Sampling, GluonCV's defaults.
    stds : 4 floats
        Box target normalisation (GluonCV's RPN uses 1).
    """

    def __init__(self, strides, sizes, ratios, num_sample=256, pos_iou_thresh=0.7,
                 neg_iou_thresh=0.3, pos_ratio=0.5, stds=(1.0, 1.0, 1.0, 1.0)):
        self.strides = tuple(strides)
        self.sizes = tuple(tuple(s) for s in sizes)
        self.ratios = tuple(ratios)
        self.num_sample = num_sample
        self.pos_iou_thresh = pos_iou_thresh
        self.neg_iou_thresh = neg_iou_thresh
        self.pos_ratio = pos_ratio
        self.stds = stds
        self._anchor_cache = {}

    @classmethod
    def from_preset(cls, cfg, **kwargs):
        return cls(cfg["strides"], cfg["anchor_sizes"], cfg["anchor_ratios"], **kwargs)

    def anchors(self, pad_h, pad_w):
        """All anchors (N, 4) of an input of size (pad_h, pad_w), in the network's order."""
        key = (pad_h, pad_w)
        if key not in self._anchor_cache:
            levels = []
            for stride, sizes, (fh, fw) in zip(self.strides, self.sizes,
                                               feature_sizes(pad_h, pad_w, self.strides)):
                levels.append(anchor_grid(stride, sizes, self.ratios, fh, fw).reshape(-1, 4))
            self._anchor_cache[key] = np.concatenate(levels, axis=0)  # (N, 4)
        return self._anchor_cache[key]

    def __call__(self, gt_boxes, height, width, pad_h=None, pad_w=None, rng=None):
        """Targets for one image.

        gt_boxes (M, 4) in the resized image; ``height, width`` its real size; ``pad_h, pad_w``
        the batch's padded size (default: the real size).

        Returns cls_targets (N,) float32 in {1, 0, -1 ignored}, box_targets (N, 4), box_masks (N, 4).
        """
        rng = rng if rng is not None else np.random
        anchors, columns, areas = self._anchor_columns(pad_h or height, pad_w or width)
        gt_boxes = np.asarray(gt_boxes, np.float32).reshape(-1, 4)
        outside = (columns[0] < 0) | (columns[1] < 0) | (columns[2] >= width) | (columns[3] >= height)
        ious = _ious_gt_major(columns, areas, gt_boxes, outside)  # (M, N)
        samples, matches = sample_anchors(ious, self.num_sample, self.pos_iou_thresh,
                                          self.neg_iou_thresh, self.pos_ratio, rng, outside)
        cls_targets = np.where(samples > 0, 1.0, np.where(samples < 0, 0.0, -1.0)).astype(np.float32)
        box_targets = np.zeros((len(anchors), 4), np.float32)
        positive = samples > 0
        if positive.any():
            box_targets[positive] = encode_boxes(gt_boxes[matches[positive]], anchors[positive],
                                                 stds=self.stds)
        box_masks = np.empty((len(anchors), 4), np.float32)
        box_masks[:] = positive[:, None]
        return cls_targets, box_targets, box_masks

    def _anchor_columns(self, pad_h, pad_w):
        """(anchors (N, 4), their four coordinate columns, their areas), cached per size."""
        key = ("columns", pad_h, pad_w)
        if key not in self._anchor_cache:
            anchors = self.anchors(pad_h, pad_w)
            columns = tuple(np.ascontiguousarray(anchors[:, k]) for k in range(4))
            areas = (columns[2] - columns[0]) * (columns[3] - columns[1])
            self._anchor_cache[key] = (anchors, columns, areas)
        return self._anchor_cache[key]
