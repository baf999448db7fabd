"""Instance masks at image size without image-sized arrays: each detection's mask is pasted into
its box only (a crop and its offset), and COCO's run-length encoding of the whole image is
computed from the crop.

A mask is zero outside its box, so in COCO's column-major order its runs are: zeros down to
the box in each column, the crop column's own runs, zeros below, and whole columns of zeros
left and right of the box. :func:`crop_rle_counts` finds the crop's value changes with NumPy
and places them in the image; the counts equal ``pycocotools.mask.encode`` of the full paste,
run for run.
"""
import ctypes

import cv2
import numpy as np

from .ops import rle_library

__all__ = ["mask_crops", "paste_crops", "crop_rle_counts", "encode_masks", "encode_crops_numpy"]


def _resized_windows(masks, boxes, height, width):
    """Per detection ``(resized, (top, left, rows, cols), (x0, y0))``: its M x M probabilities
    (with a 1-pixel zero border) resized to its grown box, the window of that array inside the
    image, and the window's top-left image pixel; ``resized`` is None for a box outside.

    The M x M grid covers the box; the zero border makes edges interpolate to background, as in
    Detectron; one OpenCV resize per detection, the geometry computed for all at once.
    """
    masks = np.asarray(masks, np.float32)
    if len(masks) == 0:
        return []
    boxes = np.asarray(boxes, np.float32)
    m = masks.shape[-1]
    padded = np.pad(masks, ((0, 0), (1, 1), (1, 1)))  # (N, M+2, M+2)
    grow = (m + 2.0) / m
    centre = ((boxes[:, :2] + boxes[:, 2:]) / 2).astype(np.float64)  # (N, 2) x, y
    half = ((boxes[:, 2:] - boxes[:, :2]) / 2).astype(np.float64) * grow  # (N, 2) half width, height
    start = np.floor(centre - half).astype(np.int64)  # (N, 2) x0, y0 of the grown box
    size = np.maximum(np.ceil(centre + half).astype(np.int64) - start, 1)  # (N, 2) w, h
    low = np.maximum(start, 0)
    high = np.minimum(start + size, [width, height])
    windows = []
    geometry = np.concatenate([start, size, low, high], axis=1).tolist()  # (N, 8) as Python ints
    for mask, (x0, y0, w, h, ix0, iy0, ix1, iy1) in zip(padded, geometry):
        if ix1 <= ix0 or iy1 <= iy0:
            windows.append((None, (0, 0, 0, 0), (0, 0)))
            continue
        resized = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        windows.append((resized, (iy0 - y0, ix0 - x0, iy1 - iy0, ix1 - ix0), (ix0, iy0)))
    return windows


def mask_crops(masks, boxes, height, width, threshold=0.5):
    """Each detection's M x M mask probabilities (N, M, M) pasted into its box (N, 4) in
    original pixels: a list of ``(crop, x0, y0)``, the binary crop (h, w) uint8 of the image's
    pixels it covers, with its top-left pixel; a box outside the image gives an empty crop."""
    crops = []
    for resized, (top, left, rows, cols), (x0, y0) in _resized_windows(masks, boxes, height, width):
        if resized is None:
            crops.append((np.zeros((0, 0), np.uint8), 0, 0))
        else:
            crops.append(((resized[top:top + rows, left:left + cols] > threshold).view(np.uint8), x0, y0))
    return crops


