"""Mask R-CNN: Faster R-CNN plus a mask branch; it adds to the parent's outputs only."""
from .faster_rcnn import FasterRCNN, _copy_rows, _first_per_image
from .heads import MaskHead, pick_class_masks
from .targets import MaskTargetGenerator

__all__ = ["MaskRCNN"]


class MaskRCNN(FasterRCNN):
    """Mask R-CNN (He et al. 2017).

    Inference, ``net(x)`` with ``x`` (B, 3, H, W), returns the namedtuple
    ``(ids, scores, bboxes, masks)``: the parent's three, plus masks (B, N, S, S), the
    probability of each detection's class over its box on an S x S grid (S = ``mask_roi_size``:
    28 for the FPN ResNet-50/101 presets, 14 for the others).
    :func:`gluon_maskrcnn.predict.predict` pastes them at full image size.

    Training adds ``mask_pred`` (B, K, C, S, S) after ``box_pred``, in GluonCV's order.

    Parameters
    ----------
    mask_channels : int
        Channels of the mask head convs and deconv.
    num_fcn_convs : int
        3x3 convs before the deconv (4 for FPN R50/R101, 2 for FPN R18, 0 for C4).
    mask_roi_size : (int, int)
        ROI size of the mask targets (twice the pooled size).
    kwargs
        Every other keyword :class:`~gluon_maskrcnn.modeling.faster_rcnn.FasterRCNN` takes.
    """

    TRAIN_OUTPUTS = FasterRCNN.TRAIN_OUTPUTS[:2] + ("mask_pred",) + FasterRCNN.TRAIN_OUTPUTS[2:]
    INFER_OUTPUTS = FasterRCNN.INFER_OUTPUTS + ("masks",)

    def __init__(self, features, top_features, box_features, classes, *, mask_channels=256,
                 num_fcn_convs=0, mask_roi_size=(28, 28), **kwargs):
        super().__init__(features, top_features, box_features, classes, **kwargs)
        self._mask_roi_size = tuple(mask_roi_size)
        with self.name_scope():
            self.mask = MaskHead(self.num_class, mask_channels, num_fcn_convs)
            self.mask_target = MaskTargetGenerator(self._batch_size, self._mask_roi_size)

    def _inference(self, F, x):
        stage = super()._inference(F, x)
        pooled = self._pool(F, stage["feats"], stage["bboxes"])  # (B*K, C, R, R)
        top = self.top_features(pooled) if self.top_features is not None else pooled
        logits = self.mask(top)  # (B*K, classes, M, M)
        masks = pick_class_masks(F, logits, stage["ids"].reshape((-1,)), self.num_class)  # (B*K, M, M)
        stage["masks"] = F.sigmoid(masks).reshape((-4, -1, self.max_dets, -2))  # (B*K, M, M) -> (B, K, M, M)
        return stage

    def _training(self, F, x, gt_boxes, gt_labels, rpn_anchor_ids=None, roi_keys=None):
        stage = super()._training(F, x, gt_boxes, gt_labels, rpn_anchor_ids, roi_keys)
        pos_top = _first_per_image(F, stage["top_feat"], self._batch_size, self.sampler.num_sample,
                                   self.sampler.max_pos)
        logits = self.mask(pos_top)  # (B*P, C, M, M)
        stage["mask_pred"] = logits.reshape((-4, self._batch_size, -1, -2))  # (B*P, ...) -> (B, P, C, M, M)
        return stage

    def reset_class(self, classes, reuse_weights=None):
        mapping = super().reset_class(classes, reuse_weights)
        old_head = self.mask.mask
        with self.mask.name_scope():
            self.mask.mask = type(old_head)(len(classes), 1, in_channels=old_head.weight.shape[1],
                                            weight_initializer=old_head.weight.init,
                                            prefix=old_head.prefix[len(self.mask.prefix):])
        self.mask.mask.initialize(ctx=old_head.weight.list_ctx())
        _copy_rows(old_head, self.mask.mask, mapping, 1)  # mask targets do not depend on the classes
        return mapping
