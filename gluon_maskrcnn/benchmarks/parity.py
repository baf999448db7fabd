"""Compare our model with GluonCV's of the same name, on the same parameter file and input.

Used by ``tests/model_zoo/test_gluoncv_parity.py`` and ``scripts/compare_gluoncv.py``.
"""
import os
import tempfile
import types

import mxnet as mx
import numpy as np
from mxnet import nd

from ..boxes import box_iou
from ..internals import (gluoncv_pyramid_pooling, gluoncv_roi_settings, set_gluoncv_pyramid_pooling,
                         structural_params)
from ..modeling.roi_align import with_batch_index
from ..modeling.rpn import head_outputs
from ..modeling.warmup import forward_once

__all__ = ["gluoncv_model", "load_pair", "stage_differences", "match_detections", "random_image",
           "training_batch", "training_differences", "GLUONCV_SGD"]

# GluonCV's train_mask_rcnn.py optimizer: SGD, lr 0.00125 per image, momentum 0.9, wd 1e-4 and
# wd_mult 0 on '.*bias'
GLUONCV_SGD = dict(learning_rate=0.00125, momentum=0.9, wd=1e-4)


def gluoncv_model(name, seed=0, image_shape=(128, 160), **kwargs):
    """GluonCV's model of ``name``, randomly initialised from ``seed`` (deferred init completed).

    GluonCV's SyncBN models keep their FPN's statistics in symbol auxiliary states named
    ``*_moving_mean`` / ``*_moving_var``, which ``initialize()`` fills with the default uniform
    initializer: negative variances, so every feature is NaN. Here they get valid statistics
    (means N(0, 0.1), variances U(0.5, 1.5)), which both models then read from the same file.
    """
    import gluoncv

    mx.random.seed(seed)
    np.random.seed(seed)
    net = gluoncv.model_zoo.get_model(name, pretrained_base=False, **kwargs)
    net.initialize()
    forward_once(net, image_shape)
    rng = np.random.RandomState(seed)
    for param_name, param in net.collect_params().items():
        if param_name.endswith("moving_var"):
            param.set_data(nd.array(rng.uniform(0.5, 1.5, param.shape)))
        elif param_name.endswith("moving_mean"):
            param.set_data(nd.array(rng.normal(0, 0.1, param.shape)))
    return net


def load_pair(name, seed=0, max_dets=1000, folder=None, gluoncv_max_dets=None, **keywords):
    """(GluonCV net, our net loaded strictly from GluonCV's saved file, the file's path).

    ``max_dets``: ours; ``gluoncv_max_dets``: GluonCV's ``rcnn_max_dets`` for the builders that
    take it (the R18 and SyncBN ones; default: the builder's 1000). ``keywords``: GluonCV
    ``get_model`` keywords given to both networks (``rpn_test_post_nms=100`` for a smaller run).

    The GluonCV net pools its FPN levels without MXNet's ROIAlign race (see
    ``zero_skipped_rois``): unpatched, its detections depend on what the process computed
    before.
    """
    from ..model_zoo import get_model

    kwargs = dict(keywords) if gluoncv_max_dets is None else dict(keywords, rcnn_max_dets=gluoncv_max_dets)
    reference = zero_skipped_rois(gluoncv_model(name, seed, **kwargs))
    folder = folder or tempfile.mkdtemp(prefix="parity-")
    path = os.path.join(folder, name + ".params")
    reference.save_parameters(path)
    ours = get_model(name, pretrained=path, pretrained_base=False, max_dets=max_dets, **keywords)
    return reference, ours, path


def random_image(height, width, seed=0):
    """A normalised-image-like input (1, 3, H, W)."""
    rng = np.random.RandomState(seed)
    return nd.array(rng.normal(0, 1, size=(1, 3, height, width)).astype(np.float32))


def _max_abs(a, b):
    return float(np.max(np.abs(a.asnumpy() - b.asnumpy()))) if a.size else 0.0


def _gluoncv_rpn_raw(rpn, feats):
    head = rpn.rpn_head if hasattr(rpn, "rpn_head") else rpn
    raw = [head_outputs(head, f) for f in feats]
    return nd.concat(*[r[0] for r in raw], dim=1), nd.concat(*[r[1] for r in raw], dim=1)


