"""COCO-format instance segmentation datasets: COCO itself or a user's own JSON.

Layout: ``ROOT/annotations/instances_SPLIT.json`` with images under ``ROOT/SPLIT/``.
"""
import json
import logging
import os
from collections import Counter

import cv2
import numpy as np

from ..errors import UserError

__all__ = ["COCOInstances", "Instances", "DataError", "read_image", "transform_item"]

logger = logging.getLogger(__name__)


class DataError(UserError, ValueError):
    """Bad input data; the message names the file, image or annotation."""


class Instances:
    """The objects of one image: boxes (M, 4) xyxy, labels (M,) in 0..C-1, and segmentations.

    Each segmentation is ``("polygons", [array (K, 2), ...])`` or ``("rle", rle_dict)`` in the
    image's original pixel coordinates.
    """

    __slots__ = ("boxes", "labels", "segms")

    def __init__(self, boxes, labels, segms):
        self.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.labels = np.asarray(labels, np.int64).reshape(-1)
        self.segms = list(segms)

    def __len__(self):
        return len(self.labels)

    def masks(self, height, width):
        """The segmentations rasterised at the image's size: (M, height, width) uint8."""
        from .transforms import rasterize

        masks = [rasterize(segm, (height, width), (height, width), 1.0, 1.0, False)
                 for segm in self.segms]
        return np.stack(masks) if masks else np.zeros((0, height, width), np.uint8)


def read_image(path):
    """Read an image as HxWx3 uint8 RGB (grayscale, PNG and 4-channel images included)."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        reason = "does not exist" if not os.path.exists(path) else "cannot be decoded as an image"
        raise DataError("image file %s %s" % (path, reason))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_annotation_file(path):
    """Parse an instances JSON, with errors that name the file and the problem."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError("annotation file %s does not exist" % path) from None
    except json.JSONDecodeError as err:
        raise DataError("annotation file %s is not valid JSON: %s" % (path, err)) from None
    if not isinstance(data, dict):
        raise DataError("annotation file %s: expected a JSON object at the top level" % path)
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError("annotation file %s: missing or invalid %r list" % (path, key))
    for i, image in enumerate(data["images"]):
        missing = [k for k in ("id", "file_name", "width", "height") if k not in image]
        if missing:
            raise DataError("annotation file %s: images[%d] lacks %s" % (path, i, ", ".join(missing)))
    return data


