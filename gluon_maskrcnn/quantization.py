"""INT8 inference on CPU: calibrate once on your own images, run oneDNN's int8 kernels.

:func:`quantize` exports the network's inference graph (MXNet's own operators), lets MXNet's
quantization pass (``mxnet.contrib.quantization.quantize_net_v2``, oneDNN backend) replace the
convolutions and fully-connected layers by int8 ones, calibrates their ranges on the given
images, and returns an :class:`~gluon_maskrcnn.export.ExportedModel` that
:func:`gluon_maskrcnn.predict`, :func:`~gluon_maskrcnn.export.export_model` and evaluation take
like any network. Box decoding, NMS, ROIAlign and everything else that needs float precision
stays in float32 (:data:`FLOAT32_OPERATORS`).

Measured choices, on the README main command's model (FPN R18, 128 pixels), calibrated on 32
training images and scored on the 50 synthetic val images (float32: segm AP 0.559, bbox AP
0.635; "reproduced": of the 156 float32 detections scoring at least 0.5, those int8 has with
the same class and box IoU at least 0.9):

=========================================  =======  =======  ==========  =============
int8 variant                               segm AP  bbox AP  reproduced  quantize+eval
=========================================  =======  =======  ==========  =============
naive, tensor-wise (the default)           0.559    0.639    143         7.6 s
entropy                                    0.559    0.639    140         86.2 s
channel-wise                               0.561    0.638    145         9.8 s
channel-wise, entropy                      0.563    0.640    138         72.6 s
first convolution kept float32             0.558    0.638    136         8.4 s
RPN objectness and box convs kept float32  0.560    0.641    142         9.5 s
class and box predictors kept float32      0.560    0.637    143         9.4 s
mask predictor kept float32                0.559    0.639    143         9.2 s
=========================================  =======  =======  ==========  =============

Every variant is within 0.004 AP of float32 and of the others, so no layer is kept float32
by default (each would cost speed for nothing measurable) and the fastest calibration is the
default; ``keep_float_layers``, ``calib_mode`` and ``granularity`` remain for models where
they matter.
"""
import os
import tempfile

import mxnet as mx
import numpy as np

from .data.coco import read_image
from .data.transforms import ValTransform
from .errors import UserError
from .export import ExportedModel, export_model, load_exported
from .inference import network_context

__all__ = ["quantize", "FLOAT32_OPERATORS", "CALIB_MODES", "QuantizationError", "is_quantized"]

CALIB_MODES = ("naive", "entropy")

#: Operators kept in float32, and why. Measured on the README main command's model (FPN R18, 128
#: pixels), calibrated on 32 training images (naive), scored on the 50 synthetic val images:
#: float32 segm AP 0.559, bbox AP 0.635; int8 with this list 0.559, 0.639. Each figure below is
#: the int8 model with that one operator quantized too.
FLOAT32_OPERATORS = {
    "elemwise_mul": "quantized, it fails at run time (oneDNN's int8 multiply meets a uint8 and an int8 input)",
    "elemwise_add": "quantized, segm AP drops to 0.521: the residual sums and FPN merges lose precision",
    "Concat": "quantized, bbox AP drops to 0.626 (it joins the pyramid's levels and the boxes)",
    "Activation": "quantized, segm AP 0.558: the mask's sigmoid feeds the 0.5 mask threshold",
    "Flatten": "layout only: quantizing it changed no figure, and there is nothing to gain",
    "Pooling": "memory-bound: quantizing it changed no figure",
    "Reshape": "layout only: quantizing it changed no figure",
    "_contrib_ROIAlign": "bilinear sampling at float box coordinates: quantizing it changed no figure",
}


class QuantizationError(UserError):
    """Quantization cannot start: the message names the input at fault."""


def is_quantized(net):
    """Whether ``net`` is an int8 network made by :func:`quantize` (or loaded from its export)."""
    return bool(getattr(net, "int8", False))


def _calibration_arrays(images, short, max_size):
    """Calibration inputs (3, H, W) float32, resized as inference resizes them and zero-padded
    to the largest size among them; ``images`` are paths, HxWx3 uint8 RGB arrays, or a dataset
    whose items are (image, ...)."""
    transform = ValTransform(short, max_size)
    resized = []
    for k in range(len(images)):
        item = images[k]
        if isinstance(item, str):
            image = read_image(item)  # a file that cannot be read is a DataError naming it
        elif isinstance(item, tuple):
            image = item[0]
        else:
            image = np.asarray(item)
        if image.ndim != 3 or image.shape[2] != 3:
            raise QuantizationError("calibration image %d has shape %s; give H x W x 3 RGB images or paths"
                                    % (k, image.shape))
        resized.append(transform(image)[0])
    height = max(x.shape[1] for x in resized)
    width = max(x.shape[2] for x in resized)
    padded = np.zeros((len(resized), 3, height, width), np.float32)  # (N, 3, H, W)
    for k, x in enumerate(resized):
        padded[k, :, :x.shape[1], :x.shape[2]] = x
    return padded


