"""Evaluation proved end to end with stand-in networks that return known detections: the
ground truth itself (AP 1.0), and the ground truth shifted by a known amount (what pycocotools
scores for the same shifted results written by hand). The set has non-contiguous category ids
and images of three sizes, resized by non-integer scales."""
import csv
import contextlib
import hashlib
import io
import json
import os
import re
import runpy
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from gluon_maskrcnn.data.coco import COCOInstances
from gluon_maskrcnn.data.transforms import ValTransform
from gluon_maskrcnn.engine import loading
from gluon_maskrcnn.engine.evaluation import METRIC_NAMES, evaluate
from gluon_maskrcnn.inference import paste_masks

SCRIPTS = os.path.join(os.path.dirname(__file__), "..", "..", "scripts")
CATEGORIES = [{"id": 2, "name": "a"}, {"id": 7, "name": "b"}, {"id": 11, "name": "c"}]
# (height, width, [(x, y, w, h, category id)]): rectangles of 110 px and more, so that the
# pasted masks' edge pixels cannot take the mask IoU under COCO's 0.95 threshold
IMAGES = [(180, 240, [(20, 30, 130, 120, 7)]),
          (260, 200, [(10, 10, 120, 110, 2), (60, 130, 130, 115, 11)]),
          (150, 320, [(170, 20, 140, 115, 7)])]
SHIFT = 8.0  # pixels, along x, in the original image


@pytest.fixture(scope="module")
def rectangles(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("rects"))
    os.makedirs(os.path.join(root, "val"))
    os.makedirs(os.path.join(root, "annotations"))
    rng = np.random.RandomState(0)
    images, annotations = [], []
    for index, (height, width, boxes) in enumerate(IMAGES):
        name = "%03d.jpg" % index
        cv2.imwrite(os.path.join(root, "val", name), rng.randint(0, 256, (height, width, 3)).astype(np.uint8))
        images.append({"id": 100 + index, "file_name": name, "height": height, "width": width})
        for x, y, w, h, category in boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": 100 + index, "category_id": category,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
                                "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
    with open(os.path.join(root, "annotations", "instances_val.json"), "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": CATEGORIES}, f)
    return root


class KnownDetections:
    """A stand-in network: for each image of ``dataset`` (recognised by its transformed pixels)
    it returns that image's ground-truth boxes, shifted by ``shift`` px along x in the original
    image and scaled as the image was, with full masks and score 0.9."""

    short, max_size, rows = 160, 400, 10

    def __init__(self, dataset, shift=0.0):
        self.classes = dataset.classes
        self.known = {}
        for index in range(len(dataset)):
            image, instances = dataset[index]
            x, info = ValTransform(self.short, self.max_size)(image)
            scale = np.float32([info[2], info[3]] * 2)  # (scale_x, scale_y, scale_x, scale_y)
            boxes = (instances.boxes + np.float32([shift, 0, shift, 0])) * scale
            self.known[self._key(x)] = (boxes, instances.labels)

    @staticmethod
    def _key(x):
        return hashlib.md5(np.ascontiguousarray(x, np.float32).tobytes()).hexdigest()

    def hybridize(self, **kwargs):
        pass

    def __call__(self, x):
        boxes, labels = self.known[self._key(x[0].asnumpy())]
        out_boxes = np.zeros((1, self.rows, 4), np.float32)
        out_boxes[0, :len(boxes)] = boxes
        ids = -np.ones((1, self.rows, 1), np.float32)
        ids[0, :len(labels), 0] = labels
        scores = np.where(ids >= 0, 0.9, 0.0).astype(np.float32)
        masks = np.ones((1, self.rows, 14, 14), np.float32)
        return [mx.nd.array(a) for a in (ids, scores, out_boxes, masks)]


def test_the_ground_truth_scores_ap_one(rectangles):
    dataset = COCOInstances(rectangles, "val", skip_empty=False)
    metrics = evaluate(KnownDetections(dataset), dataset)
    for kind in ("bbox", "segm"):
        assert metrics[kind]["AP"] == pytest.approx(1.0) and metrics[kind]["AP50"] == pytest.approx(1.0), metrics


