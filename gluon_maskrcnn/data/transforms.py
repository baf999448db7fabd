"""Train and validation transforms: resize, flip, normalise, rasterise masks.

They work on ``(image HxWx3 uint8 RGB, Instances)`` and return NumPy arrays, so they run in
``DataLoader`` workers. The RPN targets are computed later, in the batchify function, once the
padded batch shape is known (see :mod:`.batchify`).
"""
import cv2
import numpy as np

__all__ = ["resize_scale", "TrainTransform", "ValTransform", "rasterize", "MEAN", "STD"]

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def resize_scale(height, width, short, max_size):
    """Scale that makes the short side ``short`` without the long side exceeding ``max_size``."""
    scale = short / min(height, width)
    if max(height, width) * scale > max_size:
        scale = max_size / max(height, width)
    return scale


def _resize(image, short, max_size):
    h, w = image.shape[:2]
    scale = resize_scale(h, w, short, max_size)
    new_w, new_h = int(round(w * scale)), int(round(h * scale))
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR), new_w / w, new_h / h


def _normalize(image, mean=MEAN, std=STD):
    """HxWx3 uint8 -> 3xHxW float32, (x/255 - mean) / std."""
    scale = np.float32(1.0 / 255)
    out = (image.astype(np.float32) * scale - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def rasterize(segm, orig_hw, out_hw, sx, sy, flip):
    """One instance's segmentation as an out_h x out_w uint8 mask (after scaling and flip)."""
    from pycocotools import mask as mask_utils

    out_h, out_w = out_hw
    kind, value = segm
    if kind == "polygons":  # rasterised as COCO evaluation rasterises ground truth
        polys = []
        for poly in value:
            pts = poly * np.array([sx, sy], np.float32)
            if flip:
                pts[:, 0] = out_w - pts[:, 0]
            polys.append(pts.reshape(-1).astype(np.float64).tolist())
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, out_h, out_w))
        return mask_utils.decode(rle)
    full = mask_utils.decode(value)  # (H, W) at the original size
    mask = cv2.resize(full, (out_w, out_h), interpolation=cv2.INTER_NEAREST)
    return mask[:, ::-1].copy() if flip else mask


class TrainTransform:
    """Resize, flip, normalise.

    ``short``: the short side, or a pair ``(low, high)``: a random short side in
    ``low..high`` (both included) for each image, as GluonCV's SyncBN models train.

    Returns ``(image 3xHxW float32, boxes (M, 4) float32, labels (M,) float32, masks (M, H, W) uint8)``.
    """

    def __init__(self, short=800, max_size=1333, flip_prob=0.5, mean=MEAN, std=STD, seed=None):
        low, high = (short, short) if not isinstance(short, (list, tuple)) else tuple(short)
        self.short_range = (int(low), int(high))
        self.max_size = max_size
        self.flip_prob = flip_prob
        self.mean, self.std = mean, std
        self._rng = np.random.RandomState(seed)

    def __call__(self, image, instances, rng=None):
        rng = rng if rng is not None else self._rng
        h, w = image.shape[:2]
        short = rng.randint(self.short_range[0], self.short_range[1] + 1)
        image, sx, sy = _resize(image, short, self.max_size)
        out_h, out_w = image.shape[:2]
        boxes = instances.boxes * np.array([sx, sy, sx, sy], np.float32)
        flip = rng.rand() < self.flip_prob
        if flip:
            image = image[:, ::-1]
            boxes = np.stack([out_w - boxes[:, 2], boxes[:, 1], out_w - boxes[:, 0], boxes[:, 3]], axis=1)
        masks = np.zeros((len(instances), out_h, out_w), np.uint8)
        for i, segm in enumerate(instances.segms):
            masks[i] = rasterize(segm, (h, w), (out_h, out_w), sx, sy, flip)
        return (_normalize(image, self.mean, self.std), boxes.astype(np.float32),
                instances.labels.astype(np.float32), masks)


class ValTransform:
    """Resize and normalise. Returns ``(image 3xHxW float32, info [h, w, scale_x, scale_y])``:
    the resized height and width, and the two scales (the rounded sizes make them differ a
    little), which take boxes back to the original image."""

    def __init__(self, short=800, max_size=1333, mean=MEAN, std=STD):
        # a training range (low, high): inference at its high end, as GluonCV evaluates
        self.short = max(short) if isinstance(short, (list, tuple)) else short
        self.max_size = max_size
        self.mean, self.std = mean, std

    def __call__(self, image, instances=None):
        resized, sx, sy = _resize(image, self.short, self.max_size)
        info = np.array([resized.shape[0], resized.shape[1], sx, sy], np.float32)
        return _normalize(resized, self.mean, self.std), info