def _float_graph(net, size, portable):
    """An :class:`ExportedModel` of ``net``'s inference graph (see :func:`quantize`'s ``portable``)."""
    if isinstance(net, ExportedModel):
        return net
    folder = tempfile.mkdtemp(prefix="gm-quantize-")
    export_model(net, os.path.join(folder, "fp32"), size=size, portable=portable)
    return load_exported(os.path.join(folder, "fp32"))


def quantize(net, calib_images, calib_mode="naive", num_calib=None, float32_operators=None,
             keep_float_layers=(), granularity="tensor-wise", portable=False):
    """An int8 copy of ``net`` for CPU inference, calibrated on ``calib_images``.

    Parameters
    ----------
    net : gluon_maskrcnn.modeling.mask_rcnn.MaskRCNN or gluon_maskrcnn.export.ExportedModel
        A float32 network (on the CPU) or an exported float32 model.
    calib_images : list of str or list of numpy.ndarray or dataset
        Calibration images: paths, H x W x 3 uint8 RGB arrays, or a dataset such as
        :class:`~gluon_maskrcnn.data.coco.COCOInstances` (its first ``num_calib`` images). Your
        own images, resized as inference resizes them.
    calib_mode : str
        ``"naive"``: each layer's range is the min and max seen; ``"entropy"``: the range that
        minimises the KL divergence between the float and the int8 outputs.
    num_calib : int, optional
        Images to calibrate on (default: all).
    float32_operators : dict or list, optional
        Operators kept in float32 (default :data:`FLOAT32_OPERATORS`).
    keep_float_layers : sequence of str
        Parts of layer names kept in float32 besides (``"conv0"`` keeps the first convolution).
    granularity : str
        ``"tensor-wise"`` or ``"channel-wise"`` weight scales.
    portable : bool
        False (default): ROIAlign and the proposal NMS run :mod:`gluon_maskrcnn.ops`'s CPU
        operators when they are built (FPN R50 at 800x1216: 2.26 s a call instead of 4.04 s);
        the export then loads where gluon_maskrcnn is installed. True: MXNet's own operators
        only, so the export loads in any MXNet with oneDNN. Ignored when ``net`` is an
        :class:`~gluon_maskrcnn.export.ExportedModel` (its graph is used as it is).

    Returns
    -------
    gluon_maskrcnn.export.ExportedModel
        Called like ``net``: ``(ids, scores, bboxes, masks)``; ``int8`` is True.
    """
    from mxnet.contrib.quantization import quantize_net_v2

    if is_quantized(net):
        raise QuantizationError("this network is already quantized (int8); quantize the float32 network")
    device = network_context(net)
    if device.device_type != "cpu":
        raise QuantizationError("int8 inference runs on the CPU (oneDNN); the network is on %s: move it "
                                "with net.collect_params().reset_ctx(mx.cpu())" % device)
    if calib_mode not in CALIB_MODES:
        raise QuantizationError("unknown calibration mode %r; choose one of %s" % (calib_mode, ", ".join(CALIB_MODES)))
    count = len(calib_images) if num_calib is None else min(int(num_calib), len(calib_images))
    if count < 1:
        raise QuantizationError("no calibration images: give at least one image of the kind the model "
                                "will see (a few dozen calibrate well)")
    subset = calib_images if count == len(calib_images) else [calib_images[k] for k in range(count)]
    arrays = _calibration_arrays(subset, net.short, net.max_size)
    graph = _float_graph(net, arrays.shape[2:], portable)
    loader = mx.gluon.data.DataLoader(mx.gluon.data.SimpleDataset([(x,) for x in arrays]), batch_size=1)
    operators = list(FLOAT32_OPERATORS if float32_operators is None else float32_operators)
    qblock = quantize_net_v2(graph.graph, quantized_dtype="auto", quantize_granularity=granularity,
                             exclude_operators=operators, exclude_layers_match=list(keep_float_layers),
                             calib_data=loader, calib_mode=calib_mode, num_calib_examples=count, ctx=mx.cpu())
    return ExportedModel(qblock, graph.classes, graph.short, graph.max_size, int8=True,
                         extension_ops=graph.extension_ops)
