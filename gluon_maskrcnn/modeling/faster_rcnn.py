"""Faster R-CNN: backbone (+FPN), RPN, ROIAlign, box head, and in-graph RCNN targets.

The block wires components it is given; each stage lives in its own module. Attribute names
(``features``, ``top_features``, ``box_features``, ``class_predictor``, ``box_predictor``,
``rpn``) are GluonCV's, so that GluonCV's parameter files load strictly.
"""
import contextlib
from collections import namedtuple

import mxnet as mx
from mxnet import autograd, gluon

from .. import ops
from .roi_heads import BoxROIHeads
from .rpn import at_anchors
from .warmup import forward_once

__all__ = ["FasterRCNN"]


class FasterRCNN(BoxROIHeads, gluon.HybridBlock):
    """Faster R-CNN.

    Inference, ``net(x)`` with ``x`` of shape (B, 3, H, W), returns the namedtuple
    ``(ids, scores, bboxes)``: class ids (B, N, 1) (-1 past the real detections), scores
    (B, N, 1) and boxes (B, N, 4) as ``x1, y1, x2, y2`` in input pixels, N = ``max_dets``.

    Training, inside ``autograd.train_mode()``, ``net(x, gt_boxes, gt_labels)`` with
    ``gt_boxes`` (B, M, 4) and ``gt_labels`` (B, M, 1) (rows padded with -1) returns
    ``TRAIN_OUTPUTS`` in GluonCV's positional order, also readable by name.
    ``net(x, gt_boxes, gt_labels, rpn_anchor_ids)`` with the RPN-sampled anchors (B, S) (-1
    padding) returns ``raw_rpn_score`` (B, S, 1) and ``raw_rpn_box`` (B, S, 4) for those
    anchors only: the same values and gradients; hybridized, a much cheaper backward pass
    (see :meth:`~gluon_maskrcnn.modeling.rpn.RPN.sampled_forward`).
    A fifth input, ``roi_keys`` (B, K) with K = ``sampler.key_count``, gives the random keys of
    each image's ROI sampling (see :class:`~gluon_maskrcnn.modeling.roi_heads.RCNNTargetSampler`);
    without it they are drawn in the graph.

    Parameters
    ----------
    features : HybridBlock
        Image (B, 3, H, W) -> one feature map (C4) or a list of pyramid levels (FPN).
    top_features : HybridBlock or None
        Applied to pooled ROI features before the box head (C4: res5).
    box_features : HybridBlock or None
        Box head on (top) ROI features -> (K, D); None means global average pooling.
    classes : sequence of str
        Foreground class names.
    rpn : :class:`~gluon_maskrcnn.modeling.rpn.RPN`
    roi_pool : :class:`~gluon_maskrcnn.modeling.roi_align.MultiLevelROIAlign`
    per_device_batch_size : int
        Images per device in training (the sampler loops over them).
    num_sample, pos_iou_thresh, pos_ratio, max_num_gt :
        Second-stage ROI sampling.
    box_clip : float
        Cap on predicted log-size deltas.
    score_thresh, nms_thresh, nms_topk, force_nms :
        Per-class detection filtering and NMS.
    max_dets : int
        Detections returned per image (``rcnn_max_dets``), default 100.
    short, max_size : int
        Image resizing the model was trained with (read by the transforms and ``predict``).
    train_patterns : str or None
        Regex of the parameters to train (GluonCV's convention); None trains all.

    Attributes
    ----------
    fast_ops : bool
        Default True: on CPU inputs, pool ROIs and run the proposal NMS with the
        :mod:`gluon_maskrcnn.ops` extension operators (same values; parallel ROIAlign backward,
        NMS that stops at the proposals it keeps) when they are built. Set False for a
        graph made of MXNet's operators only (:func:`~gluon_maskrcnn.export.export_model`
        does so).
    """

    TRAIN_OUTPUTS = ("cls_pred", "box_pred", "rois", "samples", "matches", "raw_rpn_score",
                     "raw_rpn_box", "anchors", "cls_targets", "box_targets", "box_masks",
                     "indices")
    INFER_OUTPUTS = ("ids", "scores", "bboxes")

    def __init__(self, features, top_features, box_features, classes, *, rpn, roi_pool,
                 per_device_batch_size=1, num_sample=128, pos_iou_thresh=0.5, pos_ratio=0.25,
                 max_num_gt=300, box_clip=4.42, score_thresh=0.01, nms_thresh=0.5, nms_topk=-1,
                 max_dets=100, force_nms=False, short=800, max_size=1333, train_patterns=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.classes = list(classes)
        self.short, self.max_size = short, max_size
        self.train_patterns = train_patterns
        self.per_device_batch_size = per_device_batch_size
        self._nms = dict(score_thresh=score_thresh, nms_thresh=nms_thresh, nms_topk=nms_topk,
                         max_dets=max_dets, force_nms=force_nms)
        with self.name_scope():
            self.features = features
            self.top_features = top_features
            self.box_features = box_features
            self.rpn = rpn
            self.roi_pool = roi_pool
            self.add_box_heads(per_device_batch_size=per_device_batch_size,
                               num_proposal=rpn.train_post_nms, num_sample=num_sample,
                               pos_iou_thresh=pos_iou_thresh, pos_ratio=pos_ratio,
                               max_num_gt=max_num_gt, box_clip=box_clip)
        self._output_types = {}
        self.fast_ops = True

    # ----------------------------------------------------------------- configuration
    @property
    def num_class(self):
        return len(self.classes)

    @property
    def nms_thresh(self):
        """IoU of the per-class NMS (GluonCV's attribute; :meth:`set_nms` changes it)."""
        return self._nms["nms_thresh"]

    @property
    def nms_topk(self):
        """Boxes of each class that enter NMS, -1 for all (GluonCV's attribute)."""
        return self._nms["nms_topk"]

    @property
    def post_nms(self):
        """Detections asked for per image (GluonCV's attribute; ``rcnn_max_dets``)."""
        return self._nms["max_dets"]

    @property
    def force_nms(self):
        """Whether NMS also runs across classes."""
        return self._nms["force_nms"]

    @property
    def max_dets(self):
        """Detections per image: ``max_dets``, or all candidates when there are fewer."""
        return min(self._nms["max_dets"], self.num_class * self.rpn.test_post_nms)

    def retrace(self):
        """Drop the traced graph of a hybridized network: the next call traces it again (a graph
        is traced for one call signature, training or inference)."""
        self._clear_cached_op()

    def set_nms(self, nms_thresh=0.3, nms_topk=400, force_nms=False, post_nms=100, score_thresh=None,
                max_dets=None):
        """Change detection filtering, with GluonCV's signature and meaning: per-class NMS at
        IoU ``nms_thresh`` over the ``nms_topk`` best boxes of a class (-1: all), across classes
        with ``force_nms``, and the ``post_nms`` best detections returned. ``max_dets`` is our
        name for ``post_nms`` (it wins when given); ``score_thresh`` (default: unchanged) drops
        class scores at or below it. The next call traces the graph again."""
        self.retrace()
        self._nms = dict(score_thresh=self._nms["score_thresh"] if score_thresh is None else score_thresh,
                         nms_thresh=nms_thresh, nms_topk=nms_topk,
                         max_dets=post_nms if max_dets is None else max_dets, force_nms=force_nms)

    def collect_train_params(self, select=None):
        """Parameters to train: those matching ``select`` or the preset's ``train_patterns``."""
        pattern = select if select is not None else self.train_patterns
        return self.collect_params(pattern) if pattern else self.collect_params()

    def reset_class(self, classes, reuse_weights=None):
        """Switch to a new class list, keeping the weights of the classes that carry over.

        ``reuse_weights``: a list of class names present in both lists, or a dict
        ``{new: old}`` of names or indices. By default every shared name is kept.
        """
        self.retrace()
        return self.reset_box_classes(classes, reuse_weights)

    # ----------------------------------------------------------------- stages
    def backbone_features(self, x):
        """The backbone's output as a list: one map (C4) or the pyramid levels (FPN)."""
        feats = self.features(x)
        return list(feats) if isinstance(feats, (list, tuple)) else [feats]

    def _inference(self, F, x):
        """Stage outputs at inference: dict with feats, ids, scores, bboxes."""
        feats = self.backbone_features(x)
        _, rois = self.rpn(F.zeros_like(x), *feats)  # (B, N, 4)
        ids, scores, bboxes = self.box_inference(F, feats, rois, self.rpn.post_nms,
                                                 dict(self._nms, max_dets=self.max_dets))
        return dict(feats=feats, ids=ids, scores=scores, bboxes=bboxes)

    def _training(self, F, x, gt_boxes, gt_labels, rpn_anchor_ids=None, roi_keys=None):
        """Stage outputs in training: dict holding every name of ``TRAIN_OUTPUTS``, and more."""
        feats = self.backbone_features(x)
        if rpn_anchor_ids is not None and F is mx.sym:  # the head's backward on sampled anchors only
            rpn_out = self.rpn.sampled_forward(F, F.zeros_like(x), feats, rpn_anchor_ids)
        else:
            rpn_out = self.rpn(F.zeros_like(x), *feats)
        rpn_scores, rpn_rois, raw_score, raw_box, anchors = rpn_out
        if rpn_anchor_ids is not None and F is mx.nd:  # imperative: the dense head, read at the
            # sampled anchors (sampled_forward's imperative use of the head's weights broke
            # dist_sync's kvstore initialisation)
            raw_score, raw_box = (at_anchors(raw, rpn_anchor_ids) for raw in (raw_score, raw_box))
        stage = self.box_training(F, feats, rpn_rois, rpn_scores, gt_boxes, gt_labels, roi_keys)
        stage.update(raw_rpn_score=raw_score, raw_rpn_box=raw_box, anchors=anchors)
        return stage

    # ----------------------------------------------------------------- forward
    def hybrid_forward(self, F, x, gt_boxes=None, gt_labels=None, rpn_anchor_ids=None, roi_keys=None):
        if autograd.is_training():
            if gt_boxes is None or gt_labels is None:
                raise ValueError("training forward needs gt_boxes (B, M, 4) and gt_labels (B, M, 1)")
            stage = self._training(F, x, gt_boxes, gt_labels, rpn_anchor_ids, roi_keys)
            return tuple(stage[name] for name in self.TRAIN_OUTPUTS)
        stage = self._inference(F, x)
        return tuple(stage[name] for name in self.INFER_OUTPUTS)

    def _select_ops(self, x):
        """Use :mod:`gluon_maskrcnn.ops` for CPU inputs when allowed (``fast_ops``) and built;
        the graph is re-traced when the choice changes."""
        if not isinstance(x, mx.nd.NDArray):
            return
        fast = bool(self.fast_ops) and ops.available(x.context)
        if fast != self.roi_pool.fast or fast != self.rpn.fast:
            self.roi_pool.fast = self.rpn.fast = fast
            self.retrace()

    @contextlib.contextmanager
    def portable_ops(self):
        """Within the block, calls trace MXNet's own operators only (``fast_ops`` off)."""
        saved, self.fast_ops = self.fast_ops, False
        try:
            yield self
        finally:
            self.fast_ops = saved

    @property
    def traced_with_extension_ops(self):
        """Whether the graph last traced uses :mod:`gluon_maskrcnn.ops` (see ``fast_ops``)."""
        return bool(self.roi_pool.fast or self.rpn.fast)

    def export(self, path, epoch=0, remove_amp_cast=True, portable=True):
        """MXNet's export. Needs a hybridized block that has run once.

        With ``portable`` (the default) the graph is made of MXNet's own operators (see
        ``fast_ops``), so that it loads wherever MXNet does; otherwise it is the graph last
        traced, with :mod:`gluon_maskrcnn.ops`'s operators if ``traced_with_extension_ops``.
        """
        if not portable:
            return super().export(path, epoch, remove_amp_cast=remove_amp_cast)
        with self.portable_ops():
            if self.roi_pool.fast or self.rpn.fast:  # traced with the extension operators:
                forward_once(self)  # re-trace (the graph fits any size)
            return super().export(path, epoch, remove_amp_cast=remove_amp_cast)

    def __call__(self, *args, **kwargs):
        self._select_ops(args[0] if args else kwargs.get("x"))
        outputs = super().__call__(*args, **kwargs)
        names = self.TRAIN_OUTPUTS if autograd.is_training() else self.INFER_OUTPUTS
        if isinstance(outputs, (list, tuple)) and len(outputs) == len(names):
            return self._named(names)(*outputs)
        return outputs

    def _named(self, names):
        if names not in self._output_types:
            prefix = "TrainOutputs" if names is self.TRAIN_OUTPUTS else "Detections"
            self._output_types[names] = namedtuple(prefix, names)
        return self._output_types[names]

