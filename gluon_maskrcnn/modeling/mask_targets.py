"""In-graph mask targets: ground-truth masks ROI-aligned for the positive ROIs."""
from mxnet import autograd, gluon

from .roi_heads import row_offsets

__all__ = ["MaskTargetGenerator"]


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

    @property
    def mask_size(self):
        """The targets' resolution, (MS, MS)."""
        return self._mask_size

    def hybrid_forward(self, F, rois, gt_masks, matches, cls_targets):
        with autograd.pause():
            gt_masks = F.cast(gt_masks, "float32")  # batches carry uint8 masks
            mask_ids = F.broadcast_add(F.relu(matches), row_offsets(F, gt_masks))  # (B, P) flat rows
            gt_flat = gt_masks.reshape((-3, 0, 0)).expand_dims(1)  # (B, M, H, W) -> (B*M, 1, H, W)
            rois5 = F.concat(mask_ids.reshape((-1, 1)), rois.reshape((-1, 4)), dim=-1)  # (B*P, 5)
            aligned = F.contrib.ROIAlign(gt_flat, rois5, self._mask_size, 1.0, sample_ratio=2)
            targets = aligned.reshape((-4, self._num_images, -1, -3, 0))  # (B*P, 1, S, S) -> (B, P, S, S)
            weights = cls_targets > 0
            return targets, weights
