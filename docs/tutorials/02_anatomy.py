"""
2. Anatomy of Mask R-CNN
========================

Follow one training batch through the network: the blocks it passes, the three kinds of
training targets (RPN, RCNN, mask), and the shape of everything on the way.

Nothing is trained here, so the model is an untrained FPN ResNet-18 at a small input size. For
COCO the same code runs with ``mask_rcnn_fpn_resnet50_v1b_coco`` and the preset's 800-pixel
short side; only the sizes printed below change.
"""
import os

import matplotlib.pyplot as plt
import mxnet as mx
import numpy as np
from matplotlib.patches import Rectangle
from mxnet import autograd, nd

import gluon_maskrcnn as gm
from gluon_maskrcnn.data.batchify import TrainBatch, TrainBatchify
from gluon_maskrcnn.data.coco import COCOInstances
from gluon_maskrcnn.data.rpn_targets import RPNTargetGenerator
from gluon_maskrcnn.data.synthetic import write_synthetic_coco
from gluon_maskrcnn.data.transforms import MEAN, STD, TrainTransform
from gluon_maskrcnn.model_zoo import PRESETS

mx.random.seed(0)

# %%
# The data
# --------
# The synthetic dataset is a real COCO-format dataset (JPEG files and an instances JSON) of
# circles, rectangles, triangles and rings. :class:`~gluon_maskrcnn.data.coco.COCOInstances`
# reads any such dataset; each item is an image and its instances (boxes, labels, masks).
root = os.path.join("runs", "tutorial_data", "anatomy")
write_synthetic_coco(root, num_train=4, num_val=1)
dataset = COCOInstances(root, "train")
busiest = max(range(len(dataset)), key=lambda i: len(dataset[i][1]))
image, instances = dataset[busiest]
print("classes:", dataset.classes)
print("image", image.shape, "boxes", instances.boxes.shape, "labels", instances.labels,
      "segmentations", [kind for kind, _ in instances.segms])

# %%
# The model
# ---------
# :func:`~gluon_maskrcnn.model_zoo.get_model` builds the network from its zoo preset; any preset
# entry can be overridden by keyword. ``classes`` gives the heads one output per class.
name = "mask_rcnn_fpn_resnet18_v1b_coco"
overrides = dict(short=256, max_size=320, rpn_train_pre_nms=2000, rpn_train_post_nms=512,
                 num_sample=128)
net = gm.get_model(name, pretrained_base=False, classes=dataset.classes, **overrides)
cfg = dict(PRESETS[name], **overrides)
for child_name, child in vars(net).items():
    if isinstance(child, mx.gluon.Block):  # the stages, in the order they were registered
        print("%-17s %s" % (child_name, type(child).__name__))

# %%
# The batch, and the RPN targets
# ------------------------------
# The train transform resizes, flips and normalises the image and rasterises the masks. The
# RPN targets are computed next to it, in the ``DataLoader`` workers, from the anchor
# parameters alone: the workers never see the network. Each anchor is labelled 1 (object),
# 0 (background) or -1 (ignored); 256 are sampled per image, at most half of them positive.
transform = TrainTransform(cfg["short"], cfg["max_size"], flip_prob=0.0)
rpn_targets = RPNTargetGenerator.from_preset(cfg)
batch = TrainBatchify(rpn_targets, seed=0)([transform(image, instances, np.random.RandomState(0))])
for field, array in zip(TrainBatch, batch):
    print("%-16s %s" % (field, array.shape))

x, gt_boxes, gt_labels, gt_masks, rpn_cls, rpn_box, rpn_weight = batch
height, width = x.shape[2:]
anchors = rpn_targets.anchors(height, width)
labels = rpn_cls[0].asnumpy()
print("anchors %d: %d positive, %d negative, the rest ignored"
      % (len(anchors), (labels == 1).sum(), (labels == 0).sum()))


def show(ax, title):
    """Draw the batch's image (un-normalised) on ``ax``."""
    pixels = x[0].asnumpy().transpose(1, 2, 0) * np.array(STD) + np.array(MEAN)
    ax.imshow(np.clip(pixels, 0, 1))
    ax.set_title(title)
    ax.axis("off")


def draw_boxes(ax, boxes, color, width=1.0):
    for x1, y1, x2, y2 in boxes:
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=color, lw=width))


fig, axes = plt.subplots(1, 2, figsize=(10, 4))
show(axes[0], "the anchors of one location, per level")
centre = [width / 2, height / 2]
for stride, color in zip(cfg["strides"], ["red", "orange", "yellow", "lime", "cyan"]):
    shifted = anchors[(np.abs((anchors[:, :2] + anchors[:, 2:]) / 2 - centre) < stride / 2).all(1)]
    draw_boxes(axes[0], shifted[:3], color)
