"""Tiny models and batches for tests, built from the project's own code."""
import mxnet as mx
import numpy as np

import gluon_maskrcnn as gm
from gluon_maskrcnn.data.rpn_targets import RPNTargetGenerator
from gluon_maskrcnn.model_zoo import PRESETS
from gluon_maskrcnn.modeling.warmup import forward_once

TINY = dict(rpn_train_pre_nms=300, rpn_train_post_nms=64, rpn_test_pre_nms=200,
            rpn_test_post_nms=40, num_sample=32, max_dets=20, anchor_alloc_size=(64, 64))
TINY_CLASSES = ["circle", "square", "triangle"]


def tiny_model(fpn=True, seed=0, batch_size=1, **overrides):
    """A ResNet-18 Mask R-CNN with small proposal counts and three classes."""
    mx.random.seed(seed)
    name = "mask_rcnn_fpn_resnet18_v1b_coco" if fpn else "mask_rcnn_resnet18_v1b_coco"
    cfg = dict(TINY, per_device_batch_size=batch_size, **overrides)
    net = gm.get_model(name, pretrained_base=False, classes=TINY_CLASSES, **cfg)
    forward_once(net)  # finish deferred initialisation; wait for oneDNN's weight reorders
    return net, dict(PRESETS[name], **cfg)


def tiny_batch(cfg, boxes_per_image, size=(96, 128), seed=0):
    """A batch with rectangular objects: images, gt boxes/labels/masks and RPN targets.

    ``boxes_per_image``: list (per image) of lists of (x1, y1, x2, y2, label); padded with -1.
    """
    rng = np.random.RandomState(seed)
    h, w = size
    batch = len(boxes_per_image)
    most = max(1, max(len(b) for b in boxes_per_image))
    images = rng.normal(0, 1, size=(batch, 3, h, w)).astype(np.float32)
    gt_boxes = -np.ones((batch, most, 4), np.float32)
    gt_labels = -np.ones((batch, most, 1), np.float32)
    gt_masks = np.zeros((batch, most, h, w), np.float32)
    gen = RPNTargetGenerator.from_preset(cfg)
    rpn = []
    for i, objects in enumerate(boxes_per_image):
        for j, (x1, y1, x2, y2, label) in enumerate(objects):
            gt_boxes[i, j] = (x1, y1, x2, y2)
            gt_labels[i, j] = label
            gt_masks[i, j, int(y1):int(y2), int(x1):int(x2)] = 1
            images[i, :, int(y1):int(y2), int(x1):int(x2)] += 2.0
        rpn.append(gen(gt_boxes[i, :len(objects)], h, w, rng=rng))
    rpn_cls, rpn_box, rpn_mask = (np.stack(t) for t in zip(*rpn))
    return [mx.nd.array(a) for a in (images, gt_boxes, gt_labels, gt_masks, rpn_cls, rpn_box, rpn_mask)]


def write_published_params(name, folder):
    """A parameter file of zoo model ``name``'s layout (random weights) in ``folder/models``,
    named as the model store names GluonCV's published file. Returns (path, sha1); a test gives
    the sha1 to the store (``store.sha1_table``) so that ``pretrained=True`` loads the file as it
    would GluonCV's, offline."""
    import os

    from gluon_maskrcnn.store import sha1_of

    net = gm.get_model(name, pretrained_base=False)
    forward_once(net)
    os.makedirs(os.path.join(folder, "models"), exist_ok=True)
    tmp = os.path.join(folder, "models", "tmp.params")
    net.save_parameters(tmp)
    sha1 = sha1_of(tmp)
    path = os.path.join(folder, "models", "%s-%s.params" % (name, sha1[:8]))
    os.replace(tmp, path)
    return path, sha1
