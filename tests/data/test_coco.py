"""COCO-format dataset: formats, category mapping, and every bad-input case with its message or count."""
import json
import logging
import os

import cv2
import numpy as np
import pytest

from gluon_maskrcnn.data.coco import COCOInstances, DataError, read_image

CATS = [{"id": 10, "name": "cat"}, {"id": 3, "name": "dog"}]


def _write(root, annotations, images=None, categories=CATS, split="train"):
    os.makedirs(os.path.join(root, split), exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    images = images or [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}]
    for im in images:
        cv2.imwrite(os.path.join(root, split, im["file_name"]), np.full((im["height"], im["width"], 3), 128, np.uint8))
    with open(os.path.join(root, "annotations", "instances_%s.json" % split), "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return str(root)


def _ann(i, cat=10, bbox=(5, 5, 10, 10), segm=None, crowd=0, image_id=1):
    segm = segm if segm is not None else [[5, 5, 15, 5, 15, 15, 5, 15]]
    return {"id": i, "image_id": image_id, "category_id": cat, "bbox": list(bbox), "iscrowd": crowd,
            "segmentation": segm, "area": 100}


def test_categories_map_to_contiguous_labels_by_id(tmp_path):
    root = _write(tmp_path, [_ann(1, cat=10), _ann(2, cat=3)])
    ds = COCOInstances(root, "train")
    assert ds.classes == ["dog", "cat"] and ds.category_ids == [3, 10]
    np.testing.assert_array_equal(ds[0][1].labels, [1, 0])


def test_class_subset(tmp_path):
    root = _write(tmp_path, [_ann(1, cat=10), _ann(2, cat=3)])
    ds = COCOInstances(root, "train", classes=["cat"])
    np.testing.assert_array_equal(ds[0][1].labels, [0])
    with pytest.raises(DataError, match="no categories named horse"):
        COCOInstances(root, "train", classes=["horse"])


def test_polygon_and_rle(tmp_path):
    from pycocotools import mask as mask_utils

    m = np.zeros((30, 40), np.uint8)
    m[2:8, 3:9] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    rle = {"size": rle["size"], "counts": rle["counts"].decode()}
    uncompressed = {"size": [30, 40], "counts": [3 * 30 + 2, 6] + [24, 6] * 5 + [952]}  # column-major
    root = _write(tmp_path, [_ann(1), _ann(2, bbox=(3, 2, 6, 6), segm=rle), _ann(3, bbox=(2, 2, 6, 6), segm=uncompressed)])
    instances = COCOInstances(root, "train")[0][1]
    assert [s[0] for s in instances.segms] == ["polygons", "rle", "rle"]
    masks = instances.masks(30, 40)
    assert masks.shape == (3, 30, 40) and masks.dtype == np.uint8
    np.testing.assert_array_equal(masks[1], m)
    np.testing.assert_array_equal(masks[2], m)
    assert masks[0][5:15, 5:15].all() and masks[0].sum() == 100  # the 10x10 square polygon


def test_no_instances_give_an_empty_mask_stack():
    from gluon_maskrcnn.data.coco import Instances

    assert Instances(np.zeros((0, 4)), [], []).masks(7, 9).shape == (0, 7, 9)


def test_bad_annotations_are_counted_and_reported_once(tmp_path, caplog):
    anns = [_ann(1),
            _ann(2, bbox=(5, 5, 0, 10)),  # degenerate
            _ann(3, bbox=(50, 50, 10, 10)),  # outside the image
            _ann(4, bbox=(30, 20, 20, 20)),  # partly outside: clipped
            _ann(5, segm=[[1, 2, 3, 4]]),  # polygon of 2 points only
            _ann(6, segm={"size": [30, 40], "counts": [1200]}),  # zero-area RLE
            _ann(7, crowd=1),
            _ann(8, segm={"size": [30, 40], "counts": [100, 20, 50]})]  # counts cover 170 of 1200
    root = _write(tmp_path, anns)
    with caplog.at_level(logging.WARNING):
        ds = COCOInstances(root, "train")
    assert len(ds[0][1]) == 2  # ann 1 and the clipped ann 4
    np.testing.assert_array_equal(ds[0][1].boxes[1], [30, 20, 40, 30])
    assert ds.skipped == {"degenerate or out-of-image box": 2, "box clipped to the image": 2,
                          "polygon with fewer than 3 points": 1, "annotation without a usable mask": 1,
                          "zero-area mask": 1, "crowd region (kept out of training targets)": 1,
                          "RLE whose counts do not cover its size": 1}
    warnings = [r for r in caplog.records if "instances_train.json" in r.getMessage()]
    assert len(warnings) == 1 and "zero-area mask: 1" in warnings[0].getMessage()
    assert "RLE whose counts do not cover its size: 1" in warnings[0].getMessage()


def test_annotations_of_unknown_categories_are_counted_and_reported(tmp_path, caplog):
    """An id that is not among the file's categories is bad data; a class left out with
    ``classes`` is a choice and is not counted."""
    root = _write(tmp_path, [_ann(1, cat=10), _ann(2, cat=99), _ann(3, cat=3)])
    with caplog.at_level(logging.WARNING):
        ds = COCOInstances(root, "train")
    assert len(ds[0][1]) == 2
    assert ds.skipped == {"annotation whose category_id is not among the file's categories": 1}
    message = [r.getMessage() for r in caplog.records if "instances_train.json" in r.getMessage()]
    assert message == ["%s: annotation whose category_id is not among the file's categories: 1"
                       % ds.annotation_file]
    only_dogs = COCOInstances(root, "train", classes=["dog"])
    assert only_dogs.skipped == {"annotation whose category_id is not among the file's categories": 1}
    assert only_dogs[0][1].labels.tolist() == [0]


def test_an_image_of_another_size_than_the_json_says_is_resized_to_it(tmp_path, caplog):
    root = _write(tmp_path, [_ann(1)])  # the JSON says 40 x 30
    ds = COCOInstances(root, "train")
    cv2.imwrite(ds.image_path(0), np.full((60, 80, 3), 128, np.uint8))  # the file is 80 x 60
    with caplog.at_level(logging.WARNING):
        image, instances = ds[0]
    assert image.shape == (30, 40, 3)  # the annotation file's frame wins
    assert ds.skipped == {"image whose size differs from the annotation file (resized to the file's)": 1}
    assert any("a.jpg is 80x60 (width x height) but %s says 40x30" % ds.annotation_file in r.getMessage()
               for r in caplog.records)


def test_skip_empty_for_training_keeps_all_for_evaluation(tmp_path):
    images = [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30},
              {"id": 2, "file_name": "b.jpg", "width": 40, "height": 30}]
    root = _write(tmp_path, [_ann(1)], images=images)
    train = COCOInstances(root, "train")
    assert len(train) == 1 and train.skipped["image without usable annotations"] == 1
    assert len(COCOInstances(root, "train", skip_empty=False)) == 2


