"""COCO-format instance segmentation datasets: COCO itself or a user's own JSON.

Layout: ``ROOT/annotations/instances_SPLIT.json`` with images under ``ROOT/SPLIT/``.
"""
import json
import logging
import os
import subprocess
import sys
from collections import Counter

import cv2
import numpy as np

from ..errors import UserError
from .annotation_cache import file_key, load_cache, rles_from_cache, save_cache
from .flat_annotations import FLAT_ARRAYS, FlatAnnotations, parse_annotations

__all__ = ["COCOInstances", "Instances", "DataError", "read_image", "transform_item", "write_annotation_cache",
           "PARSE_IN_CHILD_BYTES"]

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
    cache : bool
        Keep the parse next to the annotation file (``.gmcache.npz``), keyed by the file's
        size, time and SHA-1 and the settings, so that the next load skips parsing.
    parse_in_child : bool
        With ``cache``, parse a file of ``PARSE_IN_CHILD_BYTES`` or more in a child
        process that writes the cache, then read the cache.
    """

    def __init__(self, root, split, classes=None, skip_empty=True, min_object_size=1.0,
                 annotation_file=None, image_dir=None, cache=True, parse_in_child=True):
        self.root = root
        self.split = split
        self.annotation_file = annotation_file or os.path.join(root, "annotations",
                                                               "instances_%s.json" % split)
        self.image_dir = image_dir or os.path.join(root, split)
        self.min_object_size = min_object_size
        self.skipped = Counter()
        images, flat = self._load(classes, cache, parse_in_child)
        keep = np.ones(len(images), bool)
        if skip_empty:
            keep = np.diff(flat.image_starts) > 0
            self.skipped["image without usable annotations"] += int((~keep).sum())
            images, flat = images.select(keep), flat.select_images(keep)
        self.images, self.annotations = images, flat
        for reason in [r for r, n in self.skipped.items() if not n]:  # counted in bulk, zeros too
            del self.skipped[reason]
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

    def _load(self, classes, cache, parse_in_child=True):
        """(ImageTable, FlatAnnotations) of every image: from the cache when it is valid, else
        parsed from the file (and cached)."""
        settings = {"classes": classes, "min_object_size": self.min_object_size}
        key = file_key(self.annotation_file, settings) if cache and os.path.exists(self.annotation_file) else None
        cached = load_cache(self.annotation_file, key) if key else None
        big = os.path.getsize(self.annotation_file) >= PARSE_IN_CHILD_BYTES if key else False
        if cached is None and key and parse_in_child and big:
            cached = _parse_in_child(self.annotation_file, classes, self.min_object_size, key)
        if cached is not None:
            self._set_categories(cached["categories"], classes)
            self.skipped.update(cached["skipped"])
            images = ImageTable(*(cached[k] for k in ("image_ids", "image_widths", "image_heights", "image_names",
                                                      "image_name_starts")))
            flat = FlatAnnotations(*(cached[k] for k in FLAT_ARRAYS), rles_from_cache(cached["rles"]))
            return images, flat
        data = load_annotation_file(self.annotation_file)
        self._set_categories(data["categories"], classes)
        images = ImageTable.from_records(data["images"])
        sizes = np.stack([images.widths, images.heights], 1).astype(np.float32)  # (I, 2)
        flat = parse_annotations(data["annotations"], images.ids.tolist(), sizes, self._label_of,
                                 self._file_category_ids, self.min_object_size, self.skipped)
        if key:
            save_cache(self.annotation_file, key, dict(flat.arrays(), **images.arrays()), data["categories"],
                       flat.rles, dict(self.skipped))
        return images, flat

    def _report(self):
        if self.skipped:
            details = "; ".join("%s: %d" % kv for kv in sorted(self.skipped.items()))
            logger.warning("%s: %s", self.annotation_file, details)

    # ------------------------------------------------------------------ access
    def __len__(self):
        return len(self.images)

    def image_path(self, idx):
        return os.path.join(self.image_dir, self.images.file_name(idx))

    def image_id(self, idx):
        return int(self.images.ids[idx])

    def aspect_ratios(self):
        """Width / height of every image, from the JSON (no image is read)."""
        return (self.images.widths / self.images.heights).astype(np.float32)

    def instances(self, idx):
        return Instances(*self.annotations.image(idx))

    def __getitem__(self, idx):
        return self.read_image(idx), self.instances(idx)

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


# Files at least this big are parsed by a child process, which writes the cache: the JSON's
# millions of Python objects never live in the training process (whose DataLoader workers would
# inherit its heap) and its memory peak ends with the child.
PARSE_IN_CHILD_BYTES = 64 << 20


def write_annotation_cache(annotation_file, classes, min_object_size):
    """Parse ``annotation_file`` and write its cache (what the child process runs)."""
    COCOInstances(os.path.dirname(annotation_file), "", classes=classes, skip_empty=False,
                  min_object_size=min_object_size, annotation_file=annotation_file, cache=True,
                  parse_in_child=False)


def _parse_in_child(annotation_file, classes, min_object_size, key):
    """The cache written by a child process, or None if the child could not (an unwritable
    folder, a bad file: the caller then parses in this process and reports it)."""
    code = ("import json, sys\nfrom gluon_maskrcnn.data.coco import write_annotation_cache\n"
            "write_annotation_cache(sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]))")
    done = subprocess.run([sys.executable, "-c", code, annotation_file, json.dumps(classes), str(min_object_size)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        logger.info("parsing %s in a child process failed; parsing it here", annotation_file)
        return None
    return load_cache(annotation_file, key)


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


class ImageTable:
    """The images of a dataset as a few arrays; ``table[i]`` is image ``i``'s record as a dict
    (``id``, ``file_name``, ``width``, ``height``), made when asked for. DataLoader workers then
    share the table's pages instead of copying one Python dict per image."""

    def __init__(self, ids, widths, heights, names, name_starts):
        self.ids, self.widths, self.heights = ids, widths, heights
        self._names, self._name_starts = names, name_starts

    @classmethod
    def from_records(cls, images):
        names = [im["file_name"].encode("utf-8") for im in images]
        return cls(np.array([im["id"] for im in images], np.int64), np.array([im["width"] for im in images], np.int64),
                   np.array([im["height"] for im in images], np.int64),
                   np.frombuffer(b"".join(names), np.uint8).copy() if names else np.zeros(0, np.uint8),
                   np.concatenate([[0], np.cumsum([len(n) for n in names], dtype=np.int64)]).astype(np.int64))

    def arrays(self):
        return {"image_ids": self.ids, "image_widths": self.widths, "image_heights": self.heights,
                "image_names": self._names, "image_name_starts": self._name_starts}

    def select(self, keep):
        """The table of the images where ``keep`` is true."""
        lengths = np.diff(self._name_starts)
        return ImageTable(self.ids[keep], self.widths[keep], self.heights[keep],
                          self._names[np.repeat(keep, lengths)],
                          np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64))

    def __len__(self):
        return len(self.ids)

    def file_name(self, idx):
        return self._names[self._name_starts[idx]:self._name_starts[idx + 1]].tobytes().decode("utf-8")

    def __getitem__(self, idx):
        if not -len(self) <= idx < len(self):
            raise IndexError("image %d of %d" % (idx, len(self)))
        idx %= len(self)
        return {"id": int(self.ids[idx]), "file_name": self.file_name(idx), "width": int(self.widths[idx]),
                "height": int(self.heights[idx])}

    def __iter__(self):
        return (self[i] for i in range(len(self)))