def _roi_align_zero_skipped(data, rois, *args, **kwargs):
    """``contrib.ROIAlign`` whose rows for skipped ROIs (batch index -1) are zeros.

    MXNet 1.9's CPU ROIAlign leaves those rows unwritten, so they hold whatever the memory pool
    held before (zeros in a fresh process, garbage after other work), and it writes into ROI 0's
    row for each of them instead.
    """
    out = mx.nd.contrib.ROIAlign(data, rois, *args, **kwargs)
    valid = (rois.slice_axis(axis=1, begin=0, end=1) >= 0).reshape((-1, 1, 1, 1))  # (K, 1) -> (K, 1, 1, 1)
    return mx.nd.where(mx.nd.broadcast_like(valid, out), out, mx.nd.zeros_like(out))


# mx.nd with ROIAlign replaced by _roi_align_zero_skipped, for GluonCV's pooling code
_ND_ZERO_SKIPPED = types.SimpleNamespace(**dict(vars(nd), contrib=types.SimpleNamespace(
    **dict(vars(nd.contrib), ROIAlign=_roi_align_zero_skipped))))


def _gluoncv_pyramid(ref, feats, rois, *args, **kwargs):
    """GluonCV's FPN ROI pooling code on ``rois`` (K, 5), without MXNet's ROIAlign race: skipped
    ROIs give zero rows, and a sacrificial first ROI absorbs the writes into row 0, so what is
    compared is GluonCV's arithmetic."""
    padded = nd.concat(nd.zeros((1, 5)), rois, dim=0)
    pool = gluoncv_pyramid_pooling(ref)
    return pool(ref, _ND_ZERO_SKIPPED, feats, padded, *args, **kwargs)[1:]


def zero_skipped_rois(reference):
    """Make an imperative GluonCV FPN R-CNN pool its levels with :func:`_gluoncv_pyramid`: its
    own arithmetic, with zeros where MXNet's ROIAlign leaves the rows of skipped ROIs unwritten.
    A C4 net (one level, no skipped ROIs) is returned as it is."""
    if reference.num_stages > 1:
        set_gluoncv_pyramid_pooling(
            reference, lambda F, *args, **kwargs: _gluoncv_pyramid(reference, *args, **kwargs))
    return reference


def _gluoncv_pool(ref, feats, rois):
    """GluonCV's ROI pooling of ``rois`` (K, 5) (see :func:`_gluoncv_pyramid`)."""
    roi_size, strides, roi_mode = gluoncv_roi_settings(ref)
    if ref.num_stages > 1:
        return _gluoncv_pyramid(ref, feats, rois, roi_size, strides, roi_mode=roi_mode)
    return nd.contrib.ROIAlign(feats[0], rois, roi_size, 1.0 / strides, sample_ratio=2)


def stage_differences(reference, ours, x):
    """Largest absolute difference per stage: features, RPN raw outputs, proposals, heads on the same ROIs."""
    diffs = {}
    ref_feats = reference.features(x)
    ref_feats = ref_feats if isinstance(ref_feats, (list, tuple)) else [ref_feats]
    our_feats = ours.backbone_features(x)
    diffs["features"] = max(_max_abs(a, b) for a, b in zip(ref_feats, our_feats))
    ref_score, ref_box = _gluoncv_rpn_raw(reference.rpn, ref_feats)
    levels = ours.rpn.head_levels(our_feats)
    diffs["rpn_scores"] = _max_abs(ref_score, nd.concat(*[lv[1] for lv in levels], dim=1))
    diffs["rpn_deltas"] = _max_abs(ref_box, nd.concat(*[lv[2] for lv in levels], dim=1))
    _, ref_rois = reference.rpn(nd.zeros_like(x), *ref_feats)
    _, our_rois = ours.rpn(nd.zeros_like(x), *our_feats)
    diffs["proposals"] = _max_abs(ref_rois, our_rois)
    # heads on GluonCV's ROIs
    rois5 = with_batch_index(nd, ref_rois)
    ref_top = _gluoncv_pool(reference, ref_feats, rois5)
    our_top = ours.pool_rois(nd, our_feats, ref_rois)
    diffs["roi_features"] = _max_abs(ref_top, our_top)
    if reference.top_features is not None:
        ref_top = reference.top_features(ref_top)
    our_top, our_box = ours.head_features(nd, ref_top if reference.top_features is None else our_top)
    ref_box = (reference.box_features(ref_top) if reference.box_features is not None
               else nd.contrib.AdaptiveAvgPooling2D(ref_top, output_size=1))
    diffs["cls_pred"] = _max_abs(reference.class_predictor(ref_box), ours.class_predictor(our_box))
    diffs["box_pred"] = _max_abs(reference.box_predictor(ref_box), ours.box_predictor(our_box))
    first = slice(0, 64)  # the mask head is the costly part; 64 ROIs cover it
    diffs["mask_logits"] = _max_abs(reference.mask(ref_top[first]).reshape((-3, -2)),
                                    ours.mask(our_top[first]))
    return diffs


