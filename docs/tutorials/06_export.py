"""
6. Export and deploy
====================

Turn a trained model into MXNet's standard deployment files, or into one ONNX file for ONNX
Runtime and the other runtimes that read ONNX, load them back without the model's Python
classes, and check that the outputs are the same.

From the command line::

    python scripts/export_mask_rcnn.py --model runs/mask_rcnn-best --out exported/mask_rcnn

writes ``exported/mask_rcnn-symbol.json`` (the graph), ``exported/mask_rcnn-0000.params``
(the weights) and ``exported/mask_rcnn-meta.json`` (class names and resize settings). The
first two load with ``SymbolBlock.imports`` in Python, or with MXNet's C++ and other
front ends. A zoo name works as ``--model`` too: ``--model mask_rcnn_fpn_resnet50_v1b_coco``
exports GluonCV's COCO weights. ``--format onnx`` writes ``exported/mask_rcnn.onnx`` instead
(``pip install .[onnx]``).
"""
import os
import warnings

import matplotlib.pyplot as plt
import mxnet as mx
import numpy as np

import gluon_maskrcnn as gm
from gluon_maskrcnn.data.coco import COCOInstances, read_image
from gluon_maskrcnn.data.transforms import ValTransform
from gluon_maskrcnn.engine import load_model
from gluon_maskrcnn.engine.cached import docs_model
from gluon_maskrcnn.export import export_model, load_exported
from gluon_maskrcnn.viz import draw_instances


def show(image, result, classes, title):
    """Draw one image's predictions (``gm.predict``'s dict) in a figure of its own."""
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.imshow(draw_instances(image, result["boxes"], result["labels"], result["scores"], result["masks"], classes))
    ax.set_title(title)
    ax.axis("off")

# %%
# A trained model
# ---------------
# The documentation's shape model, the one the training tutorial trained (trained here if no
# earlier page of this build did).
run = docs_model(os.path.join("..", "_build", "model_cache"))
net = load_model(run["prefix"] + "-best")
print("%s: segm AP %.3f on the synthetic val split" % (run["prefix"] + "-best", run["segm_AP"]))

# %%
# Export
# ------
# :func:`~gluon_maskrcnn.export.export_model` hybridizes the network, traces it once and
# writes the files. The graph is not tied to the traced size.
prefix = os.path.join("runs", "exported", "mask_rcnn")
for path in export_model(net, prefix, size=(net.short, net.short)):
    print("%-40s %8.1f kB" % (path, os.path.getsize(path) / 1024))

# %%
# Load with plain MXNet
# ---------------------
# Only MXNet is needed to run the graph: one input named ``data``, four outputs.
with warnings.catch_warnings():  # MXNet cannot infer the input's dtype from the file: float32
    warnings.simplefilter("ignore", UserWarning)
    deployed = mx.gluon.SymbolBlock.imports(prefix + "-symbol.json", ["data"],
                                            prefix + "-0000.params")
val = COCOInstances(run["args"].dataset_root, "val", skip_empty=False)
images = [read_image(val.image_path(i)) for i in range(8)]
found = [len(r["labels"]) for r in gm.predict(net, images, score_thresh=0.7)]
image = images[int(np.argmax(found))]  # the validation image with the most detections
x, (height, width, scale_x, scale_y) = ValTransform(net.short, net.max_size)(image)
x = mx.nd.array(x[None])  # (3, H, W) -> (1, 3, H, W)
original = [o.asnumpy() for o in net(x)]
exported = [o.asnumpy() for o in deployed(x)]
for name, a, b in zip(net.INFER_OUTPUTS, original, exported):
    print("%-7s %-18s largest difference %g" % (name, a.shape, np.abs(a - b).max()))

# %%
# Back to boxes and masks in the original image
# ---------------------------------------------
# The network sees the resized image; boxes are divided by the resize scales and each mask is
# pasted into its box at the original size by
# :func:`~gluon_maskrcnn.inference.detections_to_original` (one OpenCV resize per detection).
# :func:`~gluon_maskrcnn.export.load_exported` also reads the meta file, so the deployed model
# goes straight into :func:`gluon_maskrcnn.predict`.
model = load_exported(prefix)
print("classes:", model.classes, "short side:", model.short)
result = gm.predict(model, [image], score_thresh=0.7)[0]
reference = gm.predict(net, [image], score_thresh=0.7)[0]
print("detections: exported %d, original %d; same labels: %s"
      % (len(result["labels"]), len(reference["labels"]),
         np.array_equal(result["labels"], reference["labels"])))

