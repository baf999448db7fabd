"""The five Mask R-CNN losses, each normalised per image and averaged over the images.

For each image:

- ``rpn_cls``: sigmoid cross-entropy over its sampled anchors / its number of sampled anchors;
- ``rpn_box``: smooth-L1 (beta 1/9) over its positive anchors / its number of sampled anchors;
- ``rcnn_cls``: softmax cross-entropy over its sampled ROIs / its number of sampled ROIs;
- ``rcnn_box``: smooth-L1 (beta 1) over its positives' own-class deltas / its number of sampled ROIs;
- ``mask``: per-pixel sigmoid cross-entropy on its positives' own-class masks / its weighted
  pixels (the mask head's channel of each positive's class, picked before the loss).

Each loss of a batch is the mean of these per-image values. A global step's gradient is then
the mean over its images whatever the split: one device with B images, B devices with one
each, or B workers. GluonCV normalises by the counts of each device's whole batch instead,
which is the same with its default of one image per device (and differs with more, since the
images have different numbers of positives).
"""
from collections import namedtuple

from mxnet import gluon

__all__ = ["MaskRCNNLoss", "LOSS_NAMES", "Losses"]

LOSS_NAMES = ("rpn_cls", "rpn_box", "rcnn_cls", "rcnn_box", "mask")
Losses = namedtuple("Losses", LOSS_NAMES)


def _sigmoid_bce(F, logits, targets):
    """Numerically stable binary cross-entropy on logits, elementwise."""
    positive = F.Activation(logits, act_type="relu")  # oneDNN's relu: faster backward than F.relu
    return positive - logits * targets + F.Activation(-F.abs(logits), act_type="softrelu")


def _smooth_l1(F, diff, beta):
    """Huber / smooth-L1 with threshold ``beta``, elementwise."""
    absolute = F.abs(diff)
    return F.where(absolute > beta, absolute - 0.5 * beta, (0.5 / beta) * F.square(diff))


def _per_image_mean(F, values, weights):
    """mean over images b of sum(values[b]) / max(sum(weights[b]), 1); both (B, ...) -> (1,)."""
    totals = F.sum(values, axis=0, exclude=True)  # (B, ...) -> (B,)
    counts = F.sum(weights, axis=0, exclude=True)  # (B, ...) -> (B,)
    return F.mean(totals / F.maximum(counts, 1.0))


class MaskRCNNLoss(gluon.HybridBlock):
    """Forward(predictions and targets) -> :class:`Losses` of five scalars (shape (1,)).

    Inputs, in order: ``raw_rpn_score (B, N, 1)``, ``raw_rpn_box (B, N, 4)``,
    ``rpn_cls_targets (B, N)`` (1 object, 0 background, -1 ignored), ``rpn_box_targets (B, N, 4)``,
    ``rpn_box_masks (B, N, 4)``, ``cls_pred (B, S, C+1)``, ``cls_targets (B, S)``,
    ``box_pred (B, P, C, 4)``, ``box_targets``, ``box_masks``, ``mask_pred (B, P, C, M, M)``,
    ``mask_targets (B, P, M, M)`` and ``mask_weights (B, P)`` (those of
    :class:`~gluon_maskrcnn.modeling.mask_targets.MaskTargetGenerator`). The first P of
    ``cls_targets`` name the positives' classes, whose channels of ``mask_pred`` are scored.
    """

    def __init__(self, rpn_beta=1.0 / 9, rcnn_beta=1.0, **kwargs):
        super().__init__(**kwargs)
        self._rpn_beta = rpn_beta
        self._rcnn_beta = rcnn_beta

    @property
    def rpn_beta(self):
        """Where the RPN's box loss turns from smooth-L1 into L1 (``--rpn-smoothl1-rho``)."""
        return self._rpn_beta

    @property
    def rcnn_beta(self):
        """The same for the second stage's box loss (``--rcnn-smoothl1-rho``)."""
        return self._rcnn_beta

    def hybrid_forward(self, F, raw_rpn_score, raw_rpn_box, rpn_cls_targets, rpn_box_targets,
                       rpn_box_masks, cls_pred, cls_targets, box_pred, box_targets, box_masks,
                       mask_pred, mask_targets, mask_weights):
        rpn_weight = rpn_cls_targets >= 0  # (B, N)
        rpn_bce = _sigmoid_bce(F, raw_rpn_score.reshape((0, -1)), F.relu(rpn_cls_targets))  # (B, N, 1) -> (B, N)
        rpn_cls = _per_image_mean(F, rpn_bce * rpn_weight, rpn_weight)
        rpn_l1 = _smooth_l1(F, raw_rpn_box - rpn_box_targets, self._rpn_beta) * rpn_box_masks
        rpn_box = _per_image_mean(F, rpn_l1, rpn_weight)

        roi_weight = cls_targets >= 0  # (B, S)
        log_prob = F.log_softmax(cls_pred, axis=-1)
        ce = -F.pick(log_prob, F.relu(cls_targets), axis=-1)  # (B, S)
        rcnn_cls = _per_image_mean(F, ce * roi_weight, roi_weight)
        box_l1 = _smooth_l1(F, box_pred - box_targets, self._rcnn_beta) * box_masks
        rcnn_box = _per_image_mean(F, box_l1, roi_weight)

        pos_cls = F.slice_like(cls_targets, mask_weights, axes=(1,)) - 1  # (B, S) -> (B, P), from 0
        pixel_cls = F.broadcast_like(pos_cls.reshape((0, 0, 1, 1)), mask_targets)  # (B, P, M, M)
        own_logits = F.pick(mask_pred, pixel_cls, axis=2, mode="clip")  # (B, P, C, M, M) -> (B, P, M, M)
        pixel_weights = F.broadcast_like(mask_weights.reshape((0, 0, 1, 1)), mask_targets)  # (B, P, M, M)
        mask_bce = _sigmoid_bce(F, own_logits, mask_targets) * pixel_weights
        mask = _per_image_mean(F, mask_bce, pixel_weights)
        return rpn_cls, rpn_box, rcnn_cls, rcnn_box, mask

    def __call__(self, *args):
        return Losses(*super().__call__(*args))