def match_detections(reference, ours, top=100, score_tol=1e-3, iou_min=0.99):
    """Match GluonCV's top detections to ours.

    ``reference`` and ``ours`` are ``(ids, scores, boxes, masks)`` of one image as NumPy arrays.
    Returns dict(matched fraction, count, mean absolute mask difference over matched pairs,
    largest absolute score difference).
    """
    r_ids, r_scores, r_boxes, r_masks = reference
    o_ids, o_scores, o_boxes, o_masks = ours
    valid = np.where(r_ids.reshape(-1) >= 0)[0][:top]
    ious = box_iou(r_boxes[valid], o_boxes)  # (T, K)
    same = r_ids.reshape(-1)[valid, None] == o_ids.reshape(-1)[None, :]
    close = np.abs(r_scores.reshape(-1)[valid, None] - o_scores.reshape(-1)[None, :]) <= score_tol
    ok = same & close & (ious >= iou_min)
    candidates = np.where(ok, ious, -1.0)
    partner = candidates.argmax(axis=1)
    matched = candidates.max(axis=1) >= 0
    mask_diff = [np.abs(r_masks[i] - o_masks[j]).mean()
                 for i, j, m in zip(valid, partner, matched) if m]
    score_diff = [abs(r_scores.reshape(-1)[i] - o_scores.reshape(-1)[j])
                  for i, j, m in zip(valid, partner, matched) if m]
    return dict(fraction=float(matched.mean()) if len(valid) else 1.0, count=int(len(valid)),
                mask_diff=float(np.mean(mask_diff)) if mask_diff else 0.0,
                max_score_diff=float(np.max(score_diff)) if score_diff else 0.0)


def detections_numpy(outputs):
    """(ids, scores, boxes, masks) of the first image as NumPy arrays."""
    return tuple(o[0].asnumpy() for o in outputs)


# Two objects on a 192x224 image: enough anchors for C4's RPN (stride 16, 15 anchors a cell) to
# fill GluonCV's 2000 training proposals, which its RPN needs
TRAINING_OBJECTS = ((20, 30, 90, 100, 3), (70, 10, 150, 60, 17))
TRAINING_SIZE = (192, 224)


def training_batch(cfg, boxes=TRAINING_OBJECTS, size=TRAINING_SIZE, seed=0):
    """One image with rectangular objects ``boxes`` [(x1, y1, x2, y2, class)]: the image
    (1, 3, H, W), gt boxes (1, M, 4), labels (1, M, 1), masks (1, M, H, W), and dense RPN targets
    (1, N), (1, N, 4), (1, N, 4) with the anchor subsampling drawn from ``seed``."""
    from ..data.rpn_targets import RPNTargetGenerator

    rng = np.random.RandomState(seed)
    h, w = size
    image = rng.normal(0, 1, size=(1, 3, h, w)).astype(np.float32)
    gt_boxes = np.array([b[:4] for b in boxes], np.float32)[None]  # (1, M, 4)
    gt_labels = np.array([[b[4]] for b in boxes], np.float32)[None]  # (1, M, 1)
    gt_masks = np.zeros((1, len(boxes), h, w), np.float32)
    for j, (x1, y1, x2, y2, _) in enumerate(boxes):
        gt_masks[0, j, int(y1):int(y2), int(x1):int(x2)] = 1
        image[0, :, int(y1):int(y2), int(x1):int(x2)] += 1.0
    rpn = RPNTargetGenerator.from_preset(cfg)(gt_boxes[0], h, w, rng=rng)
    arrays = [image, gt_boxes, gt_labels, gt_masks] + [t[None] for t in rpn]
    return [nd.array(a) for a in arrays]