show(image, result, model.classes, "predicted by the exported files")

# %%
# ONNX
# ----
# ``format="onnx"`` writes the same graph as one ONNX file (opset 13): backbone, RPN with its
# NMS, ROIAlign, box head, per-class NMS and mask head, with the outputs ``ids``, ``scores``,
# ``bboxes`` and ``masks``, and the class names and resize settings in the file's metadata.
# Batch, height and width stay dynamic. MXNet's own exporter translates the graph; four
# operators use the project's translations (:mod:`gluon_maskrcnn.onnx_ops` says which and why).
from gluon_maskrcnn.onnx_export import OnnxModel

onnx_path = export_model(net, prefix, size=(net.short, net.short), format="onnx")[0]
print("%-40s %8.1f kB" % (onnx_path, os.path.getsize(onnx_path) / 1024))
runtime = OnnxModel(onnx_path)  # ONNX Runtime on the CPU
from_onnx = [o.asnumpy() for o in runtime(x)]
for name, a, b in zip(net.INFER_OUTPUTS, original, from_onnx):
    print("%-7s %-18s largest difference %g" % (name, a.shape, np.abs(a - b).max()))

# %%
# :func:`gluon_maskrcnn.predict` and ``scripts/demo_mask_rcnn.py --model`` take the ``.onnx``
# path itself; masks are pasted exactly as for the MXNet model. Compared here over every
# detection (no score threshold), then drawn above the threshold.
everything = gm.predict(onnx_path, [image], score_thresh=0.0)[0]
everything_mxnet = gm.predict(net, [image], score_thresh=0.0)[0]
same_labels = np.array_equal(everything["labels"], everything_mxnet["labels"])
print("detections: ONNX %d, original %d; same labels: %s"
      % (len(everything["labels"]), len(everything_mxnet["labels"]), same_labels))
if same_labels:
    print("pasted mask pixels that differ: %d of %d"
          % ((everything["masks"] != everything_mxnet["masks"]).sum(), everything_mxnet["masks"].size))
from_file = gm.predict(onnx_path, [image], score_thresh=0.7)[0]

show(image, from_file, runtime.classes, "predicted by ONNX Runtime")

# %%
# INT8 on the CPU
# ---------------
# :func:`~gluon_maskrcnn.quantization.quantize` calibrates the network on your own images
# (here the first 32 training images, resized as inference resizes them) and returns an int8
# model: oneDNN's int8 kernels run the convolutions and fully-connected layers, and box
# decoding, NMS, ROIAlign and the operators listed in
# :data:`~gluon_maskrcnn.quantization.FLOAT32_OPERATORS` stay in float32. It exports and loads
# like any model. From the command line::
#
#     python scripts/quantize_mask_rcnn.py --model runs/mask_rcnn-best --dataset-root data/synthetic \
#         --split train --num-calib 32 --out exported/mask_rcnn_int8 --eval-split val
#
# At this page's 128 pixels the convolutions are a smaller part of the time printed below (NMS,
# ROIAlign, decoding and pasting the masks stay float32), so the gain is smaller than at real
# sizes: FPN R50 at 800x1216 runs 2.6x faster in int8 than in float32 (see the benchmarks page).
from gluon_maskrcnn.benchmarks.report import int8_instruction_set
from gluon_maskrcnn.engine.int8 import compare_on_split, format_comparison
from gluon_maskrcnn.quantization import quantize

train = COCOInstances(run["args"].dataset_root, "train")
int8_net = quantize(net, train, num_calib=32)
int8_prefix = os.path.join("runs", "exported", "mask_rcnn_int8")
export_model(int8_net, int8_prefix)
int8_loaded = load_exported(int8_prefix)
report = compare_on_split({"fp32": net, "int8": int8_loaded}, val)
print("CPU int8 instructions: %s" % int8_instruction_set())
print(format_comparison(report))

int8_result = gm.predict(int8_loaded, [image], score_thresh=0.7)[0]
show(image, int8_result, int8_loaded.classes, "predicted by the int8 model")