class COCOInstances:
    """A COCO-format instance segmentation dataset.

    ``dataset[i]`` is ``(image HxWx3 uint8 RGB, Instances)``. ``skipped`` counts every dropped
    image and annotation by kind; the counts are logged once, when the dataset is built.

    Parameters
    ----------
    root : str
        Dataset folder (``annotations/instances_SPLIT.json`` and ``SPLIT/`` inside).
    split : str
        ``train2017``, ``val2017``, ``train``, ...
    classes : list of str, optional
        Keep only these categories (by name), in this order; default: all, by category id.
    skip_empty : bool
        Drop images with no usable annotation (training); evaluation keeps every image.
    min_object_size : float
        Boxes narrower or shorter than this (after clipping) are degenerate and dropped.
    """

    def __init__(self, root, split, classes=None, skip_empty=True, min_object_size=1.0,
                 annotation_file=None, image_dir=None):
        self.root = root
        self.split = split
        self.annotation_file = annotation_file or os.path.join(root, "annotations",
                                                               "instances_%s.json" % split)
        self.image_dir = image_dir or os.path.join(root, split)
        self.min_object_size = min_object_size
        self.skipped = Counter()
        data = load_annotation_file(self.annotation_file)
        self._set_categories(data["categories"], classes)
        self._build_index(data, skip_empty)
        self._report()

    # ------------------------------------------------------------------ building
    def _set_categories(self, categories, classes):
        by_name = {c["name"]: c["id"] for c in categories}
        if classes is None:
            ordered = sorted(categories, key=lambda c: c["id"])
            classes = [c["name"] for c in ordered]
        unknown = [c for c in classes if c not in by_name]
        if unknown:
            raise DataError("annotation file %s has no categories named %s"
                            % (self.annotation_file, ", ".join(unknown)))
        self.classes = list(classes)
        self.category_ids = [by_name[c] for c in self.classes]  # contiguous index -> COCO id
        self._label_of = {cid: i for i, cid in enumerate(self.category_ids)}
        self._file_category_ids = {c["id"] for c in categories}

    def _build_index(self, data, skip_empty):
        per_image = {}
        for ann in data["annotations"]:
            per_image.setdefault(ann.get("image_id"), []).append(ann)
        self.images, self._instances = [], []
        for image in data["images"]:
            instances = self._parse_annotations(image, per_image.get(image["id"], []))
            if skip_empty and len(instances) == 0:
                self.skipped["image without usable annotations"] += 1
                continue
            self.images.append(image)
            self._instances.append(instances)

    def _parse_annotations(self, image, annotations):
        width, height = float(image["width"]), float(image["height"])
        boxes, labels, segms = [], [], []
        for ann in annotations:
            if ann.get("category_id") not in self._label_of:
                if ann.get("category_id") not in self._file_category_ids:
                    self.skipped["annotation whose category_id is not among the file's categories"] += 1
                continue  # else a class left out on purpose (``classes``)
            if ann.get("iscrowd", 0):
                self.skipped["crowd region (kept out of training targets)"] += 1
                continue
            parsed = self._parse_one(ann, width, height)
            if parsed is None:
                continue
            boxes.append(parsed[0])
            labels.append(self._label_of[ann["category_id"]])
            segms.append(parsed[1])
        return Instances(boxes, labels, segms)

    def _parse_one(self, ann, width, height):
        """(clipped box, segmentation) or None, counting the reason it is dropped."""
        bbox = ann.get("bbox")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            self.skipped["annotation without a valid bbox"] += 1
            return None
        x, y, w, h = (float(v) for v in bbox)
        box = np.array([x, y, x + w, y + h], np.float32)
        clipped = np.clip(box, 0, [width, height, width, height])
        if not np.array_equal(clipped, box):
            self.skipped["box clipped to the image"] += 1
        if min(clipped[2] - clipped[0], clipped[3] - clipped[1]) < self.min_object_size:
            self.skipped["degenerate or out-of-image box"] += 1
            return None
        segm = self._parse_segmentation(ann.get("segmentation"))
        if segm is None:
            return None
        return clipped, segm

    def _parse_segmentation(self, segm):
        if isinstance(segm, dict) and "counts" in segm and "size" in segm:
            from pycocotools import mask as mask_utils

            if isinstance(segm["counts"], list) and sum(segm["counts"]) != int(np.prod(segm["size"])):
                self.skipped["RLE whose counts do not cover its size"] += 1
                return None
            rle = segm if not isinstance(segm["counts"], list) else mask_utils.frPyObjects(segm, *segm["size"])
            if mask_utils.area(rle) == 0:
                self.skipped["zero-area mask"] += 1
                return None
            return ("rle", rle)
        if isinstance(segm, list):
            polygons = []
            for poly in segm:
                if not isinstance(poly, (list, tuple)) or len(poly) < 6 or len(poly) % 2:
                    self.skipped["polygon with fewer than 3 points"] += 1
                    continue
                polygons.append(np.asarray(poly, np.float32).reshape(-1, 2))
            area = sum(_polygon_area(p) for p in polygons)
            if not polygons or area <= 0:
                self.skipped["annotation without a usable mask"] += 1
                return None
            return ("polygons", polygons)
        self.skipped["annotation without a usable mask"] += 1
        return None

    def _report(self):
        if self.skipped:
            details = "; ".join("%s: %d" % kv for kv in sorted(self.skipped.items()))
            logger.warning("%s: %s", self.annotation_file, details)

    # ------------------------------------------------------------------ access
    def __len__(self):
        return len(self.images)

    def image_path(self, idx):
        return os.path.join(self.image_dir, self.images[idx]["file_name"])

    def image_id(self, idx):
        return self.images[idx]["id"]

    def aspect_ratios(self):
        """Width / height of every image, from the JSON (no image is read)."""
        return np.array([im["width"] / im["height"] for im in self.images], np.float32)

    def instances(self, idx):
        return self._instances[idx]

    def __getitem__(self, idx):
        return self.read_image(idx), self._instances[idx]

    def read_image(self, idx):
        """Image ``idx`` as HxWx3 uint8 RGB, at the width and height the annotation file gives.

        The boxes and masks are in the annotation file's frame (and COCO evaluation decodes the
        ground truth at its size), so the file wins: an image of another size is resized to it,
        counted (``skipped``) and named in a warning.
        """
        image = read_image(self.image_path(idx))
        meta = self.images[idx]
        if image.shape[:2] != (meta["height"], meta["width"]):
            key = "image whose size differs from the annotation file (resized to the file's)"
            self.skipped[key] += 1
            logger.warning("%s is %dx%d (width x height) but %s says %dx%d: resized to the annotation "
                           "file's size", self.image_path(idx), image.shape[1], image.shape[0],
                           self.annotation_file, meta["width"], meta["height"])
            image = cv2.resize(image, (int(meta["width"]), int(meta["height"])), interpolation=cv2.INTER_LINEAR)
        return image

    def transform(self, fn):
        """A view of this dataset with ``fn(image, instances)`` applied to every item."""
        return _Transformed(self, fn)


class _Transformed:
    def __init__(self, dataset, fn):
        self._dataset = dataset
        self._fn = fn

    def __len__(self):
        return len(self._dataset)

    def __getitem__(self, idx):
        return transform_item(self._dataset, idx, self._fn)


def transform_item(dataset, idx, fn, *args):
    """``fn(image, instances, *args)`` for item ``idx``; any failure names the image file."""
    image, instances = dataset[idx]  # an unreadable file raises DataError naming it
    try:
        return fn(image, instances, *args)
    except DataError:
        raise
    except Exception as err:
        raise DataError("transforming image %s failed: %s: %s"
                        % (dataset.image_path(idx), type(err).__name__, err)) from err


def _polygon_area(points):
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
