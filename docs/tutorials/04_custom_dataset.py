"""
4. Train on your own COCO-format dataset
========================================

Bring your own images and annotations in COCO's format, check what the loader makes of them,
and fine-tune a trained model to your classes with ``reset_class``.

Your data needs this layout (the split names are yours to choose)::

    ROOT/annotations/instances_train.json
    ROOT/annotations/instances_val.json
    ROOT/train/*.jpg
    ROOT/val/*.jpg

and trains with::

    python scripts/train_mask_rcnn.py --dataset custom --dataset-root ROOT \\
        --train-split train --val-split val --network resnet50_v1b --use-fpn \\
        --pretrained True --gpus 0,1,2,3

``--pretrained True`` starts from GluonCV's COCO weights: the heads are reset to your classes
(:meth:`~gluon_maskrcnn.modeling.faster_rcnn.FasterRCNN.reset_class`), keeping the weights of
any class whose name is also a COCO class. This page is built offline, without COCO weights,
so it fine-tunes the documentation's shape model (the one the previous tutorial trained) in
the same way, and prints the AP of the two-class model before and after.
"""
import json
import os
import shutil

import matplotlib.pyplot as plt

import gluon_maskrcnn as gm
from gluon_maskrcnn.data.coco import COCOInstances, read_image
from gluon_maskrcnn.data.synthetic import write_synthetic_coco
from gluon_maskrcnn.engine import evaluate, fit, load_model, training_args
from gluon_maskrcnn.engine.cached import docs_model, require_segm_ap
from gluon_maskrcnn.viz import draw_instances

# %%
# A dataset of your own
# ---------------------
# To have something to work with, take synthetic images and write a new annotation file with
# categories of our own: only the round shapes, as "circle" (id 10) and "ring" (id 20). A real
# dataset comes from an annotation tool that exports COCO JSON (CVAT, Label Studio, ...).
root = os.path.join("data", "my_shapes")
source = os.path.join("data", "my_shapes_source")
write_synthetic_coco(source, num_train=48, num_val=24, seed=7)
renamed = {1: 10, 7: 20}  # synthetic category id -> ours
for split in ("train", "val"):
    with open(os.path.join(source, "annotations", "instances_%s.json" % split)) as f:
        coco = json.load(f)
    coco["categories"] = [{"id": 10, "name": "circle"}, {"id": 20, "name": "ring"}]
    coco["annotations"] = [dict(a, category_id=renamed[a["category_id"]])
                           for a in coco["annotations"] if a["category_id"] in renamed]
    if split == "train":  # one broken annotation, as real exports sometimes have
        coco["annotations"].append(dict(coco["annotations"][0], id=10 ** 6, bbox=[5, 5, 0, 0]))
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    with open(os.path.join(root, "annotations", "instances_%s.json" % split), "w") as f:
        json.dump(coco, f)
    shutil.copytree(os.path.join(source, split), os.path.join(root, split), dirs_exist_ok=True)

# %%
# What the loader makes of it
# ---------------------------
# :class:`~gluon_maskrcnn.data.coco.COCOInstances` maps the category ids, whatever they are, to
# classes 0..C-1 (``category_ids`` maps back for evaluation), keeps crowd regions out of the
# targets, and drops what cannot be trained on -- degenerate boxes, polygons of fewer than
# three points, empty masks -- counting each kind in ``skipped`` and logging the counts once,
# with the annotation file's name. A missing or unreadable image raises
# :class:`~gluon_maskrcnn.data.coco.DataError` naming the file.
train = COCOInstances(root, "train")
print("classes:", train.classes, "category ids:", train.category_ids)
print("images:", len(train), "skipped:", dict(train.skipped))

# %%
# ``classes=`` keeps a subset, in the order given (here: rings only).
rings = COCOInstances(root, "train", classes=["ring"])
print("images with a ring:", len(rings))

fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for ax, index in zip(axes, range(3)):
    image, instances = train[index]
    masks = instances.masks(*image.shape[:2])
    ax.imshow(draw_instances(image, instances.boxes, instances.labels, masks=masks,
                             class_names=train.classes))
    ax.axis("off")
plt.tight_layout()

# %%
# Fine-tune with new classes
# --------------------------
# ``--pretrained`` takes ``True`` (COCO weights), a ``.params`` file, or one of your
# checkpoints. Its class list is reset to the dataset's: "circle" and "ring" exist in the
# previous tutorial's model too, so their classifier, box and mask weights carry over; a
# class it never saw would start from fresh weights. The same in Python:
#
# .. code-block:: python
#
#     net = gm.get_model("mask_rcnn_fpn_resnet50_v1b_coco", pretrained=True,
#                        classes=["person", "my_part"])   # "person" keeps its COCO weights
checkpoint = docs_model(os.path.join("..", "_build", "model_cache"))["prefix"] + "-best"
before = load_model(checkpoint)
mapping = before.reset_class(["circle", "ring"])
print("classes of the checkpoint: %s; kept rows (new -> old): %s" % (load_model(checkpoint).classes, mapping))
val = COCOInstances(root, "val", skip_empty=False)
metrics = evaluate(before, val)
print("before fine-tuning: segm AP %.3f, bbox AP %.3f" % (metrics["segm"]["AP"], metrics["bbox"]["AP"]))

# %%
# Two epochs over the new training images, at half the learning rate of the shape model's
# training (``tiny`` gives the short schedule; the test-time settings are the shape model's, so
# that the two APs compare):
args = training_args(dataset="custom", dataset_root=root, gpus="", tiny=True, pretrained=checkpoint,
                     epochs=2, lr=0.005, lr_decay_epoch="", lr_warmup=10, val_interval=2,
                     rpn_test_pre_nms=1000, rpn_test_post_nms=200, max_dets=50,
                     save_prefix=os.path.join("runs", "my_shapes", "mask_rcnn"), quiet=True)
state = fit(args)
metrics = state["last_metrics"]
print("after fine-tuning: segm AP %.3f, bbox AP %.3f" % (metrics["segm"]["AP"], metrics["bbox"]["AP"]))
require_segm_ap(metrics, 0.5, "the fine-tuned two-class model")  # the build fails below 0.5

# %%
# Predict with the fine-tuned model
# ---------------------------------
net = state["net"]
paths = [val.image_path(i) for i in range(3)]
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for ax, path, result in zip(axes, paths, gm.predict(net, paths, score_thresh=0.7)):
    ax.imshow(draw_instances(read_image(path), result["boxes"], result["labels"],
                             result["scores"], result["masks"], net.classes))
    ax.axis("off")
plt.tight_layout()
