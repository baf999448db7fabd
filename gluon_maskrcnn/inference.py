"""Running a model on images: batching, un-scaling boxes, and pasting masks to full size."""
import cv2
import mxnet as mx
import numpy as np

from .data.coco import read_image
from .data.transforms import ValTransform

__all__ = ["paste_masks", "detections_to_original", "predict_images", "network_context"]


def network_context(net):
    """The device a network's parameters live on (the first one when they live on several);
    ``cpu()`` for a network without MXNet parameters (an ONNX Runtime model)."""
    collect = getattr(net, "collect_params", None)
    for param in (collect().values() if collect else ()):
        try:
            return param.list_ctx()[0]
        except RuntimeError:  # not initialised yet: the next one may be
            continue
    return mx.cpu()


def paste_masks(masks, boxes, height, width, threshold=0.5):
    """Paste M x M mask probabilities into an H x W image for each box (original pixels).

    One OpenCV resize per detection (no per-pixel Python). The M x M grid covers the box; a
    1-pixel zero border is added first so that edges interpolate to background, as in
    Detectron. Returns (N, H, W) uint8.
    """
    masks = np.asarray(masks, np.float32)
    out = np.zeros((len(masks), height, width), np.uint8)
    if len(masks) == 0:
        return out
    m = masks.shape[-1]
    padded = np.pad(masks, ((0, 0), (1, 1), (1, 1)))
    grow = (m + 2.0) / m
    for i, (mask, box) in enumerate(zip(padded, np.asarray(boxes, np.float32))):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half_w, half_h = (box[2] - box[0]) / 2 * grow, (box[3] - box[1]) / 2 * grow
        x0, y0 = int(np.floor(cx - half_w)), int(np.floor(cy - half_h))
        x1, y1 = int(np.ceil(cx + half_w)), int(np.ceil(cy + half_h))
        w, h = max(x1 - x0, 1), max(y1 - y0, 1)
        resized = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR) > threshold
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
        if ix1 > ix0 and iy1 > iy0:
            out[i, iy0:iy1, ix0:ix1] = resized[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
    return out


def detections_to_original(ids, scores, boxes, masks, scale, height, width, score_thresh=0.0,
                           mask_thresh=0.5):
    """One image's network outputs -> dict in original pixels, real detections only.

    ``scale``: the resize scales ``(scale_x, scale_y)`` (``ValTransform``'s ``info[2:4]``), or
    one scale for both axes.
    """
    ids, scores = ids.reshape(-1), scores.reshape(-1)
    keep = (ids >= 0) & (scores > score_thresh)
    scale_x, scale_y = np.broadcast_to(np.asarray(scale, np.float32), (2,))
    boxes = boxes.reshape(-1, 4)[keep] / np.array([scale_x, scale_y, scale_x, scale_y], np.float32)
    boxes = np.clip(boxes, 0, [width, height, width, height])
    return dict(boxes=boxes, labels=ids[keep].astype(np.int64), scores=scores[keep],
                masks=paste_masks(masks[keep], boxes, height, width, mask_thresh))


def predict_images(net, images, ctx=None, score_thresh=0.5, mask_thresh=0.5):
    """See :func:`gluon_maskrcnn.predict`. ``ctx``: default, the network's own device."""
    ctx = ctx or network_context(net)
    transform = ValTransform(net.short, net.max_size)
    results = []
    for image in images:
        if isinstance(image, str):
            image = read_image(image)
        height, width = image.shape[:2]
        x, info = transform(image)
        ids, scores, boxes, masks = (o[0].asnumpy() for o in net(mx.nd.array(x[None], ctx=ctx)))
        result = detections_to_original(ids, scores, boxes, masks, info[2:4], height, width,
                                        score_thresh, mask_thresh)
        result["class_names"] = [net.classes[i] for i in result["labels"]]
        results.append(result)
    return results