def test_eval_script_scores_the_ground_truth_ap_one(rectangles, tmp_path, monkeypatch, capsys):
    dataset = COCOInstances(rectangles, "val", skip_empty=False)
    monkeypatch.setattr(loading, "load_model", lambda model, params=None, ctx=None: KnownDetections(dataset))
    results = str(tmp_path / "results.json")
    monkeypatch.setattr(sys, "argv", ["eval_mask_rcnn.py", "--model", "stand-in", "--dataset-root", rectangles,
                                      "--split", "val", "--results", results, "--num-workers", "0", "--per-class"])
    with pytest.raises(SystemExit) as done:  # the script ends with sys.exit(status)
        runpy.run_path(os.path.join(SCRIPTS, "eval_mask_rcnn.py"), run_name="__main__")
    assert done.value.code in (None, 0)
    table = capsys.readouterr().out
    assert [line.split()[1] for line in table.splitlines() if line.split()[:1] in (["bbox"], ["segm"])] == ["1.000"] * 2
    assert re.search(r"images: predict [\d.]+ s, paste and encode [\d.]+ s .*COCOeval [\d.]+ s", table), table
    written = json.load(open(results))
    assert sorted(r["category_id"] for r in written) == [2, 7, 7, 11]  # mapped back to the file's ids
    rows = list(csv.reader(open(str(tmp_path / "results_per_class.csv"))))
    assert rows[0] == ["category", "bbox_AP", "segm_AP"] and len(rows) == 1 + len(dataset.classes)
    scored = {row[0]: row[1:] for row in rows[1:] if row[1]}
    assert len(scored) == 3 and all(v == ["1.000000", "1.000000"] for v in scored.values())  # the 3 classes present


def _hand_written_shifted_results(annotation_file):
    """The shifted ground truth as COCO results, written from the JSON alone."""
    coco = COCO(annotation_file)
    results = []
    for ann in coco.loadAnns(coco.getAnnIds()):
        info = coco.loadImgs(ann["image_id"])[0]
        x, y, w, h = ann["bbox"]
        box = np.float32([[x + SHIFT, y, x + SHIFT + w, y + h]])
        mask = paste_masks(np.ones((1, 14, 14), np.float32), box, info["height"], info["width"])[0]
        rle = mask_utils.encode(np.asfortranarray(mask))
        results.append({"image_id": ann["image_id"], "category_id": ann["category_id"],
                        "bbox": [x + SHIFT, y, w, h], "score": 0.9,
                        "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    return results


def test_shifted_detections_score_what_pycocotools_scores_for_them(rectangles):
    dataset = COCOInstances(rectangles, "val", skip_empty=False)
    ours = evaluate(KnownDetections(dataset, shift=SHIFT), dataset)
    for kind in ("bbox", "segm"):
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(dataset.annotation_file)
            reference = COCOeval(gt, gt.loadRes(_hand_written_shifted_results(dataset.annotation_file)), kind)
            reference.evaluate(), reference.accumulate(), reference.summarize()
        expected = {name: max(float(v), 0.0) for name, v in zip(METRIC_NAMES, reference.stats)}
        per_class = ours[kind].pop("per_class")
        assert ours[kind] == pytest.approx(expected, abs=1e-9), kind
        assert 0.2 < ours[kind]["AP"] < 0.9, ours  # shifted by 8 px: neither perfect nor nothing
        # each class: pycocotools' precision array for it, all areas, 100 detections, averaged
        precision = reference.eval["precision"]  # (IoUs, recalls, classes, areas, max dets)
        names = {c["id"]: c["name"] for c in gt.loadCats(gt.getCatIds())}
        for k, category in enumerate(reference.params.catIds):
            column = precision[:, :, k, 0, 2]
            want = column[column > -1].mean() if (column > -1).any() else None
            assert per_class[names[category]] == (pytest.approx(want, abs=1e-12) if want is not None else None)
        present = [v for v in per_class.values() if v is not None]
        assert len(present) >= 2 and len(set(present)) >= 2  # classes with different AP
        assert np.mean(present) == pytest.approx(expected["AP"], abs=1e-9)  # COCO's AP: their mean
