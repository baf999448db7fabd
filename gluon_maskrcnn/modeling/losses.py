"""The five Mask R-CNN losses, normalised as GluonCV's training normalises them.

Each loss is a scalar for the whole (per-device) batch:

- ``rpn_cls``: sigmoid cross-entropy over the sampled anchors / number of sampled anchors;
- ``rpn_box``: smooth-L1 (beta 1/9) over positive anchors / number of sampled anchors;
- ``rcnn_cls``: softmax cross-entropy over the sampled ROIs / number of sampled ROIs;
- ``rcnn_box``: smooth-L1 (beta 1) over the positives' own-class deltas / number of sampled ROIs;
- ``mask``: per-pixel sigmoid cross-entropy on the positives' own-class masks / weighted pixels
  (the mask head's channel of each positive's class, picked before the loss).

GluonCV computes the same quantities multiplied by the batch size and then divides the
gradient by it in ``trainer.step(batch_size)``; here the division is already done.
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


def _safe_div(F, total, count):
    return total / F.maximum(count, 1.0)


class MaskRCNNLoss(gluon.HybridBlock):
    """Forward(predictions and targets) -> :class:`Losses` of five scalars (shape (1,)).

    Inputs, in order: ``raw_rpn_score (B, N, 1)``, ``raw_rpn_box (B, N, 4)``,
    ``rpn_cls_targets (B, N)`` (1 object, 0 background, -1 ignored), ``rpn_box_targets (B, N, 4)``,
    ``rpn_box_masks (B, N, 4)``, ``cls_pred (B, S, C+1)``, ``cls_targets (B, S)``,
    ``box_pred (B, P, C, 4)``, ``box_targets``, ``box_masks``, ``mask_pred (B, P, C, M, M)``,
    ``mask_targets (B, P, M, M)`` and ``mask_weights (B, P)`` (those of
    :class:`~gluon_maskrcnn.modeling.targets.MaskTargetGenerator`). The first P of
    ``cls_targets`` name the positives' classes, whose channels of ``mask_pred`` are scored.
    """

    def __init__(self, rpn_beta=1.0 / 9, rcnn_beta=1.0, **kwargs):
        super().__init__(**kwargs)
        self._rpn_beta = rpn_beta
        self._rcnn_beta = rcnn_beta

    def hybrid_forward(self, F, raw_rpn_score, raw_rpn_box, rpn_cls_targets, rpn_box_targets,
                       rpn_box_masks, cls_pred, cls_targets, box_pred, box_targets, box_masks,
                       mask_pred, mask_targets, mask_weights):
        rpn_weight = rpn_cls_targets >= 0  # (B, N)
        num_anchors = F.sum(rpn_weight)
        rpn_bce = _sigmoid_bce(F, raw_rpn_score.reshape((0, -1)), F.relu(rpn_cls_targets))  # (B, N, 1) -> (B, N)
        rpn_cls = _safe_div(F, F.sum(rpn_bce * rpn_weight), num_anchors)
        rpn_l1 = _smooth_l1(F, raw_rpn_box - rpn_box_targets, self._rpn_beta) * rpn_box_masks
        rpn_box = _safe_div(F, F.sum(rpn_l1), num_anchors)

        roi_weight = cls_targets >= 0  # (B, S)
        num_rois = F.sum(roi_weight)
        log_prob = F.log_softmax(cls_pred, axis=-1)
        ce = -F.pick(log_prob, F.relu(cls_targets), axis=-1)  # (B, S)
        rcnn_cls = _safe_div(F, F.sum(ce * roi_weight), num_rois)
        box_l1 = _smooth_l1(F, box_pred - box_targets, self._rcnn_beta) * box_masks
        rcnn_box = _safe_div(F, F.sum(box_l1), num_rois)

        pos_cls = F.slice_like(cls_targets, mask_weights, axes=(1,)) - 1  # (B, S) -> (B, P), from 0
        pixel_cls = F.broadcast_like(pos_cls.reshape((0, 0, 1, 1)), mask_targets)  # (B, P, M, M)
        own_logits = F.pick(mask_pred, pixel_cls, axis=2, mode="clip")  # (B, P, C, M, M) -> (B, P, M, M)
        pixel_weights = F.broadcast_like(mask_weights.reshape((0, 0, 1, 1)), mask_targets)  # (B, P, M, M)
        mask_bce = _sigmoid_bce(F, own_logits, mask_targets) * pixel_weights
        mask = _safe_div(F, F.sum(mask_bce), F.sum(pixel_weights))
        return rpn_cls, rpn_box, rcnn_cls, rcnn_box, mask

    def __call__(self, *args):
        return Losses(*super().__call__(*args))
