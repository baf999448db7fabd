"""In-graph training targets of the second stage: ROI sampling, box and mask targets.

Sampling follows GluonCV's semantics: the ground-truth boxes join the proposals; an ROI is
positive when its best IoU reaches ``pos_iou_thresh``; invalid proposals (score -1) are
ignored; the first ``max_pos`` slots take positives first (then negatives), the other
slots take negatives first (then left-over positives). Within each kind the order is random:
by random keys the caller gives for each image (the training loop draws them from the image's
own seed, so a sample does not depend on the device or worker that computes it), or by keys
drawn in the graph when none are given.
"""
from mxnet import autograd, gluon

__all__ = ["RCNNTargetSampler", "RCNNTargetGenerator", "MaskTargetGenerator"]


def _row_offsets(F, values):
    """values (B, M, ...) -> (B, 1) holding b*M, the flat index of each image's first row."""
    first = values.reshape((0, 0, -1)).slice_axis(axis=2, begin=0, end=1).reshape((0, 0))  # (B, M)
    return F.contrib.arange_like(first).slice_axis(axis=1, begin=0, end=1)  # (B, 1)


def _gather_per_image(F, values, index):
    """values (B, M), index (B, S) -> (B, S) with ``values[b, index[b, s]]``."""
    flat_index = F.broadcast_add(index, _row_offsets(F, values))  # (B, S)
    return F.take(values.reshape((-1,)), flat_index)


def _sample_one(F, roi, score, gt_box, keys, max_pos, num_sample, pos_iou):
    """Sample ``num_sample`` ROIs of one image with random ``keys`` (N + M_max,) in [0, 1).

    Returns (rois (S, 4), samples (S,), matches (S,)).
    """
    gt_valid = F.sign(F.sum(gt_box, axis=-1) + 1)  # (M,): +1 real box, -1 padding
    all_roi = F.concat(roi, gt_box, dim=0)  # (N + M, 4)
    all_valid = F.concat(score.reshape((-1,)), gt_valid, dim=0) >= 0  # (N + M,)
    ious = F.contrib.box_iou(all_roi, gt_box, format="corner")  # (N + M, M)
    best_iou = ious.max(axis=-1)
    matches = ious.argmax(axis=-1)
    positive = best_iou >= pos_iou
    negative = (1 - positive) * all_valid
    noise = F.slice_like(keys, best_iou)  # (N + M_max,) -> (N + M,)
    # first max_pos slots: positives, then negatives, then ignored (random within each)
    order = F.argsort(positive * 2 + negative + noise, is_ascend=False)
    head = F.slice_axis(order, axis=0, begin=0, end=max_pos)
    rest = F.slice_axis(order, axis=0, begin=max_pos, end=None)
    # remaining slots: negatives, then left-over positives, then ignored
    rest_key = F.take(negative * 2 + positive + noise, rest)
    tail = F.take(rest, F.slice_axis(F.argsort(rest_key, is_ascend=False), axis=0, begin=0,
                                     end=num_sample - max_pos))
    picked = F.concat(head, tail, dim=0)  # (S,)
    samples = F.take(positive, picked) - F.take(negative, picked)  # 1 pos, -1 neg, 0 ignored
    return F.take(all_roi, picked), samples, F.take(matches, picked)


class RCNNTargetSampler(gluon.HybridBlock):
    """Sample ``num_sample`` ROIs per image from the proposals and the ground truth.

    Forward ``(rois (B, N, 4), scores (B, N, 1), gt_boxes (B, M, 4)[, keys (B, K)])`` ->
    ``(rois (B, S, 4), samples (B, S) in {1, -1, 0}, matches (B, S) ground-truth index)``.
    Positives occupy the first ``max_pos`` slots. ``keys`` are uniform random numbers in [0, 1),
    ``K = key_count`` per image, that order the candidates within each kind; without them
    they are drawn in the graph.
    """

    def __init__(self, num_image, num_proposal, num_sample, pos_iou_thresh=0.5, pos_ratio=0.25,
                 max_num_gt=300, **kwargs):
        super().__init__(**kwargs)
        self._num_image = num_image
        self._num_proposal = num_proposal
        self.num_sample = num_sample
        self.max_pos = int(round(num_sample * pos_ratio))
        self._pos_iou = pos_iou_thresh
        self._max_num_gt = max_num_gt

    @property
    def key_count(self):
        """Random keys per image: one for each proposal and each ground-truth row."""
        return self._num_proposal + self._max_num_gt

    def hybrid_forward(self, F, rois, scores, gt_boxes, keys=None):
        with autograd.pause():
            if keys is None:
                keys = F.random.uniform(0, 1, shape=(self._num_image, self.key_count))
            per_image = []
            for i in range(self._num_image):
                pick = lambda t: F.squeeze(F.slice_axis(t, axis=0, begin=i, end=i + 1), axis=0)
                per_image.append(_sample_one(F, pick(rois), pick(scores), pick(gt_boxes), pick(keys),
                                             self.max_pos, self.num_sample, self._pos_iou))
            return tuple(F.stack(*parts, axis=0) for parts in zip(*per_image))


