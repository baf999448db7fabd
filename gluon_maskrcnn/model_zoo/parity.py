"""Compare our model with GluonCV's of the same name, on the same parameter file and input.

Used by ``tests/model_zoo/test_gluoncv_parity.py`` and ``scripts/compare_gluoncv.py``.
"""
import os
import tempfile

import mxnet as mx
import numpy as np
from mxnet import nd

from ..boxes import box_iou
from ..modeling.roi_align import with_batch_index
from ..modeling.rpn import _head_outputs

__all__ = ["gluoncv_model", "load_pair", "stage_differences", "match_detections", "random_image"]


def gluoncv_model(name, seed=0, image_shape=(128, 160), **kwargs):
    """GluonCV's model of ``name``, randomly initialised from ``seed`` (deferred init completed)."""
    import gluoncv

    mx.random.seed(seed)
    np.random.seed(seed)
    net = gluoncv.model_zoo.get_model(name, pretrained_base=False, **kwargs)
    net.initialize()
    net(nd.zeros((1, 3) + tuple(image_shape)))
    return net


def load_pair(name, seed=0, max_dets=1000, folder=None):
    """(GluonCV net, our net loaded strictly from GluonCV's saved file, the file's path)."""
    from . import get_model

    reference = gluoncv_model(name, seed)
    folder = folder or tempfile.mkdtemp(prefix="parity-")
    path = os.path.join(folder, name + ".params")
    reference.save_parameters(path)
    ours = get_model(name, pretrained=path, pretrained_base=False, max_dets=max_dets)
    return reference, ours, path


def random_image(height, width, seed=0):
    """A normalised-image-like input (1, 3, H, W)."""
    rng = np.random.RandomState(seed)
    return nd.array(rng.normal(0, 1, size=(1, 3, height, width)).astype(np.float32))


def _max_abs(a, b):
    return float(np.max(np.abs(a.asnumpy() - b.asnumpy()))) if a.size else 0.0


def _gluoncv_rpn_raw(rpn, feats):
    head = rpn.rpn_head if hasattr(rpn, "rpn_head") else rpn
    raw = [_head_outputs(head, f) for f in feats]
    return nd.concat(*[r[0] for r in raw], dim=1), nd.concat(*[r[1] for r in raw], dim=1)


def _gluoncv_pool(ref, feats, rois):
    """GluonCV's ROI pooling code, fed a sacrificial first ROI.

    MXNet's ROIAlign zeroes element n of row 0 for every skipped ROI n, which GluonCV's FPN
    pooling triggers; the extra first row absorbs those writes, so what is compared is
    GluonCV's arithmetic rather than that race.
    """
    padded = nd.concat(nd.zeros((1, 5)), rois, dim=0)
    if ref.num_stages > 1:
        pooled = ref._pyramid_roi_feats(nd, feats, padded, ref._roi_size, ref._strides,
                                        roi_mode=ref._roi_mode)
    else:
        pooled = nd.contrib.ROIAlign(feats[0], padded, ref._roi_size, 1.0 / ref._strides, sample_ratio=2)
    return pooled[1:]


def stage_differences(reference, ours, x):
    """Largest absolute difference per stage: features, RPN raw outputs, proposals, heads on the same ROIs."""
    diffs = {}
    ref_feats = reference.features(x)
    ref_feats = ref_feats if isinstance(ref_feats, (list, tuple)) else [ref_feats]
    our_feats = ours._features(x)
    diffs["features"] = max(_max_abs(a, b) for a, b in zip(ref_feats, our_feats))
    ref_score, ref_box = _gluoncv_rpn_raw(reference.rpn, ref_feats)
    levels = ours.rpn._levels(our_feats)
    diffs["rpn_scores"] = _max_abs(ref_score, nd.concat(*[lv[1] for lv in levels], dim=1))
    diffs["rpn_deltas"] = _max_abs(ref_box, nd.concat(*[lv[2] for lv in levels], dim=1))
    _, ref_rois = reference.rpn(nd.zeros_like(x), *ref_feats)
    _, our_rois = ours.rpn(nd.zeros_like(x), *our_feats)
    diffs["proposals"] = _max_abs(ref_rois, our_rois)
    # heads on GluonCV's ROIs
    rois5 = with_batch_index(nd, ref_rois)
    ref_top = _gluoncv_pool(reference, ref_feats, rois5)
    our_top = ours._pool(nd, our_feats, ref_rois)
    diffs["roi_features"] = _max_abs(ref_top, our_top)
    if reference.top_features is not None:
        ref_top = reference.top_features(ref_top)
    our_top, our_box = ours._head_features(nd, ref_top if reference.top_features is None else our_top)
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
