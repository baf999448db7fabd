"""A COCO annotation list parsed in bulk into a few flat arrays.

COCO train has 860,000 annotations. Parsing them one by one into per-image Python objects took
over a minute and 2 GB, and every forked DataLoader worker that reads such objects touches
their reference counts, which turns its copy-on-write pages into private copies. Here the
checks run over whole columns with NumPy, and what is kept is a handful of arrays:

- ``boxes`` (K, 4) float32 xyxy and ``labels`` (K,) int64 of the K kept annotations, grouped by
  image, with ``image_starts`` (I+1,) offsets;
- polygons: ``coords`` (V*2,) float32 xy of every vertex, ``polygon_starts`` (P+1,) offsets into
  it, and ``ann_polygons`` (K+1,) offsets of each annotation's polygons (none for an RLE one);
- RLE masks (crowd-free COCO has few): ``rle_index`` (K,) index into the ``rles`` list, or -1.
"""
import itertools

import numpy as np

__all__ = ["FlatAnnotations", "parse_annotations", "FLAT_ARRAYS"]

FLAT_ARRAYS = ("boxes", "labels", "image_starts", "coords", "polygon_starts", "ann_polygons", "rle_index")

_NO_BOX = (np.nan,) * 4


class FlatAnnotations:
    """The kept annotations of a dataset's images, in flat arrays (see the module doc)."""

    def __init__(self, boxes, labels, image_starts, coords, polygon_starts, ann_polygons, rle_index, rles):
        self.boxes, self.labels, self.image_starts = boxes, labels, image_starts
        self.coords, self.polygon_starts, self.ann_polygons = coords, polygon_starts, ann_polygons
        self.rle_index, self.rles = rle_index, rles

    def arrays(self):
        """{name: array} of everything but the RLE list (see ``FLAT_ARRAYS``)."""
        return {name: getattr(self, name) for name in FLAT_ARRAYS}

    def segmentation(self, ann):
        """``("polygons", [array (n, 2), ...])`` (views of ``coords``) or ``("rle", dict)``."""
        if self.rle_index[ann] >= 0:
            return ("rle", self.rles[self.rle_index[ann]])
        first, last = self.ann_polygons[ann], self.ann_polygons[ann + 1]
        starts = self.polygon_starts
        return ("polygons", [self.coords[starts[p]:starts[p + 1]].reshape(-1, 2)  # (2n,) -> (n, 2)
                             for p in range(first, last)])

    def image(self, image):
        """(boxes, labels, segmentations) of one image."""
        begin, end = self.image_starts[image], self.image_starts[image + 1]
        return (self.boxes[begin:end], self.labels[begin:end],
                [self.segmentation(a) for a in range(begin, end)])

    def select_images(self, keep):
        """The same annotations for the images where ``keep`` (I,) is true, in order."""
        counts = np.diff(self.image_starts)
        anns = np.repeat(keep, counts)
        new_starts = np.concatenate([[0], np.cumsum(counts[keep])])
        polygon_counts = np.diff(self.ann_polygons)[anns]
        polygons = np.repeat(anns, np.diff(self.ann_polygons))
        lengths = np.diff(self.polygon_starts)[polygons]
        vertex_keep = np.repeat(polygons, np.diff(self.polygon_starts))
        return FlatAnnotations(self.boxes[anns], self.labels[anns], new_starts, self.coords[vertex_keep],
                               np.concatenate([[0], np.cumsum(lengths)]),
                               np.concatenate([[0], np.cumsum(polygon_counts)]), self.rle_index[anns], self.rles)


def _column(annotations, key, default=None):
    return [a.get(key, default) for a in annotations]


def _boxes_xywh(bboxes):
    """(N, 4) float64; NaN rows for a bbox that is not four numbers."""
    rows = [b if type(b) in (list, tuple) and len(b) == 4 else _NO_BOX for b in bboxes]
    try:
        return np.array(rows, np.float64).reshape(-1, 4)
    except (TypeError, ValueError):  # non-numbers somewhere: the slow path, row by row
        out = np.full((len(rows), 4), np.nan)
        for i, row in enumerate(rows):
            try:
                out[i] = [float(v) for v in row]
            except (TypeError, ValueError):
                pass
        return out