class RCNNTargetGenerator(gluon.HybridBlock):
    """Class targets for all sampled ROIs and class-specific box targets for the positives.

    Forward ``(rois (B, S, 4), samples (B, S), matches (B, S), gt_labels (B, M, 1),
    gt_boxes (B, M, 4))`` -> ``(cls_targets (B, S): class+1, 0 background, -1 ignored;
    box_targets (B, P, C, 4); box_masks (B, P, C, 4); indices (B, P))`` where P = ``max_pos``
    and ``indices`` are the sampled slots the box targets refer to (the first P).
    """

    def __init__(self, num_class, max_pos, means=(0.0, 0.0, 0.0, 0.0), stds=(0.1, 0.1, 0.2, 0.2),
                 **kwargs):
        super().__init__(**kwargs)
        self._num_class = num_class
        self._max_pos = max_pos
        self._means = means
        self._stds = stds

    def hybrid_forward(self, F, rois, samples, matches, gt_labels, gt_boxes):
        with autograd.pause():
            labels = _gather_per_image(F, gt_labels.reshape((0, -1)), matches)  # (B, M, 1) -> (B, S)
            cls_targets = F.where(samples > 0.5, labels + 1,
                                  F.where(samples < -0.5, F.zeros_like(labels), F.ones_like(labels) * -1))
            pos = lambda t: F.slice_axis(t, axis=1, begin=0, end=self._max_pos)
            means = F.concat(*[F.full((1,), m) for m in self._means], dim=0)  # (4,)
            stds = F.concat(*[F.full((1,), s) for s in self._stds], dim=0)  # (4,)
            targets, masks = F.contrib.box_encode(pos(samples), pos(matches), pos(rois), gt_boxes,
                                                  means, stds)
            class_range = F.arange(self._num_class).reshape((1, 1, -1))  # (1, 1, C)
            same_class = F.broadcast_equal(pos(labels).expand_dims(2), class_range)  # (B, P, C)
            box_targets = F.broadcast_axis(targets.expand_dims(2), axis=2, size=self._num_class)
            box_masks = F.broadcast_mul(masks.expand_dims(2), same_class.expand_dims(3))  # (B, P, C, 4)
            indices = F.contrib.arange_like(pos(samples), axis=1)  # (P,)
            indices = F.broadcast_like(indices.reshape((1, -1)), pos(samples))  # (P,) -> (B, P)
            return cls_targets, box_targets, box_masks, indices


class MaskTargetGenerator(gluon.HybridBlock):
    """Ground-truth masks ROI-aligned to the mask resolution for each positive ROI.

    Forward ``(rois (B, P, 4), gt_masks (B, M, H, W), matches (B, P), cls_targets (B, P))`` ->
    ``(mask_targets (B, P, MS, MS), mask_weights (B, P))``: the aligned mask of each ROI's
    matched ground truth, and 1 for the ROIs that are positives (class target > 0), else 0.
    The target belongs to the ROI's own class only: the loss reads that class's channel of the
    mask head (GluonCV repeats the target over every class channel, with weight 0 on the
    others, which costs 80 times the memory and arithmetic for the same loss, and takes the
    class count for it).
    """

    def __init__(self, num_images, mask_size, **kwargs):
        super().__init__(**kwargs)
        self._num_images = num_images
        self._mask_size = tuple(mask_size)

    def hybrid_forward(self, F, rois, gt_masks, matches, cls_targets):
        with autograd.pause():
            gt_masks = F.cast(gt_masks, "float32")  # batches carry uint8 masks
            mask_ids = F.broadcast_add(F.relu(matches), _row_offsets(F, gt_masks))  # (B, P) flat rows
            gt_flat = gt_masks.reshape((-3, 0, 0)).expand_dims(1)  # (B, M, H, W) -> (B*M, 1, H, W)
            rois5 = F.concat(mask_ids.reshape((-1, 1)), rois.reshape((-1, 4)), dim=-1)  # (B*P, 5)
            aligned = F.contrib.ROIAlign(gt_flat, rois5, self._mask_size, 1.0, sample_ratio=2)
            targets = aligned.reshape((-4, self._num_images, -1, -3, 0))  # (B*P, 1, S, S) -> (B, P, S, S)
            weights = cls_targets > 0
            return targets, weights
