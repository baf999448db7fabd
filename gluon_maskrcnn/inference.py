"""Running a model on images: batching, un-scaling boxes, and pasting masks to full size."""
import mxnet as mx
import numpy as np

from .data.coco import read_image
from .data.transforms import ValTransform
from .masks import encode_masks, mask_crops, paste_crops

__all__ = ["paste_masks", "detections_to_original", "predict_images", "network_context", "MASK_FORMATS"]


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


MASK_FORMATS = ("full", "rle", "crop")


def paste_masks(masks, boxes, height, width, threshold=0.5):
    """Paste M x M mask probabilities into an H x W image for each box (original pixels).

    One OpenCV resize per detection, into its box only (:func:`~gluon_maskrcnn.masks.mask_crops`).
    The M x M grid covers the box; a 1-pixel zero border is added first so that edges
    interpolate to background, as in Detectron. Returns (N, H, W) uint8.
    """
    return paste_crops(mask_crops(masks, boxes, height, width, threshold), height, width)


def detections_to_original(ids, scores, boxes, masks, scale, height, width, score_thresh=0.0,
                           mask_thresh=0.5, mask_format="full"):
    """One image's network outputs -> dict in original pixels, real detections only.

    ``scale``: the resize scales ``(scale_x, scale_y)`` (``ValTransform``'s ``info[2:4]``), or
    one scale for both axes. ``mask_format`` (see :func:`gluon_maskrcnn.predict`):
    ``"full"`` masks (N, H, W) uint8; ``"rle"`` COCO RLE dicts; ``"crop"`` each mask in its box
    (a list of (h, w) uint8 arrays) with ``mask_offsets`` (N, 2), the crops' top-left (x, y).
    """
    if mask_format not in MASK_FORMATS:
        raise ValueError("mask_format %r: choose one of %s" % (mask_format, ", ".join(MASK_FORMATS)))
    ids, scores = ids.reshape(-1), scores.reshape(-1)
    keep = (ids >= 0) & (scores > score_thresh)
    scale_x, scale_y = np.broadcast_to(np.asarray(scale, np.float32), (2,))
    boxes = boxes.reshape(-1, 4)[keep] / np.array([scale_x, scale_y, scale_x, scale_y], np.float32)
    boxes = np.clip(boxes, 0, [width, height, width, height])
    result = dict(boxes=boxes, labels=ids[keep].astype(np.int64), scores=scores[keep])
    if mask_format == "rle":
        result["masks"] = encode_masks(masks[keep], boxes, height, width, mask_thresh)
    elif mask_format == "crop":
        crops = mask_crops(masks[keep], boxes, height, width, mask_thresh)
        result["masks"] = [crop for crop, _, _ in crops]
        result["mask_offsets"] = np.array([(x0, y0) for _, x0, y0 in crops], np.int64).reshape(-1, 2)
    else:
        result["masks"] = paste_masks(masks[keep], boxes, height, width, mask_thresh)
    return result


def predict_images(net, images, ctx=None, score_thresh=0.5, mask_thresh=0.5, mask_format="full"):
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
                                        score_thresh, mask_thresh, mask_format)
        result["class_names"] = [net.classes[i] for i in result["labels"]]
        results.append(result)
    return results