def paste_crops(crops, height, width):
    """The full masks (N, H, W) uint8 of :func:`mask_crops`' crops."""
    out = np.zeros((len(crops), height, width), np.uint8)
    for i, (crop, x0, y0) in enumerate(crops):
        out[i, y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
    return out


def crop_rle_counts(crop, x0, y0, height, width):
    """COCO's uncompressed RLE counts of the H x W mask that is ``crop`` at ``(x0, y0)`` and
    zero elsewhere: run lengths in column-major order, starting with zeros."""
    h, w = crop.shape
    total = height * width
    if h == 0 or w == 0:
        return np.array([total], np.int64)
    padded = np.zeros((h + 2, w), bool)  # a zero row above and below: each column starts and ends at 0
    padded[1:-1] = crop
    changes = padded[1:] != padded[:-1]  # (h + 1, w): where a value differs from the one above
    cols, rows = np.nonzero(changes.T)  # column-major, as COCO counts
    positions = (x0 + cols.astype(np.int64)) * height + y0 + rows
    if len(positions) > 1:  # a run down to the image's bottom going on at the next column's top:
        same = np.flatnonzero(positions[1:] == positions[:-1])  # two changes at one place cancel
        if len(same):
            keep = np.ones(len(positions), bool)
            keep[same] = keep[same + 1] = False
            positions = positions[keep]
    if len(positions) and positions[-1] == total:  # ones to the very last pixel: no closing run
        positions = positions[:-1]
    return np.diff(np.concatenate(([0], positions, [total])))


# pixels of resized mask windows encoded per call of the C helper: bounds the float32 windows
# held at once (64 MB) whatever the image size
CHUNK_PIXELS = 1 << 24


def encode_masks(masks, boxes, height, width, threshold=0.5):
    """COCO RLE dicts (``{"size": [H, W], "counts": bytes}``, compressed exactly as
    ``pycocotools.mask.encode`` writes them) of the masks :func:`mask_crops` pastes, encoded
    from each box's window by a small C helper (:func:`gluon_maskrcnn.ops.rle_library`,
    compiled on first use) with no H x W array,
    ``CHUNK_PIXELS`` of windows at a time; with NumPy (:func:`encode_crops_numpy`) where
    there is no compiler."""
    library = rle_library()
    if library is None:
        return encode_crops_numpy(mask_crops(masks, boxes, height, width, threshold), height, width)
    masks, boxes = np.asarray(masks, np.float32), np.asarray(boxes, np.float32)
    if len(masks) == 0:
        return []
    grow = (masks.shape[-1] + 2.0) / masks.shape[-1]
    sides = np.ceil(np.abs(boxes[:, 2:] - boxes[:, :2]).astype(np.float64) * grow) + 2  # (N, 2) >= window
    ends = np.cumsum(sides.prod(axis=1))  # (N,) pixels up to each detection
    encoded, first = [], 0
    while first < len(masks):
        # at least one detection per call; at most CHUNK_PIXELS beyond the first one's start
        limit = (ends[first - 1] if first else 0.0) + CHUNK_PIXELS
        last = max(first + 1, int(np.searchsorted(ends, limit, side="right")))
        encoded += _encode_windows(library, _resized_windows(masks[first:last], boxes[first:last], height, width),
                                   threshold, height, width)
        first = last
    return encoded


def _encode_windows(library, windows, threshold, height, width):
    """:func:`encode_masks` of :func:`_resized_windows`' windows, by the C helper."""
    n = len(windows)
    if n == 0:
        return []
    blank = np.zeros((1, 1), np.float32)  # a box outside the image: an empty window
    arrays = [resized if resized is not None else blank for resized, _, _ in windows]
    table = np.array([(top, left, rows, cols, x0, y0) for _, (top, left, rows, cols), (x0, y0) in windows],
                     np.int64).reshape(n, 6)  # (N, 6)
    strides = np.array([a.shape[1] for a in arrays], np.int64)
    starts = (ctypes.c_void_p * n)(*[a.ctypes.data + 4 * (top * a.shape[1] + left)
                                     for a, (top, left) in zip(arrays, table[:, :2].tolist())])
    rows, cols, x0, y0 = (np.ascontiguousarray(table[:, k], np.int32) for k in (2, 3, 4, 5))
    most = max(int(cols.max()), 1)
    previous, starts_scratch = np.empty(2 * most, np.uint8), np.empty(2 * most + 2, np.int64)
    # a few value changes per column are typical; the worst case (every pixel) needs a retry
    events_capacity = int(max(8 * most, 4 * int((rows.astype(np.int64) + 1).max()) * 4))
    capacity = int(7 * (8 * int(cols.sum()) + 2 * n) + 64)  # <= 7 characters a count
    ends = np.zeros(n, np.int64)
    pointer = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    while True:
        out, events = np.empty(capacity, np.uint8), np.empty(events_capacity, np.int32)
        found = np.empty(2 * events_capacity, np.int32)
        status = library.gm_encode_windows(n, starts, pointer(strides), pointer(rows), pointer(cols), pointer(x0),
                                           pointer(y0), threshold, height, width, pointer(out), capacity,
                                           pointer(ends), pointer(previous), pointer(starts_scratch),
                                           pointer(events), pointer(found), events_capacity)
        if status == 0:
            break
        worst = int(((rows.astype(np.int64) + 1) * cols).max()) + 1  # a change at every pixel
        if status == -1 and capacity < 7 * (2 * worst * n + 2 * n) + 64:
            capacity = int(7 * (2 * worst * n + 2 * n) + 64)
        elif status == -2 and events_capacity < worst:
            events_capacity = worst
        else:
            raise RuntimeError("gm_encode_windows failed with status %d" % status)
    raw, bounds = out[:int(ends[-1])].tobytes(), [0] + ends.tolist()
    return [{"size": [height, width], "counts": raw[bounds[i]:bounds[i + 1]]} for i in range(n)]


def encode_crops_numpy(crops, height, width):
    """COCO RLE dicts of :func:`mask_crops`' crops, with NumPy and pycocotools only (what
    :func:`encode_masks` falls back on)."""
    from pycocotools import mask as mask_utils

    if not crops:
        return []
    uncompressed = [{"size": [height, width], "counts": crop_rle_counts(crop, x0, y0, height, width).tolist()}
                    for crop, x0, y0 in crops]
    return mask_utils.frPyObjects(uncompressed, height, width)
