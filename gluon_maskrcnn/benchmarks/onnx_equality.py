"""ONNX Runtime against MXNet on every zoo name: the top 100 detections and masks of the same
random-weight network, exported once, on unseen inputs. Used by ``scripts/compare_onnx.py``.

A random network with BatchNorm statistics that do not fit its activations saturates from
ResNet-50 on: every score is 1.0 and any top-k among the ties is arbitrary. Here each
BatchNorm's statistics are set from its own input on a calibration image (the variance plus
its channel mean, so that near-constant channels are not blown up), which keeps every layer's
output O(1) and the scores apart.
"""
import json
import os
import tempfile

import mxnet as mx

from ..export import export_model
from ..internals import child_blocks
from ..model_zoo import get_model
from ..modeling.warmup import forward_once
from ..onnx_export import OnnxModel
from .parity import detections_numpy, match_detections, random_image

__all__ = ["calibrate_batch_norms", "calibrated_network", "compare_names"]

_STATISTICS = {"mean": ("running_mean", "moving_mean"), "var": ("running_var", "moving_var")}


def _statistics_params(block):
    """{"mean": Parameter, "var": Parameter} of a normalisation block, or {}."""
    found = {}
    for param in block.params.values():
        for kind, suffixes in _STATISTICS.items():
            if param.name.endswith(suffixes):
                found[kind] = param
    return found if len(found) == 2 else {}


def _all_blocks(block):
    yield block
    for child in child_blocks(block):
        yield from _all_blocks(child)


def calibrate_batch_norms(net, x):
    """Set every normalisation layer's statistics from its input when ``net`` (imperative) runs
    on ``x``."""
    def set_statistics(block, inputs):
        data = inputs[0]
        axes = tuple(a for a in range(data.ndim) if a != 1)
        mean = data.mean(axis=axes)
        centred = data - mean.reshape((1, -1) + (1,) * (data.ndim - 2))  # (C,) -> (1, C, 1, 1)
        var = (centred ** 2).mean(axis=axes)
        params = _statistics_params(block)
        params["mean"].set_data(mean)
        params["var"].set_data(var + var.mean())

    handles = [block.register_forward_pre_hook(set_statistics)
               for block in _all_blocks(net) if _statistics_params(block)]
    net(x)
    mx.nd.waitall()
    for handle in handles:
        handle.detach()
    return net


def calibrated_network(name, x, seed=0):
    """Zoo network ``name`` with random weights, its statistics calibrated on ``x``, 100
    detections from 300 proposals (1000 before NMS)."""
    mx.random.seed(seed)
    net = get_model(name, pretrained_base=False, max_dets=100, rpn_test_pre_nms=1000, rpn_test_post_nms=300)
    forward_once(net)
    return calibrate_batch_norms(net, x)


def compare_names(names, size=(384, 512), seeds=(2, 3), folder=None):
    """Print and return one row per (name, input): ONNX Runtime's top-100 agreement with MXNet
    (calibrated on seed 1's image, compared on the ``seeds`` images)."""
    folder = folder or tempfile.mkdtemp(prefix="onnx-equality-")
    rows = []
    for name in names:
        net = calibrated_network(name, random_image(*size, seed=1))
        path = export_model(net, os.path.join(folder, name), size=size, format="onnx")[0]
        model = OnnxModel(path)
        for seed in seeds:
            x = random_image(*size, seed=seed)
            result = match_detections(detections_numpy(net(x)), detections_numpy(model(x)),
                                      top=100, score_tol=1e-4, iou_min=0.999)
            rows.append(dict(model=name, input="%dx%d seed %d" % (size + (seed,)), **result))
            print(json.dumps(rows[-1]), flush=True)
    return rows
