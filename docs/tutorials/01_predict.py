"""
1. Predict with a model from the zoo
====================================

Load a Mask R-CNN by name, run it on images, and draw the instances it finds.

With GluonCV's COCO weights, on your own photos, this is all it takes::

    import gluon_maskrcnn as gm

    net = gm.get_model("mask_rcnn_fpn_resnet50_v1b_coco", pretrained=True)
    results = gm.predict(net, ["street.jpg", "kitchen.jpg"])

``pretrained=True`` downloads GluonCV's published parameter file once (checked by sha1) into
``~/.mxnet/models``. This page is built offline: when that file is already cached it is used;
otherwise the page says so and shows the documentation's own model instead, an FPN ResNet-18
trained from scratch on the synthetic shapes dataset by the README's main recipe. The docs
build trains it once (the first page that needs it does), keeps it in ``docs/_build`` under a
key of its recipe, and fails if it scores below segm AP 0.5 on the synthetic val split.
"""
import os

import matplotlib.pyplot as plt

import gluon_maskrcnn as gm
from gluon_maskrcnn.data.coco import COCOInstances, read_image
from gluon_maskrcnn.engine import load_model
from gluon_maskrcnn.engine.cached import docs_model, docs_model_args
from gluon_maskrcnn.model_zoo import PUBLISHED_AP
from gluon_maskrcnn.store import cached_params, model_root
from gluon_maskrcnn.viz import draw_instances

# %%
# The model zoo
# -------------
# The names are GluonCV's, and so are the hyper-parameters and parameter files: a file that
# GluonCV saved loads strictly (nothing missing, nothing extra).
for name in gm.get_model_list():
    box_ap, mask_ap = PUBLISHED_AP.get(name, (None, None))
    published = "box AP %.1f, mask AP %.1f" % (box_ap, mask_ap) if box_ap else ""
    print("%-40s cached: %-5s %s" % (name, bool(cached_params(name)), published))

# %%
# Load a model
# ------------
name = "mask_rcnn_fpn_resnet50_v1b_coco"
val_root = docs_model_args().dataset_root  # the synthetic dataset (written here if missing)
if cached_params(name):
    net = gm.get_model(name, pretrained=True)
    print("loaded GluonCV's COCO weights of", name)
else:
    print("GluonCV's COCO weights of %s are not in %s\n(this build is offline): using the "
          "documentation's FPN ResNet-18 trained on the synthetic dataset instead." % (name, model_root()))
    run = docs_model(os.path.join("..", "_build", "model_cache"))  # trains it if this build has not
    net = load_model(run["prefix"] + "-best")
    print("%s: segm AP %.3f, bbox AP %.3f on the synthetic val split"
          % (run["prefix"] + "-best", run["metrics"]["segm"]["AP"], run["metrics"]["bbox"]["AP"]))
print("%d classes: %s%s" % (len(net.classes), ", ".join(net.classes[:6]),
                           ", ..." if len(net.classes) > 6 else ""))

# %%
# Predict
# -------
# :func:`gluon_maskrcnn.predict` takes file names or ``HxWx3`` uint8 RGB arrays. It resizes
# each image as the model was trained (``net.short``, ``net.max_size``), runs the network, and
# returns per image the boxes in original pixels, labels, scores, class names and binary masks
# pasted at the original size. Detections under ``score_thresh`` are dropped: this page keeps
# 0.7, where the shape model's labels are nearly all right (over the 50 val images, 99 of 131
# shapes found with their class and 11 other detections; at 0.5, 106 found and 57 others).
val = COCOInstances(val_root, "val", skip_empty=False)
paths = [val.image_path(i) for i in range(4)]
results = gm.predict(net, paths, score_thresh=0.7)
for path, result in zip(paths, results):
    print(os.path.basename(path), "->", ", ".join(
        "%s %.2f" % (n, s) for n, s in zip(result["class_names"], result["scores"])) or "nothing")
print("masks of the first image:", results[0]["masks"].shape, results[0]["masks"].dtype)

# %%
# Draw
# ----
# :func:`gluon_maskrcnn.viz.draw_instances` blends the masks and draws boxes and captions.
fig, axes = plt.subplots(1, len(paths), figsize=(4 * len(paths), 3.4))
for ax, path, result in zip(axes, paths, results):
    ax.imshow(draw_instances(read_image(path), result["boxes"], result["labels"],
                             result["scores"], result["masks"], net.classes))
    ax.axis("off")
plt.tight_layout()

# %%
# The raw network output
# ----------------------
# ``net(x)`` on a normalised batch returns ``(ids, scores, bboxes, masks)`` with shapes
# (B, N, 1), (B, N, 1), (B, N, 4) and (B, N, S, S): N = ``max_dets`` detections per image
# (100 by default, the most COCO's evaluation reads), rows past the real detections with id -1,
# and each mask a probability map over its box. From the command line the same prediction is
# ``python scripts/demo_mask_rcnn.py --model NAME_OR_CHECKPOINT --images a.jpg b.jpg --out out``.
