"""The dataset's flat annotation storage: every annotation kind lands in the right image, in file
order, with its exact coordinates; every skip reason is counted; skip_empty keeps the arrays
consistent."""
import json
import os

import numpy as np
from pycocotools import mask as mask_utils

from gluon_maskrcnn.data.coco import COCOInstances

CATS = [{"id": 7, "name": "a"}, {"id": 2, "name": "b"}]  # labels: b -> 0, a -> 1
IMAGES = [{"id": 11, "file_name": "x.jpg", "width": 40, "height": 30},
          {"id": 12, "file_name": "y.jpg", "width": 50, "height": 20},  # nothing usable
          {"id": 13, "file_name": "z.jpg", "width": 40, "height": 40}]
SQUARE = [5, 5, 15, 5, 15, 15, 5, 15]
TRIANGLE = [20, 2, 30, 2, 25.5, 9.25]
COMPRESSED = mask_utils.encode(np.asfortranarray(np.pad(np.ones((4, 6), np.uint8), ((3, 33), (2, 32)))))
COMPRESSED = {"size": COMPRESSED["size"], "counts": COMPRESSED["counts"].decode("ascii")}


def _ann(i, image_id, cat=7, bbox=(5, 5, 10, 10), segm=None, crowd=0):
    return {"id": i, "image_id": image_id, "category_id": cat, "bbox": list(bbox), "iscrowd": crowd,
            "segmentation": [SQUARE] if segm is None else segm}


ANNOTATIONS = [
    _ann(1, 13, cat=2, segm=[SQUARE, TRIANGLE], bbox=(5, 2, 25, 13)),  # two polygons
    _ann(2, 11),
    _ann(3, 12, bbox=(1, 1, 0, 5)),  # degenerate box
    _ann(4, 11, segm={"size": [30, 40], "counts": [45, 10, 1145]}, bbox=(1, 1, 2, 9)),  # uncompressed RLE
    _ann(5, 13, segm=COMPRESSED, bbox=(2, 3, 6, 4)),  # compressed RLE
    _ann(6, 11, segm=[[1, 2, 3, 4], TRIANGLE], bbox=(20, 2, 10, 8)),  # one bad polygon, one good
    _ann(7, 12, crowd=1),
    _ann(8, 12, cat=99),  # unknown category
    _ann(9, 99),  # an image that is not in the file: not ours
    _ann(10, 11, bbox="oops"),
    _ann(11, 12, segm=[[1, 1, 2, 2, 3, 3]]),  # collinear: zero area
    _ann(12, 12, segm=17),
    _ann(13, 11, bbox=(35, 25, 10, 10)),  # clipped to 35..40, 25..30
]


def _dataset(tmp_path, **kwargs):
    os.makedirs(str(tmp_path / "annotations"))
    with open(str(tmp_path / "annotations" / "instances_s.json"), "w") as f:
        json.dump({"images": IMAGES, "annotations": ANNOTATIONS, "categories": CATS}, f)
    return COCOInstances(str(tmp_path), "s", **kwargs)


def _polygons(segm):
    assert segm[0] == "polygons"
    return [p.reshape(-1).tolist() for p in segm[1]]


def test_every_kind_lands_in_its_image_in_file_order(tmp_path):
    ds = _dataset(tmp_path, skip_empty=False)
    assert [im["id"] for im in ds.images] == [11, 12, 13] and len(ds) == 3
    first = ds.instances(0)  # annotations 2, 4, 6, 13
    np.testing.assert_array_equal(first.boxes, [[5, 5, 15, 15], [1, 1, 3, 10], [20, 2, 30, 10], [35, 25, 40, 30]])
    assert first.labels.tolist() == [1, 1, 1, 1]
    assert _polygons(first.segms[0]) == [SQUARE]
    assert first.segms[1][0] == "rle" and mask_utils.area(first.segms[1][1]) == 10
    assert _polygons(first.segms[2]) == [TRIANGLE]
    assert len(ds.instances(1)) == 0 and ds.instances(1).boxes.shape == (0, 4)
    third = ds.instances(2)  # annotations 1, 5
    assert third.labels.tolist() == [0, 1]
    assert _polygons(third.segms[0]) == [SQUARE, TRIANGLE]
    assert third.segms[1][0] == "rle" and mask_utils.area(third.segms[1][1]) == 24
    assert ds.image_path(2).endswith(os.path.join("s", "z.jpg")) and ds.image_id(2) == 13
    np.testing.assert_allclose(ds.aspect_ratios(), [40 / 30, 50 / 20, 1.0])


def test_every_skip_reason_is_counted(tmp_path):
    ds = _dataset(tmp_path, skip_empty=True)
    assert ds.skipped == {"degenerate or out-of-image box": 1, "crowd region (kept out of training targets)": 1,
                          "annotation whose category_id is not among the file's categories": 1,
                          "annotation without a valid bbox": 1, "polygon with fewer than 3 points": 1,
                          "annotation without a usable mask": 2, "box clipped to the image": 1,
                          "image without usable annotations": 1}


def test_skip_empty_keeps_the_arrays_consistent(tmp_path):
    kept = _dataset(tmp_path, skip_empty=True)
    assert [im["id"] for im in kept.images] == [11, 13]
    everything = COCOInstances(str(tmp_path), "s", skip_empty=False)
    for mine, theirs in ((0, 0), (1, 2)):
        a, b = kept.instances(mine), everything.instances(theirs)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert [s[0] for s in a.segms] == [s[0] for s in b.segms]
        assert [_polygons(s) for s in a.segms if s[0] == "polygons"] == \
               [_polygons(s) for s in b.segms if s[0] == "polygons"]
    flat = kept.annotations  # a few flat arrays, not per-image objects
    assert flat.boxes.shape == (6, 4) and flat.image_starts.tolist() == [0, 4, 6]
    assert flat.coords.dtype == np.float32 and flat.coords.size == 2 * (4 + 3 + 4 + 4 + 3)  # annotations 2, 6, 13, 1