def _polygon_areas(coords, starts, chunk=1 << 22):
    """Shoelace area of each polygon of a flat xy array with offsets ``starts`` (P+1,), in
    chunks of about ``chunk`` vertices (COCO train has 19 million)."""
    areas = np.zeros(len(starts) - 1)
    first = 0
    while first < len(starts) - 1:
        last = int(np.searchsorted(starts, starts[first] + 2 * chunk, side="right")) - 1
        last = max(last, first + 1)
        areas[first:last] = _shoelace(coords[starts[first]:starts[last]], starts[first:last + 1] - starts[first])
        first = last
    return areas


def _shoelace(coords, starts):
    x, y = coords[0::2].astype(np.float64), coords[1::2].astype(np.float64)
    vertex_starts = starts[:-1] // 2
    previous = np.arange(len(x)) - 1
    previous[vertex_starts] = starts[1:] // 2 - 1  # the first vertex's previous is the last
    cross = x * y[previous] - y * x[previous]
    return 0.5 * np.abs(np.add.reduceat(cross, vertex_starts))


def _parse_polygons(segms, rows, skipped):
    """Flat polygons of the annotations ``rows`` (whose segmentation is a list). Returns (coords,
    polygon starts, per-row polygon counts, per-row area)."""
    polygons, owners = [], []
    for row in rows:
        for poly in segms[row]:
            polygons.append(poly)
            owners.append(row)
    lengths = np.array([len(p) if type(p) in (list, tuple) else 0 for p in polygons], np.int64)
    valid = (lengths >= 6) & (lengths % 2 == 0)
    skipped["polygon with fewer than 3 points"] += int((~valid).sum())
    kept = [p for p, ok in zip(polygons, valid.tolist()) if ok]
    coords = np.fromiter(itertools.chain.from_iterable(kept), np.float32, int(lengths[valid].sum()))
    starts = np.concatenate([[0], np.cumsum(lengths[valid])])
    owner_index = np.searchsorted(rows, np.array(owners, np.int64)[valid]) if len(rows) else np.zeros(0, np.int64)
    counts = np.bincount(owner_index, minlength=len(rows))
    area = np.bincount(owner_index, weights=_polygon_areas(coords, starts), minlength=len(rows))
    return coords, starts, counts, area


def _parse_rles(segms, rows, skipped):
    """(ok mask over ``rows``, list of RLE dicts) of the annotations whose segmentation is RLE."""
    from pycocotools import mask as mask_utils

    ok, rles = np.zeros(len(rows), bool), []
    for i, row in enumerate(rows):
        segm = segms[row]
        if isinstance(segm["counts"], list) and sum(segm["counts"]) != int(np.prod(segm["size"])):
            skipped["RLE whose counts do not cover its size"] += 1
            continue
        rle = segm if not isinstance(segm["counts"], list) else mask_utils.frPyObjects(segm, *segm["size"])
        if mask_utils.area(rle) == 0:
            skipped["zero-area mask"] += 1
            continue
        ok[i] = True
        rles.append(rle)
    return ok, rles


def _segment_kinds(segms):
    """(N,) int8: 1 polygons, 2 RLE, 0 neither."""
    return np.array([1 if type(s) is list else
                     2 if isinstance(s, dict) and "counts" in s and "size" in s else 0 for s in segms], np.int8)


