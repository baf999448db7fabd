"""Data pipeline benchmark against GluonCV: train transform with RPN targets plus batching, on the
same images, in the same run. Used by ``scripts/benchmark_data.py``."""
import tempfile
import time

import cv2
import mxnet as mx
import numpy as np

from ..data.batchify import TrainBatchify
from ..data.coco import COCOInstances
from ..data.loader import train_loader
from ..data.rpn_targets import RPNTargetGenerator
from ..data.synthetic import write_synthetic_coco
from ..data.transforms import TrainTransform
from ..model_zoo import PRESETS

__all__ = ["run_data_benchmark"]


def _polygons(segm, height, width):
    """GluonCV's transform takes polygons only: outline RLE masks."""
    if segm[0] == "polygons":
        return segm[1]
    from pycocotools import mask as mask_utils

    contours, _ = cv2.findContours(mask_utils.decode(segm[1]), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1, 2).astype(np.float32) for c in contours if len(c) >= 3]


def _gluoncv_pipeline(name, short, max_size):
    import gluoncv
    from gluoncv.data.batchify import MaskRCNNTrainBatchify
    from gluoncv.data.transforms.presets.rcnn import MaskRCNNDefaultTrainTransform

    net = gluoncv.model_zoo.get_model(name, pretrained_base=False)
    net.initialize()
    multi_stage = "fpn" in name
    transform = MaskRCNNDefaultTrainTransform(short, max_size, net, ashape=net.ashape, multi_stage=multi_stage)
    return transform, MaskRCNNTrainBatchify(net, 1)


def _time_per_image(fn, items, repeats):
    start = time.perf_counter()
    for _ in range(repeats):
        for item in items:
            fn(item)
    return (time.perf_counter() - start) / (repeats * len(items))


def run_data_benchmark(name="mask_rcnn_fpn_resnet50_v1b_coco", num_images=24, height=480, width=640,
                       batch_size=2, repeats=2, workers=(1, 2)):
    """Print per-image times (transform+targets, batching) and loader throughput; return them."""
    root = tempfile.mkdtemp(prefix="databench-")
    write_synthetic_coco(root, num_train=num_images, num_val=1, height=height, width=width, seed=11, max_objects=6)
    dataset = COCOInstances(root, "train")
    cfg = PRESETS[name]
    samples = [dataset[i] for i in range(len(dataset))]
    ours_t = TrainTransform(cfg["short"], cfg["max_size"], seed=0)
    ours_b = TrainBatchify(RPNTargetGenerator.from_preset(cfg), seed=0)
    transformed = [ours_t(im, inst) for im, inst in samples]
    batches = [transformed[i:i + batch_size] for i in range(0, len(transformed), batch_size)]
    figures = {"ours_transform_ms": 1e3 * _time_per_image(lambda s: ours_t(*s), samples, repeats),
               "ours_batchify_ms": 1e3 * _time_per_image(ours_b, batches, repeats) / batch_size}

    gl_t, gl_b = _gluoncv_pipeline(name, cfg["short"], cfg["max_size"])
    gl_inputs = [(mx.nd.array(im, dtype="uint8"),
                  np.concatenate([inst.boxes, inst.labels[:, None]], axis=1).astype(np.float32),
                  [_polygons(s, im.shape[0], im.shape[1]) for s in inst.segms]) for im, inst in samples]
    gl_samples = [gl_t(*x) for x in gl_inputs]
    gl_batches = [gl_samples[i:i + batch_size] for i in range(0, len(gl_samples), batch_size)]
    figures["gluoncv_transform_ms"] = 1e3 * _time_per_image(lambda x: gl_t(*x), gl_inputs, repeats)
    figures["gluoncv_batchify_ms"] = 1e3 * _time_per_image(gl_b, gl_batches, repeats) / batch_size
    ours_total = figures["ours_transform_ms"] + figures["ours_batchify_ms"]
    gl_total = figures["gluoncv_transform_ms"] + figures["gluoncv_batchify_ms"]
    figures["speedup_per_image"] = gl_total / ours_total
    for count in workers:
        loader, _ = train_loader(dataset, ours_t, RPNTargetGenerator.from_preset(cfg), batch_size, count)
        start, seen = time.perf_counter(), 0
        for _ in range(repeats):
            for batch in loader:
                seen += batch[0].shape[0]
        figures["ours_loader_%d_workers_img_per_s" % count] = seen / (time.perf_counter() - start)
    for key, value in figures.items():
        print("%-36s %8.2f" % (key, value))
    return figures
