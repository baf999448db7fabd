"""From second-stage predictions to detections: per-class decoding and NMS."""
__all__ = ["detect"]


def detect(F, cls_pred, box_pred, rois, num_class, num_rois, *, clip, stds=(0.1, 0.1, 0.2, 0.2),
           score_thresh=0.01, nms_thresh=0.5, nms_topk=-1, max_dets=100, force_nms=False):
    """Class-specific detections of each image, best first.

    Parameters
    ----------
    cls_pred : NDArray or Symbol
        (B, N, C+1) logits, background first.
    box_pred : NDArray or Symbol
        (B, N, C, 4) class-specific deltas.
    rois : NDArray or Symbol
        (B, N, 4) the ROIs they refine.
    num_rois : int
        N, known when the graph is built.

    Returns
    -------
    ids (B, K, 1), scores (B, K, 1), boxes (B, K, 4), with K = ``max_dets``; rows past the real
    detections have id -1. Every class keeps its own boxes (NMS per class unless ``force_nms``).
    """
    probs = F.softmax(cls_pred, axis=-1)
    fg = probs.slice_axis(axis=-1, begin=1, end=None).transpose((0, 2, 1))  # (B, N, C) -> (B, C, N)
    keep = fg > score_thresh
    class_ids = F.broadcast_like(F.arange(num_class).reshape((1, -1, 1)), fg)  # (B, C, N)
    ids = F.where(keep, class_ids, F.ones_like(fg) * -1).reshape((0, -1, 1))  # (B, C, N) -> (B, C*N, 1)
    scores = F.where(keep, fg, F.zeros_like(fg)).reshape((0, -1, 1))  # (B, C, N) -> (B, C*N, 1)
    deltas = box_pred.transpose((0, 2, 1, 3)).reshape((0, -1, 4))  # (B, C, N, 4) -> (B, C*N, 4)
    anchors = F.broadcast_like(rois.expand_dims(1), box_pred.transpose((0, 2, 1, 3)))  # (B, C, N, 4)
    # box_decode broadcasts anchors of batch 1 only: decode everything as one batch
    boxes = F.contrib.box_decode(deltas.reshape((1, -1, 4)), anchors.reshape((1, -1, 4)),
                                 stds[0], stds[1], stds[2], stds[3], clip=clip,
                                 format="corner")  # (B, C*N, 4) -> (1, B*C*N, 4)
    boxes = F.reshape_like(boxes, deltas)  # (1, B*C*N, 4) -> (B, C*N, 4)
    dets = F.concat(ids, scores, boxes, dim=-1)  # (B, C*N, 6)
    # NMS with every class on the batch axis costs C*N^2 instead of (C*N)^2, same result; a row
    # holds one class (rows below the threshold score 0 and are invalid), so no class id is
    # needed, and the graph translates to ONNX (see onnx_ops)
    per_class = dets.reshape((-1, num_rois, 6))  # (B, C*N, 6) -> (B*C, N, 6)
    per_class = F.contrib.box_nms(per_class, overlap_thresh=nms_thresh, topk=nms_topk,
                                  valid_thresh=0.0001, id_index=-1, score_index=1, coord_start=2,
                                  force_suppress=True)
    dets = per_class.reshape((-1, num_class * num_rois, 6))  # (B*C, N, 6) -> (B, C*N, 6)
    if force_nms:
        dets = F.contrib.box_nms(dets, overlap_thresh=nms_thresh, topk=nms_topk, valid_thresh=0.0001,
                                 id_index=0, score_index=1, coord_start=2, force_suppress=True)
    best = F.topk(dets.slice_axis(axis=-1, begin=1, end=2).reshape((0, -1)), axis=1, k=max_dets,
                  ret_typ="indices")  # (B, K) best first; suppressed rows score -1
    dets = _take_rows(F, dets, best, num_class * num_rois)  # (B, K, 6)
    return (F.slice_axis(dets, axis=-1, begin=0, end=1), F.slice_axis(dets, axis=-1, begin=1, end=2),
            F.slice_axis(dets, axis=-1, begin=2, end=6))


def _take_rows(F, data, index, num_rows):
    """Per-image row gather: data (B, R, D), index (B, K) -> (B, K, D)."""
    offsets = F.contrib.arange_like(index, axis=0).reshape((-1, 1)) * num_rows  # (B, 1)
    flat_index = F.broadcast_add(index, offsets).reshape((-1,))  # (B, K) -> (B*K,)
    rows = F.take(data.reshape((-3, -1)), flat_index)  # (B, R, D) -> (B*R, D) -> (B*K, D)
    return F.reshape_like(rows.reshape((0, 1, -1)), index.expand_dims(-1), lhs_begin=0, lhs_end=2,
                          rhs_begin=0, rhs_end=2)  # (B*K, 1, D) -> (B, K, D)
