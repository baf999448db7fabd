"""``scripts/quantize_mask_rcnn.py``: quantize a model to int8, export it, and compare it with the
float32 model on a split (AP side by side, and how many of the float model's detections the
int8 model reproduces)."""
import time

import mxnet as mx
import numpy as np

from ..boxes import box_iou
from ..data.coco import COCOInstances
from ..export import export_model
from ..quantization import quantize
from .evaluation import coco_evaluate, predict_dataset
from .loading import load_model

__all__ = ["quantize_command", "detection_agreement", "compare_on_split"]


def _corners(xywh):
    """(N, 4) COCO xywh boxes -> (N, 4) corners."""
    boxes = np.asarray(xywh, np.float64).reshape(-1, 4)  # (N, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def detection_agreement(reference, candidate, min_score=0.5, min_iou=0.9):
    """Share of ``reference``'s detections scoring at least ``min_score`` that ``candidate``
    reproduces: a detection of the same image and class with box IoU at least ``min_iou``.
    Both are lists of COCO results (``image_id``, ``category_id``, ``bbox`` xywh, ``score``).
    Returns (reproduced, counted)."""
    by_key = {}
    for det in candidate:
        by_key.setdefault((det["image_id"], det["category_id"]), []).append(det["bbox"])
    counted = reproduced = 0
    for det in reference:
        if det["score"] < min_score:
            continue
        counted += 1
        boxes = by_key.get((det["image_id"], det["category_id"]))
        if boxes and (box_iou(_corners(det["bbox"]), _corners(boxes)) >= min_iou).any():
            reproduced += 1
    return reproduced, counted


def compare_on_split(models, dataset):
    """{name: (metrics, results, seconds)} of each model in ``models`` ({name: network}) on
    ``dataset``, and the int8 agreement when both ``"fp32"`` and ``"int8"`` are given."""
    report = {}
    for name, net in models.items():
        start = time.perf_counter()
        results = predict_dataset(net, dataset)
        seconds = time.perf_counter() - start
        metrics = coco_evaluate(dataset.annotation_file, results, [im["id"] for im in dataset.images])
        report[name] = (metrics, results, seconds)
    if "fp32" in report and "int8" in report:
        report["agreement"] = detection_agreement(report["fp32"][1], report["int8"][1])
    return report


def format_comparison(report):
    """The side-by-side table of :func:`compare_on_split`'s report."""
    lines = ["%-6s %9s %9s %12s" % ("model", "segm AP", "bbox AP", "predict (s)")]
    for name in ("fp32", "int8"):
        if name in report:
            metrics, _, seconds = report[name]
            lines.append("%-6s %9.4f %9.4f %12.1f" % (name, metrics["segm"]["AP"], metrics["bbox"]["AP"], seconds))
    if "agreement" in report:
        reproduced, counted = report["agreement"]
        lines.append("int8 reproduces %d of the %d fp32 detections with score >= 0.5 (same class, box IoU >= 0.9): "
                     "%.1f%%" % (reproduced, counted, 100.0 * reproduced / max(counted, 1)))
    return "\n".join(lines)


def quantize_command(args):
    """What ``scripts/quantize_mask_rcnn.py`` does with its parsed flags; returns the int8 model."""
    net = load_model(args.model, args.params, ctx=mx.cpu())
    calibration = COCOInstances(args.dataset_root, args.split, skip_empty=False)
    start = time.perf_counter()
    qnet = quantize(net, calibration, calib_mode=args.calib_mode, num_calib=args.num_calib,
                    granularity=args.granularity, portable=args.portable)
    print("calibrated on %d images of %s (%s) in %.1f s" % (min(args.num_calib, len(calibration)),
                                                           args.split, args.calib_mode, time.perf_counter() - start))
    for path in export_model(qnet, args.out):
        print("wrote %s" % path)
    if args.eval_split:
        dataset = COCOInstances(args.dataset_root, args.eval_split, skip_empty=False)
        print(format_comparison(compare_on_split({"fp32": net, "int8": qnet}, dataset)))
    return qnet
