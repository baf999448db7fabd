"""One forward pass of training: network outputs, mask targets, and the five losses."""
__all__ = ["forward_losses"]


def forward_losses(net, loss_fn, x, gt_boxes, gt_labels, gt_masks, rpn_cls_targets,
                   rpn_box_targets, rpn_box_masks, rpn_anchor_ids=None, roi_keys=None):
    """Run ``net`` in training mode (call inside ``autograd.record()``) and return the losses.

    Shapes: x (B, 3, H, W); gt_boxes (B, M, 4); gt_labels (B, M, 1) with -1 padding;
    gt_masks (B, M, H, W); RPN targets (B, N), (B, N, 4), (B, N, 4) for all N anchors, or,
    with ``rpn_anchor_ids`` (B, S), for those S sampled anchors (a batch of
    ``TrainBatchify(sampled_rpn=True)``; same losses, faster backward), and with ``roi_keys``
    (B, K) the random keys of each image's ROI sampling (a :data:`SeededTrainBatch`).
    Returns :class:`~gluon_maskrcnn.modeling.losses.Losses`.
    """
    if roi_keys is not None and rpn_anchor_ids is None:
        raise ValueError("roi_keys need rpn_anchor_ids (a SeededTrainBatch)")
    extra = tuple(t for t in (rpn_anchor_ids, roi_keys) if t is not None)
    out = net(x, gt_boxes, gt_labels, *extra)
    num_pos = net.sampler.max_pos

    def positives(t):
        return t.slice_axis(axis=1, begin=0, end=num_pos)

    mask_targets, mask_weights = net.mask_target(positives(out.rois), gt_masks,
                                                 positives(out.matches), positives(out.cls_targets))
    return loss_fn(out.raw_rpn_score, out.raw_rpn_box, rpn_cls_targets, rpn_box_targets,
                   rpn_box_masks, out.cls_pred, out.cls_targets, out.box_pred, out.box_targets,
                   out.box_masks, out.mask_pred, mask_targets, mask_weights)
