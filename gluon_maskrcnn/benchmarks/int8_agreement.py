"""int8 against float32 on zoo networks with random weights: how many of the float32 network's
detections the int8 copy reproduces. Used by ``scripts/compare_int8.py``.

The networks are :func:`~gluon_maskrcnn.benchmarks.onnx_equality.calibrated_network`'s (random
weights, BatchNorm statistics set from an image, so that every layer's output is O(1)), with
the class and objectness logits spread as a trained network's (:func:`spread_scores`). Images
are uint8 noise, which the inference transform normalises to O(1); int8 is calibrated on some
and compared on others it has not seen.
"""
import json

import mxnet as mx
import numpy as np

from ..boxes import box_iou
from ..data.transforms import ValTransform
from ..quantization import quantize
from .onnx_equality import calibrated_network
from .parity import detections_numpy

__all__ = ["reproduced", "spread_scores", "compare_int8"]


def reproduced(reference, candidate, min_iou=0.9, min_score=None, top=100):
    """(reproduced, counted): of ``reference``'s first ``top`` detections (those scoring at
    least ``min_score`` when given), how many ``candidate`` has with the same class and box IoU
    at least ``min_iou``. Both are ``(ids, scores, boxes, ...)`` of one image as NumPy arrays."""
    ref_ids, ref_scores, ref_boxes = (a.reshape(len(a), -1) for a in reference[:3])
    cand_ids, cand_boxes = candidate[0].reshape(-1), candidate[2].reshape(-1, 4)
    valid = ref_ids[:, 0] >= 0
    if min_score is not None:
        valid &= ref_scores[:, 0] >= min_score
    rows = np.where(valid)[0][:top]
    if not len(rows):
        return 0, 0
    same_class = ref_ids[rows, 0][:, None] == cand_ids[None, :]  # (T, K)
    found = (same_class & (box_iou(ref_boxes[rows], cand_boxes) >= min_iou)).any(axis=1)
    return int(found.sum()), int(len(rows))


def spread_scores(net, x, target_std=2.0):
    """Scale the class predictor and the RPN's objectness convolution so that, on ``x``, their
    logits have standard deviation ``target_std`` (as a trained network's are spread).

    A random head gives logits of std ~0.03 (FPN R50): every class scores about 1/81 and the
    proposals' objectness nearly ties, so any perturbation, int8 rounding included, reorders
    them and the top detections of two runs share almost nothing whatever the backbone does.
    """
    caught = {"cls": [], "rpn": []}

    def keep(key):
        def hook(block, inputs, output):
            caught[key].append(output.asnumpy().ravel())
        return hook

    layers = {"cls": net.class_predictor, "rpn": net.rpn.head.score}
    handles = [layer.register_forward_hook(keep(key)) for key, layer in layers.items()]
    net(x)
    for handle in handles:
        handle.detach()
    for key, layer in layers.items():
        factor = target_std / max(float(np.concatenate(caught[key]).std()), 1e-12)
        for param in (layer.weight, layer.bias):
            param.set_data(param.data() * factor)
    return net


def _noise_images(count, size, seed):
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 256, size + (3,)).astype(np.uint8) for _ in range(count)]


def compare_int8(names, size=(384, 512), num_calib=8, num_test=4, calib_mode="naive", granularity="tensor-wise"):
    """Print and return one row per name: the share of the float32 network's top 100
    detections, and of those scoring at least 0.5, that int8 reproduces (same class, box IoU at
    least 0.9) on ``num_test`` unseen images; and, as a control, the share the float32 network
    itself reproduces when each pixel of the image moves by at most one gray level (how much a
    perturbation of that size alone reorders a random network's detections)."""
    transform = ValTransform(min(size), max(size))
    rows = []
    for name in names:
        to_input = lambda image: mx.nd.array(transform(image)[0][None])  # noqa: E731  (1, 3, H, W)
        calibration_input = to_input(_noise_images(1, size, seed=1)[0])
        net = spread_scores(calibrated_network(name, calibration_input), calibration_input)
        net.short, net.max_size = min(size), max(size)
        qnet = quantize(net, _noise_images(num_calib, size, seed=2), calib_mode=calib_mode, granularity=granularity)
        totals = np.zeros(6, int)
        rng = np.random.RandomState(4)
        for image in _noise_images(num_test, size, seed=3):
            x = to_input(image)
            fp32, int8 = detections_numpy(net(x)), detections_numpy(qnet(x))
            # the control: float32 again on the image with one gray level of noise per pixel
            nudged = np.clip(image.astype(int) + rng.randint(-1, 2, image.shape), 0, 255).astype(np.uint8)
            control = detections_numpy(net(to_input(nudged)))
            totals += reproduced(fp32, int8) + reproduced(fp32, int8, min_score=0.5) + reproduced(fp32, control)
        rows.append(dict(model=name, size="%dx%d" % size, calib_mode=calib_mode, granularity=granularity,
                         num_calib=num_calib, images=num_test, top100=[int(totals[0]), int(totals[1])],
                         top100_share=float(totals[0] / max(totals[1], 1)),
                         score_at_least_0_5=[int(totals[2]), int(totals[3])],
                         float32_one_gray_level_top100=[int(totals[4]), int(totals[5])]))
        print(json.dumps(rows[-1]), flush=True)
    return rows