def test_missing_and_unreadable_images_are_named(tmp_path):
    root = _write(tmp_path, [_ann(1)])
    ds = COCOInstances(root, "train")
    os.remove(ds.image_path(0))
    with pytest.raises(DataError, match=r"a\.jpg does not exist"):
        ds[0]
    with open(ds.image_path(0), "w") as f:
        f.write("not an image")
    with pytest.raises(DataError, match=r"a\.jpg cannot be decoded"):
        ds[0]


@pytest.mark.parametrize("content,problem", [("{not json", "not valid JSON"), ("[]", "JSON object"),
                                             ('{"images": [], "categories": []}', "'annotations'"),
                                             ('{"images": [{"id": 1}], "annotations": [], "categories": []}',
                                              r"images\[0\] lacks file_name")])
def test_malformed_json_names_file_and_problem(tmp_path, content, problem):
    os.makedirs(tmp_path / "annotations")
    (tmp_path / "annotations" / "instances_train.json").write_text(content)
    with pytest.raises(DataError, match=problem) as err:
        COCOInstances(str(tmp_path), "train")
    assert "instances_train.json" in str(err.value)


def test_missing_json_is_named(tmp_path):
    with pytest.raises(DataError, match="instances_val.json does not exist"):
        COCOInstances(str(tmp_path), "val")


@pytest.mark.parametrize("kind, expected", [("gray", [200, 200, 200]), ("rgba", [30, 20, 10]),
                                            ("png16", [255, 128, 0])])
def test_images_become_rgb(tmp_path, kind, expected):
    """Grayscale repeats its value in R, G and B; RGBA drops alpha (the BGR file turns RGB);
    16-bit PNG keeps the high byte (65535 -> 255, 32896 -> 128, 0 -> 0)."""
    path = str(tmp_path / ("x.png"))
    if kind == "gray":
        cv2.imwrite(path, np.full((5, 6), 200, np.uint8))
    elif kind == "rgba":
        cv2.imwrite(path, np.dstack([np.full((5, 6, 3), (10, 20, 30), np.uint8), np.full((5, 6), 255, np.uint8)]))
    else:  # BGR channels 0, 32896, 65535
        cv2.imwrite(path, np.full((5, 6, 3), (0, 32896, 65535), np.uint16))
    image = read_image(path)
    assert image.shape == (5, 6, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, np.broadcast_to(np.uint8(expected), (5, 6, 3)))
