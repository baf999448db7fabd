"""Pure NumPy box utilities shared by the network (as constants) and the data workers.

Boxes are corner boxes ``[x1, y1, x2, y2]`` in pixels. Widths follow GluonCV's convention,
``x2 - x1`` (no ``+1``), everywhere except in the anchor templates, which keep the
classic ``+1`` convention so that the anchors equal GluonCV's bit for bit.
"""
import numpy as np

__all__ = ["base_anchors", "anchor_grid", "feature_sizes", "box_iou", "encode_boxes"]


def _center_form(box):
    """(x1, y1, x2, y2) of a template box -> (w, h, cx, cy) with the +1 width convention."""
    w = box[2] - box[0] + 1
    h = box[3] - box[1] + 1
    return w, h, box[0] + 0.5 * (w - 1), box[1] + 0.5 * (h - 1)


def _boxes_around(ws, hs, cx, cy):
    """Corner boxes of widths ``ws`` and heights ``hs`` centred on (cx, cy): (K, 4)."""
    half_w = 0.5 * (np.asarray(ws, dtype=np.float64) - 1)
    half_h = 0.5 * (np.asarray(hs, dtype=np.float64) - 1)
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)


def base_anchors(stride, sizes, ratios):
    """Anchors centred on the first cell of a feature map of the given stride.

    A ``stride x stride`` template is first reshaped to each aspect ratio (h / w) with rounded
    sides, then scaled by ``size / stride``. Rows are ordered ratio-major, then size.

    Returns
    -------
    numpy.ndarray, shape (len(ratios) * len(sizes), 4)
    """
    w, h, cx, cy = _center_form(np.array([0, 0, stride - 1, stride - 1], dtype=np.float64))
    ratios = np.asarray(ratios, dtype=np.float64)
    scales = np.asarray(sizes, dtype=np.float64) / stride
    ws = np.round(np.sqrt(w * h / ratios))
    hs = np.round(ws * ratios)
    per_ratio = []
    for rw, rh in zip(ws, hs):
        per_ratio.append(_boxes_around(rw * scales, rh * scales, cx, cy))
    return np.concatenate(per_ratio, axis=0)


def anchor_grid(stride, sizes, ratios, height, width):
    """All anchors of a ``height x width`` feature map.

    Returns
    -------
    numpy.ndarray, float32, shape (height, width, A * 4)
        Anchor ``a`` of cell (y, x) is ``[..., 4a:4a+4]``; flattening gives GluonCV's order
        (row-major cells, then anchors).
    """
    base = base_anchors(stride, sizes, ratios)  # (A, 4)
    xs = np.arange(width, dtype=np.float64) * stride
    ys = np.arange(height, dtype=np.float64) * stride
    ox, oy = np.meshgrid(xs, ys)  # (H, W) each
    shifts = np.stack([ox, oy, ox, oy], axis=-1)  # (H, W, 4)
    grid = shifts[:, :, None, :] + base[None, None, :, :]  # (H, W, A, 4)
    return grid.reshape(height, width, -1).astype(np.float32)  # (H, W, A*4)


def feature_sizes(height, width, strides):
    """Spatial sizes of a ResNet (+FPN) feature map at each power-of-two stride.

    Every stride-2 layer of ResNet v1b/v1d and of the FPN P6 conv maps ``n`` to
    ``ceil(n / 2)``, so the size at stride ``2**k`` is ``k`` repeated ceilings.
    """
    sizes = []
    for stride in strides:
        h, w = height, width
        for _ in range(int(round(np.log2(stride)))):
            h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
    return sizes


def box_iou(a, b, area_a=None):
    """IoU matrix of corner boxes, GluonCV's convention (area = (x2-x1)*(y2-y1)).

    a: (N, 4), b: (M, 4) -> (N, M) float32. Degenerate boxes have IoU 0. ``area_a`` may be
    passed when the same boxes are used again (anchors).
    """
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    np.maximum(iw, 0, out=iw)
    np.maximum(ih, 0, out=ih)
    inter = np.multiply(iw, ih, out=iw)  # (N, M)
    if area_a is None:
        area_a = _areas(a)
    union = area_a[:, None] + _areas(b)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou


def _areas(boxes):
    return np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)


def encode_boxes(boxes, anchors, means=(0.0, 0.0, 0.0, 0.0), stds=(1.0, 1.0, 1.0, 1.0)):
    """Encode ground-truth ``boxes`` against ``anchors`` (both (N, 4)) as normalised deltas.

    ``t = ((gx - ax) / aw, (gy - ay) / ah, log(gw / aw), log(gh / ah))``, then
    ``(t - means) / stds``; centres and sizes use widths ``x2 - x1``.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    anchors = np.asarray(anchors, dtype=np.float32)
    aw = anchors[:, 2] - anchors[:, 0]
    ah = anchors[:, 3] - anchors[:, 1]
    ax = anchors[:, 0] + 0.5 * aw
    ay = anchors[:, 1] + 0.5 * ah
    gw = boxes[:, 2] - boxes[:, 0]
    gh = boxes[:, 3] - boxes[:, 1]
    gx = boxes[:, 0] + 0.5 * gw
    gy = boxes[:, 1] + 0.5 * gh
    with np.errstate(divide="ignore", invalid="ignore"):
        deltas = np.stack([(gx - ax) / aw, (gy - ay) / ah, np.log(gw / aw), np.log(gh / ah)], axis=1)
    return ((deltas - np.asarray(means, np.float32)) / np.asarray(stds, np.float32)).astype(np.float32)


def decode_boxes(deltas, anchors, stds=(1.0, 1.0, 1.0, 1.0), clip=None):
    """Inverse of :func:`encode_boxes` (zero means); ``clip`` caps the log-size deltas before exp."""
    deltas = np.asarray(deltas, dtype=np.float32) * np.asarray(stds, np.float32)
    anchors = np.asarray(anchors, dtype=np.float32)
    aw = anchors[:, 2] - anchors[:, 0]
    ah = anchors[:, 3] - anchors[:, 1]
    cx = anchors[:, 0] + 0.5 * aw + deltas[:, 0] * aw
    cy = anchors[:, 1] + 0.5 * ah + deltas[:, 1] * ah
    dw, dh = deltas[:, 2], deltas[:, 3]
    if clip is not None:
        dw, dh = np.minimum(dw, clip), np.minimum(dh, clip)
    half_w = 0.5 * np.exp(dw) * aw
    half_h = 0.5 * np.exp(dh) * ah
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