def _gluoncv_losses_and_grads(reference, batch):
    """GluonCV's training step (its ForwardBackwardTask, the losses of train_mask_rcnn.py):
    the five losses and the gradients by structural parameter name."""
    from gluoncv.model_zoo.rcnn.mask_rcnn.data_parallel import ForwardBackwardTask
    from mxnet.gluon import loss as gloss

    image, gt_boxes, gt_labels, gt_masks, rpn_cls, rpn_box, rpn_mask = batch
    task = ForwardBackwardTask(reference, None, gloss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=False),
                               gloss.HuberLoss(rho=1 / 9.0), gloss.SoftmaxCrossEntropyLoss(),
                               gloss.HuberLoss(rho=1.0), gloss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=False),
                               False)
    label = nd.concat(gt_boxes, gt_labels, dim=-1)  # (1, M, 5), GluonCV's label layout
    out = task.forward_backward((image, label, gt_masks, rpn_cls, rpn_box, rpn_mask))
    losses = [float(v.asscalar()) for v in out[:5]]
    return losses, _grads(reference)


def _grads(net):
    """Gradients of the trained parameters (anchors are constants) by structural name."""
    train = set(net.collect_train_params().keys())
    return {key: param.grad().asnumpy() for key, param in structural_params(net).items()
            if param.name in train and param.grad_req != "null"}


def _our_losses_and_grads(ours, batch):
    from mxnet import autograd

    with autograd.record():
        losses = ours.losses(*batch)
        total = sum(losses)
    total.backward()
    return [float(v.asscalar()) for v in losses], _grads(ours)


def _inject_samples(reference, ours, batch):
    """Draw one ROI sample with our sampler, and make both networks' samplers return it."""
    from mxnet import autograd

    image, gt_boxes = batch[:2]
    with autograd.train_mode():
        feats = ours.backbone_features(image)
        scores, proposals = ours.rpn(nd.zeros_like(image), *feats)[:2]
        keys = nd.array(np.random.RandomState(1).random_sample((1, ours.sampler.key_count)))
        fixed = ours.sampler(proposals, scores, gt_boxes, keys)
    for net in (reference, ours):  # their samplers now return this sample, whatever they are given
        net.sampler.forward = lambda *inputs: fixed
    zero_skipped_rois(reference)  # compare GluonCV's arithmetic without MXNet's ROIAlign race
    return fixed


def _sgd_step(net, settings, ours):
    """Parameters after one SGD step: GluonCV's Trainer, or ours (no_bias_decay, make_optimizer)."""
    from mxnet import gluon

    from ..engine.distributed import Distributed
    from ..engine.trainer import no_bias_decay

    params = net.collect_train_params()
    if ours:
        trainer = Distributed("device").trainer(no_bias_decay(params), "sgd", dict(settings))
    else:
        for param in net.collect_params(".*bias").values():
            param.wd_mult = 0.0
        trainer = gluon.Trainer(params, "sgd", dict(settings))
    trainer.step(1)
    train = set(params.keys())
    return {key: param.data().asnumpy() for key, param in structural_params(net).items()
            if param.name in train}


def training_differences(reference, ours, batch):
    """Compare one training step of GluonCV's network and ours on the same parameters, image,
    ground truth, RPN targets (dense, the same sampled anchors) and injected ROI samples.

    Returns dict: ``losses`` (GluonCV's five, ours), ``loss_rel`` (largest relative
    difference), ``grad_rel`` (largest of ``|g - g'| / max(max |g|, 1e-2)`` over parameters),
    ``grad_worst`` (that parameter's name), ``step_abs`` (largest parameter difference after one SGD
    step with GluonCV's settings), and ``num_grads``.
    """
    for net in (reference, ours):
        for param in net.collect_params().values():
            param.grad_req = "null"
        for param in net.collect_train_params().values():
            param.grad_req = "write"
    _inject_samples(reference, ours, batch)
    theirs, their_grads = _gluoncv_losses_and_grads(reference, batch)
    mine, my_grads = _our_losses_and_grads(ours, batch)
    assert their_grads.keys() == my_grads.keys(), sorted(set(their_grads) ^ set(my_grads))
    loss_rel = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(theirs, mine))
    grad_rel, worst = 0.0, None
    for key, grad in their_grads.items():
        scale = max(float(np.abs(grad).max()), 1e-2)  # gradients under 1e-6 absolute count as equal
        diff = float(np.abs(grad - my_grads[key]).max()) / scale
        if diff > grad_rel:
            grad_rel, worst = diff, key
    after = (_sgd_step(reference, GLUONCV_SGD, ours=False), _sgd_step(ours, GLUONCV_SGD, ours=True))
    step_abs = max(float(np.abs(after[0][k] - after[1][k]).max()) for k in after[0])
    return dict(losses=(theirs, mine), loss_rel=loss_rel, grad_rel=grad_rel, grad_worst=worst,
                step_abs=step_abs, num_grads=len(their_grads))
