"""Evaluation against pycocotools run directly; mask pasting."""
import contextlib
import io
import os

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from gluon_maskrcnn.engine.evaluation import coco_evaluate, format_metrics
from gluon_maskrcnn.inference import paste_masks


def _gt_as_results(annotation_file, jitter=0.0, seed=0):
    rng = np.random.RandomState(seed)
    coco = COCO(annotation_file)
    results = []
    for ann in coco.loadAnns(coco.getAnnIds()):
        rle = mask_utils.encode(np.asfortranarray(coco.annToMask(ann)))
        box = np.array(ann["bbox"], float) + rng.uniform(-jitter, jitter, 4)
        results.append({"image_id": ann["image_id"], "category_id": ann["category_id"], "bbox": box.tolist(),
                        "score": float(rng.uniform(0.5, 1)),
                        "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    return results


def test_perfect_predictions_score_one(tiny_root):
    path = os.path.join(tiny_root, "annotations", "instances_val.json")
    metrics = coco_evaluate(path, _gt_as_results(path))
    assert metrics["bbox"]["AP"] > 0.99 and metrics["segm"]["AP"] > 0.99
    assert "segm" in format_metrics(metrics)


def test_matches_pycocotools_run_directly(tiny_root):
    path = os.path.join(tiny_root, "annotations", "instances_train.json")
    results = _gt_as_results(path, jitter=6.0, seed=1)
    ours = coco_evaluate(path, results)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(path)
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ours["bbox"]["AP"] == ev.stats[0] and ours["bbox"]["AP75"] == ev.stats[2]
    assert 0 < ours["bbox"]["AP"] < 1


def test_no_detections_gives_zero(tiny_root):
    path = os.path.join(tiny_root, "annotations", "instances_val.json")
    assert coco_evaluate(path, [])["segm"]["AP"] == 0.0


def test_paste_masks_gives_the_hand_computed_mask():
    """A full 4x4 mask in box [2, 3, 10, 9] of a 12x14 image. With its zero border the 6x6 grid
    spans x 0..12 and y 1.5..10.5, at 12 x 10 pixels from (0, 1). Linear interpolation along x
    gives 0, .25, .75, 1, ..., 1, .75, .25, 0 and along y 0, .4, 1, ..., 1, .4, 0: above 0.5 lie
    columns 2..9 and rows 3..8, exactly the box."""
    out = paste_masks(np.ones((1, 4, 4), np.float32), np.float32([[2, 3, 10, 9]]), 12, 14)
    expected = np.zeros((12, 14), np.uint8)
    expected[3:9, 2:10] = 1
    np.testing.assert_array_equal(out[0], expected)


def test_paste_masks_clips_a_box_that_leaves_the_image():
    masks = np.ones((2, 14, 14), np.float32)
    out = paste_masks(masks, np.array([[10, 5, 30, 25], [-5, -5, 4, 4]], np.float32), 40, 50)
    assert out.shape == (2, 40, 50)
    assert out[1, :4, :4].all() and out[1, 4:].sum() == 0 and out[1, :, 4:].sum() == 0


def _noisy_results(annotation_file, seed):
    """Detections with jittered boxes, eroded or dilated masks, wrong classes and false
    positives: every one of the 12 figures lands strictly between 0 and 1 or at an edge case."""
    import cv2

    rng = np.random.RandomState(seed)
    results = _gt_as_results(annotation_file, jitter=5.0, seed=seed)
    coco = COCO(annotation_file)
    for result in results:
        mask = mask_utils.decode(result["segmentation"])
        op = cv2.erode if rng.rand() < 0.5 else cv2.dilate
        mask = op(mask, np.ones((3, 3), np.uint8), iterations=int(rng.randint(0, 4)))
        rle = mask_utils.encode(np.asfortranarray(mask))
        result["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
        if rng.rand() < 0.2:
            result["category_id"] = int(rng.choice(coco.getCatIds()))
    return results + [dict(r, bbox=[r["bbox"][0] + 40, r["bbox"][1] + 30, r["bbox"][2], r["bbox"][3]],
                           score=r["score"] * 0.9) for r in results[::3]]


def test_faster_coco_eval_gives_pycocotools_figures(tiny_root):
    pytest.importorskip("faster_coco_eval")
    path = os.path.join(tiny_root, "annotations", "instances_train.json")
    results = _noisy_results(path, seed=2)
    slow = coco_evaluate(path, results)
    fast = coco_evaluate(path, results, evaluator="faster-coco-eval")
    for iou_type in ("bbox", "segm"):
        for name, value in slow[iou_type].items():
            if name == "per_class":  # every class's AP too
                assert fast[iou_type][name].keys() == value.keys()
                for cls, ap in value.items():
                    assert (ap is None) == (fast[iou_type][name][cls] is None), cls
                    assert ap is None or abs(fast[iou_type][name][cls] - ap) <= 1e-4, (iou_type, cls)
                continue
            assert abs(fast[iou_type][name] - value) <= 1e-4, (iou_type, name, fast[iou_type][name], value)
    assert 0 < slow["segm"]["AP"] < 1 and 0 < slow["bbox"]["AP"] < 1


def test_an_unknown_evaluator_is_a_user_error(tiny_root):
    from gluon_maskrcnn.errors import UserError

    path = os.path.join(tiny_root, "annotations", "instances_val.json")
    with pytest.raises(UserError, match="unknown COCO evaluator 'fast'"):
        coco_evaluate(path, _gt_as_results(path), evaluator="fast")


def test_a_missing_faster_coco_eval_names_the_flag_and_the_fix(tiny_root, monkeypatch):
    import sys

    from gluon_maskrcnn.errors import UserError

    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)  # as if not installed
    path = os.path.join(tiny_root, "annotations", "instances_val.json")
    with pytest.raises(UserError, match="--coco-evaluator faster-coco-eval: the package is not installed; "
                                        "pip install faster-coco-eval"):
        coco_evaluate(path, _gt_as_results(path), evaluator="faster-coco-eval")
