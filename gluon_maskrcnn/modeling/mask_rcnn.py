"""Mask R-CNN: Faster R-CNN plus a mask branch; it adds to the parent's outputs only, and owns
the path from a training batch to the five named losses (:meth:`~gluon_maskrcnn.modeling.mask_rcnn.MaskRCNN.losses`)."""
import mxnet as mx

from .faster_rcnn import FasterRCNN
from .heads import MaskHead, pick_class_masks
from .losses import MaskRCNNLoss
from .mask_targets import MaskTargetGenerator
from .roi_heads import copy_class_rows

__all__ = ["MaskRCNN"]


class MaskRCNN(FasterRCNN):
    """Mask R-CNN (He et al. 2017).

    Inference, ``net(x)`` with ``x`` (B, 3, H, W), returns the namedtuple
    ``(ids, scores, bboxes, masks)``: the parent's three, plus masks (B, N, S, S), the
    probability of each detection's class over its box on an S x S grid (S = ``mask_roi_size``:
    28 for the FPN ResNet-50/101 presets, 14 for the others).
    :func:`gluon_maskrcnn.predict` pastes them at full image size.

    Training adds ``mask_pred`` (B, K, C, S, S) after ``box_pred``, in GluonCV's order.

    Parameters
    ----------
    mask_channels : int
        Channels of the mask head convs and deconv.
    num_fcn_convs : int
        3x3 convs before the deconv (4 for FPN R50/R101, 2 for FPN R18, 0 for C4).
    mask_roi_size : (int, int)
        ROI size of the mask targets (twice the pooled size).
    mask_norm : str or None
        ``"syncbn"`` puts SyncBatchNorm after the mask head's convs and deconv (GluonCV's SyncBN
        models); ``num_devices`` devices share its statistics.
    rpn_beta, rcnn_beta : float
        Smooth-L1 thresholds of the RPN and box losses (GluonCV's ``--rpn-smoothl1-rho``,
        ``--rcnn-smoothl1-rho``); see :meth:`losses`.
    kwargs
        Every other keyword :class:`~gluon_maskrcnn.modeling.faster_rcnn.FasterRCNN` takes.
    """

    TRAIN_OUTPUTS = FasterRCNN.TRAIN_OUTPUTS[:2] + ("mask_pred",) + FasterRCNN.TRAIN_OUTPUTS[2:]
    INFER_OUTPUTS = FasterRCNN.INFER_OUTPUTS + ("masks",)

    def __init__(self, features, top_features, box_features, classes, *, mask_channels=256,
                 num_fcn_convs=0, mask_roi_size=(28, 28), mask_norm=None, num_devices=1,
                 rpn_beta=1.0 / 9, rcnn_beta=1.0, **kwargs):
        super().__init__(features, top_features, box_features, classes, **kwargs)
        with self.name_scope():
            self.mask = MaskHead(self.num_class, mask_channels, num_fcn_convs, mask_norm, num_devices)
            self.mask_target = MaskTargetGenerator(self.per_device_batch_size, mask_roi_size)
            self.loss = MaskRCNNLoss(rpn_beta, rcnn_beta)  # no parameters

    def losses(self, x, gt_boxes, gt_labels, gt_masks, rpn_cls_targets, rpn_box_targets,
               rpn_box_masks, rpn_anchor_ids=None, roi_keys=None):
        """The five losses of a training batch (call inside ``autograd.record()``), as
        :class:`~gluon_maskrcnn.modeling.losses.Losses`, each a (1,) NDArray.

        Shapes: x (B, 3, H, W); gt_boxes (B, M, 4); gt_labels (B, M, 1) with -1 padding;
        gt_masks (B, M, H, W); RPN targets (B, N), (B, N, 4), (B, N, 4) for all N anchors, or,
        with ``rpn_anchor_ids`` (B, S), for those S sampled anchors (a batch of
        ``TrainBatchify(sampled_rpn=True)``; same losses, faster backward), and with ``roi_keys``
        (B, K) the random keys of each image's ROI sampling (a ``SeededTrainBatch``).
        The positional order is that of the batches of :mod:`gluon_maskrcnn.data.batchify`.
        """
        if roi_keys is not None and rpn_anchor_ids is None:
            raise ValueError("roi_keys need rpn_anchor_ids (a SeededTrainBatch)")
        extra = tuple(t for t in (rpn_anchor_ids, roi_keys) if t is not None)
        out = self(x, gt_boxes, gt_labels, *extra)
        fg = lambda t: self.sampler.foreground(mx.nd, t)  # (B, S, ...) -> (B, P, ...)
        mask_targets, mask_weights = self.mask_target(fg(out.rois), gt_masks, fg(out.matches),
                                                      fg(out.cls_targets))
        return self.loss(out.raw_rpn_score, out.raw_rpn_box, rpn_cls_targets, rpn_box_targets,
                         rpn_box_masks, out.cls_pred, out.cls_targets, out.box_pred,
                         out.box_targets, out.box_masks, out.mask_pred, mask_targets, mask_weights)

    def _inference(self, F, x):
        stage = super()._inference(F, x)
        pooled = self.pool_rois(F, stage["feats"], stage["bboxes"])  # (B*K, C, R, R)
        logits = self.mask(self.top(pooled))  # (B*K, classes, M, M)
        masks = pick_class_masks(F, logits, stage["ids"].reshape((-1,)), self.num_class)  # (B*K, M, M)
        stage["masks"] = F.reshape_like(F.sigmoid(masks), stage["ids"], lhs_begin=0, lhs_end=1, rhs_begin=0,
                                        rhs_end=2)  # (B*K, M, M) -> (B, K, M, M)
        return stage

    def _training(self, F, x, gt_boxes, gt_labels, rpn_anchor_ids=None, roi_keys=None):
        stage = super()._training(F, x, gt_boxes, gt_labels, rpn_anchor_ids, roi_keys)
        logits = self.mask(self.sampler.foreground_rows(F, stage["top_feat"]))  # (B*P, C, M, M)
        stage["mask_pred"] = logits.reshape((-4, self.per_device_batch_size, -1, -2))  # (B*P, ...) -> (B, P, C, M, M)
        return stage

    def reset_class(self, classes, reuse_weights=None):
        mapping = super().reset_class(classes, reuse_weights)
        old_head = self.mask.mask
        with self.mask.name_scope():
            self.mask.mask = type(old_head)(len(classes), 1, in_channels=old_head.weight.shape[1],
                                            weight_initializer=old_head.weight.init,
                                            prefix=old_head.prefix[len(self.mask.prefix):])
        self.mask.mask.initialize(ctx=old_head.weight.list_ctx())
        copy_class_rows(old_head, self.mask.mask, mapping, 1)  # mask targets do not depend on the classes
        return mapping