show(axes[1], "positive anchors (green), ground truth (white)")
draw_boxes(axes[1], anchors[labels == 1], "lime", 0.6)
draw_boxes(axes[1], gt_boxes[0].asnumpy(), "white", 2.0)
plt.tight_layout()

# %%
# Features
# --------
# The backbone and the FPN turn the image into five maps, P2 to P6, of strides 4 to 64.
for level, feature in zip(range(2, 7), net.features(x)):
    print("P%d %s" % (level, feature.shape))

# %%
# The training forward
# --------------------
# In ``autograd.train_mode()`` the network takes the ground truth too, and returns its
# predictions with their targets: ``cls_pred`` and ``box_pred`` for the K sampled ROIs,
# ``mask_pred`` for the positives among them, and the RPN's raw outputs for every anchor.
# The outputs come in GluonCV's positional order and by name.
with autograd.train_mode():
    out = net(x, gt_boxes, gt_labels)
for field in net.TRAIN_OUTPUTS:
    print("%-14s %s" % (field, getattr(out, field).shape))

# %%
# Sampled ROIs and RCNN targets
# -----------------------------
# The RCNN target sampler picks 128 of the RPN's proposals (512 in the zoo presets), at most a
# quarter of them positive (IoU >= 0.5 with a ground-truth box); each gets its class target
# and class-specific box target. The ground-truth boxes are always among the candidates.
rois = out.rois[0].asnumpy()
cls_targets = out.cls_targets[0].asnumpy()
print("sampled ROIs: %d positive, %d background, %d padding"
      % ((cls_targets > 0).sum(), (cls_targets == 0).sum(), (cls_targets < 0).sum()))
fig, ax = plt.subplots(figsize=(5, 4))
show(ax, "sampled ROIs: positive (green), background (red)")
draw_boxes(ax, rois[cls_targets == 0][:40], "red", 0.5)
draw_boxes(ax, rois[cls_targets > 0], "lime", 0.8)

# %%
# Mask targets
# ------------
# :class:`~gluon_maskrcnn.modeling.mask_targets.MaskTargetGenerator` ROI-aligns each positive ROI's
# ground-truth mask to the mask head's output size (28 x 28 in the FPN ResNet-50 and -101
# presets, 14 x 14 in the others), with weight 1 for the positives. The loss scores each
# positive's mask on the head's channel of the ROI's own class only, so the mask head only
# learns the class the ROI belongs to. The sampler puts each image's positives first, in its
# ``max_pos`` foreground slots, and ``net.sampler.foreground`` reads those slots.
positives = net.sampler.max_pos
foreground = lambda t: net.sampler.foreground(nd, t)  # (B, S, ...) -> (B, max_pos, ...)
mask_targets, mask_weights = net.mask_target(foreground(out.rois), gt_masks,
                                             foreground(out.matches), foreground(out.cls_targets))
print("mask targets", mask_targets.shape, "weights", mask_weights.shape)
shown = np.flatnonzero(cls_targets[:positives] > 0)[:8]
fig, axes = plt.subplots(1, len(shown), figsize=(1.6 * len(shown), 2))
for ax, index in zip(np.atleast_1d(axes), shown):
    label = int(cls_targets[index]) - 1  # class targets count background as 0
    ax.imshow(mask_targets[0, index].asnumpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(dataset.classes[label], fontsize=8)
    ax.set_xticks([]), ax.set_yticks([])  # keep the frame: an all-white target is a full box

# %%
# The five losses
# ---------------
# :class:`~gluon_maskrcnn.modeling.losses.MaskRCNNLoss` returns them by name, each normalised per
# image and averaged over the images (with one image per device, as GluonCV's training script
# normalises; a step then does not depend on how images are spread over devices).
# The model owns its loss block, ``net.loss``, and
# :meth:`net.losses(*batch) <gluon_maskrcnn.modeling.mask_rcnn.MaskRCNN.losses>` runs the forward, the mask
# targets and the losses in one call, which is all the training loop asks of the model.
losses = net.loss(out.raw_rpn_score, out.raw_rpn_box, rpn_cls, rpn_box, rpn_weight,
                  out.cls_pred, out.cls_targets, out.box_pred, out.box_targets,
                  out.box_masks, out.mask_pred, mask_targets, mask_weights)
for loss_name, value in losses._asdict().items():
    print("%-8s %.4f" % (loss_name, value.asscalar()))

# %%
# Inference
# ---------
# Outside ``train_mode`` the network returns ``(ids, scores, bboxes, masks)`` for
# ``max_dets`` detections per image (100 by default); rows past the real detections have
# id -1. :func:`gluon_maskrcnn.predict` pastes the masks at the original image size.
ids, scores, bboxes, masks = net(x)
print("ids", ids.shape, "scores", scores.shape, "bboxes", bboxes.shape, "masks", masks.shape)