def parse_annotations(annotations, image_ids, image_sizes, label_of, file_category_ids, min_object_size,
                      skipped):
    """Check and keep ``annotations`` (the JSON list) of the images ``image_ids`` (I,) with
    ``image_sizes`` (I, 2) width, height; count each drop by reason in ``skipped`` (a Counter).
    Returns :class:`FlatAnnotations` over all I images, in their order."""
    position = {image_id: i for i, image_id in enumerate(image_ids)}
    owner = np.array([position.get(i, -1) for i in _column(annotations, "image_id")], np.int64)
    mine = np.flatnonzero(owner >= 0)  # annotations of images not in the file are not ours
    annotations = [annotations[i] for i in mine.tolist()]
    owner = owner[mine]

    category = _column(annotations, "category_id")
    labels = np.array([label_of.get(c, -1) for c in category], np.int64)
    unknown = np.array([c not in file_category_ids for c in category], bool)
    skipped["annotation whose category_id is not among the file's categories"] += int(unknown.sum())
    keep = labels >= 0  # else unknown, or a class left out on purpose (``classes``)
    crowd = np.array([bool(v) for v in _column(annotations, "iscrowd", 0)], bool) & keep
    skipped["crowd region (kept out of training targets)"] += int(crowd.sum())
    keep &= ~crowd

    xywh = _boxes_xywh(_column(annotations, "bbox"))
    no_box = np.isnan(xywh).any(1) & keep
    skipped["annotation without a valid bbox"] += int(no_box.sum())
    keep &= ~no_box
    box = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1).astype(np.float32)  # xywh -> xyxy
    size = np.asarray(image_sizes, np.float32)[owner]  # (N, 2) width, height
    limit = np.concatenate([size, size], 1)
    clipped = np.minimum(np.maximum(box, 0), limit)
    skipped["box clipped to the image"] += int(((clipped != box).any(1) & keep).sum())
    sides = np.minimum(clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1])
    degenerate = (sides < min_object_size) & keep
    skipped["degenerate or out-of-image box"] += int(degenerate.sum())
    keep &= ~degenerate

    segms = _column(annotations, "segmentation")
    kinds = _segment_kinds(segms)
    polygon_rows = np.flatnonzero(keep & (kinds == 1))
    coords, polygon_starts, polygon_counts, area = _parse_polygons(segms, polygon_rows, skipped)
    rle_rows = np.flatnonzero(keep & (kinds == 2))
    rle_ok, rles = _parse_rles(segms, rle_rows, skipped)
    no_mask = (keep & (kinds == 0)).sum() + int(((polygon_counts == 0) | (area <= 0)).sum())
    skipped["annotation without a usable mask"] += int(no_mask)

    usable_polygons = (polygon_counts > 0) & (area > 0)
    keep_rows = np.sort(np.concatenate([polygon_rows[usable_polygons], rle_rows[rle_ok]]))
    return _assemble(keep_rows, owner, clipped, labels, len(image_ids), polygon_rows, usable_polygons,
                     polygon_counts, coords, polygon_starts, rle_rows[rle_ok], rles)


def _assemble(rows, owner, boxes, labels, num_images, polygon_rows, usable, polygon_counts, coords,
              polygon_starts, rle_rows, rles):
    """Group the kept annotation ``rows`` by image (file order within each image)."""
    order = rows[np.argsort(owner[rows], kind="stable")]
    image_starts = np.concatenate([[0], np.cumsum(np.bincount(owner[order], minlength=num_images))])
    # polygons of the kept polygon annotations, reordered with them
    polygon_first = np.concatenate([[0], np.cumsum(polygon_counts)])
    per_row_polygons = np.zeros(len(owner), np.int64)
    per_row_polygons[polygon_rows[usable]] = polygon_counts[usable]
    first_of_row = np.zeros(len(owner), np.int64)
    first_of_row[polygon_rows] = polygon_first[:-1]
    counts = per_row_polygons[order]
    polygon_ids = np.repeat(first_of_row[order], counts) + _ranges(counts)
    lengths = np.diff(polygon_starts)[polygon_ids]
    kept_coords = _select_polygons(coords, polygon_starts, polygon_ids, lengths)
    rle_index = np.full(len(owner), -1, np.int64)
    rle_index[rle_rows] = np.arange(len(rle_rows))
    return FlatAnnotations(boxes[order], labels[order].astype(np.int64), image_starts, kept_coords,
                           np.concatenate([[0], np.cumsum(lengths)]), np.concatenate([[0], np.cumsum(counts)]),
                           rle_index[order], rles)


def _select_polygons(coords, starts, polygon_ids, lengths):
    """The coordinates of polygons ``polygon_ids``, in that order. Files whose annotations are
    grouped by image keep the polygons in file order: then a boolean mask over the vertices does
    (COCO train: 38 MB, against 300 MB for each int64 index array of the general case)."""
    if np.all(np.diff(polygon_ids) > 0):
        chosen = np.zeros(len(starts) - 1, bool)
        chosen[polygon_ids] = True
        return coords[np.repeat(chosen, np.diff(starts))]
    return coords[np.repeat(starts[:-1][polygon_ids], lengths) + _ranges(lengths)]


def _ranges(counts):
    """[0..c0-1, 0..c1-1, ...] for ``counts``, as one array."""
    counts = np.asarray(counts, np.int64)
    if counts.sum() == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(counts)
    return np.arange(ends[-1]) - np.repeat(ends - counts, counts)
