"""The box stage of the ROI heads: ROI sampling, box targets, pooling, box head, predictors.

Sampling follows GluonCV's semantics: the ground-truth boxes join the proposals; an ROI is
positive when its best IoU reaches ``pos_iou_thresh``; invalid proposals (score -1) are
ignored; the first ``max_pos`` slots take positives first (then negatives), the other
slots take negatives first (then left-over positives). Within each kind the order is random:
by random keys the caller gives for each image (the training loop draws them from the image's
own seed, so a sample does not depend on the device or worker that computes it), or by keys
drawn in the graph when none are given.

The first ``max_pos`` slots of each image are therefore its foreground slots (positives, or
negatives where an image has fewer): box regression, the mask head and the mask targets
work on those slots only. :func:`foreground` and :func:`foreground_rows` are the one place
that reads them.
"""
import mxnet as mx
from mxnet import autograd, gluon
from mxnet.gluon import nn

from .postprocess import detect
from .roi_align import with_batch_index

__all__ = ["RCNNTargetSampler", "RCNNTargetGenerator", "BoxROIHeads", "foreground",
           "foreground_rows", "row_offsets", "class_mapping", "copy_class_rows"]


def foreground(F, values, max_pos):
    """The foreground slots of sampled ROIs: (B, S, ...) -> (B, P, ...), P = ``max_pos``."""
    return F.slice_axis(values, axis=1, begin=0, end=max_pos)


def foreground_rows(F, flat, batch, num_sample, max_pos):
    """The foreground slots of ROI features flattened over images: (B*S, ...) -> (B*P, ...).

    ``slice`` and ``concat`` have oneDNN kernels; reshape and slice_axis would first copy a
    oneDNN-layout array (C4's res5 output is 51 MB per image).
    """
    parts = [flat.slice(begin=(b * num_sample,), end=(b * num_sample + max_pos,)) for b in range(batch)]
    return parts[0] if batch == 1 else F.concat(*parts, dim=0)


def row_offsets(F, values):
    """values (B, M, ...) -> (B, 1) holding b*M, the flat index of each image's first row."""
    first = values.reshape((0, 0, -1)).slice_axis(axis=2, begin=0, end=1).reshape((0, 0))  # (B, M)
    return F.contrib.arange_like(first).slice_axis(axis=1, begin=0, end=1)  # (B, 1)


def _gather_per_image(F, values, index):
    """values (B, M), index (B, S) -> (B, S) with ``values[b, index[b, s]]``."""
    flat_index = F.broadcast_add(index, row_offsets(F, values))  # (B, S)
    return F.take(values.reshape((-1,)), flat_index)


def _sample_one(F, roi, score, gt_box, keys, max_pos, num_sample, pos_iou):
    """Sample ``num_sample`` ROIs of one image with random ``keys`` (N + M_max,) in [0, 1).

    Returns (rois (S, 4), samples (S,), matches (S,)).
    """
    gt_valid = F.sign(F.sum(gt_box, axis=-1) + 1)  # (M,): +1 real box, -1 padding
    all_roi = F.concat(roi, gt_box, dim=0)  # (N + M, 4)
    all_valid = F.concat(score.reshape((-1,)), gt_valid, dim=0) >= 0  # (N + M,)
    ious = F.contrib.box_iou(all_roi, gt_box, format="corner")  # (N + M, M)
    best_iou = ious.max(axis=-1)
    matches = ious.argmax(axis=-1)
    positive = best_iou >= pos_iou
    negative = (1 - positive) * all_valid
    noise = F.slice_like(keys, best_iou)  # (N + M_max,) -> (N + M,)
    # first max_pos slots: positives, then negatives, then ignored (random within each)
    order = F.argsort(positive * 2 + negative + noise, is_ascend=False)
    head = F.slice_axis(order, axis=0, begin=0, end=max_pos)
    rest = F.slice_axis(order, axis=0, begin=max_pos, end=None)
    # remaining slots: negatives, then left-over positives, then ignored
    rest_key = F.take(negative * 2 + positive + noise, rest)
    tail = F.take(rest, F.slice_axis(F.argsort(rest_key, is_ascend=False), axis=0, begin=0,
                                     end=num_sample - max_pos))
    picked = F.concat(head, tail, dim=0)  # (S,)
    samples = F.take(positive, picked) - F.take(negative, picked)  # 1 pos, -1 neg, 0 ignored
    return F.take(all_roi, picked), samples, F.take(matches, picked)


class RCNNTargetSampler(gluon.HybridBlock):
    """Sample ``num_sample`` ROIs per image from the proposals and the ground truth.

    Forward ``(rois (B, N, 4), scores (B, N, 1), gt_boxes (B, M, 4)[, keys (B, K)])`` ->
    ``(rois (B, S, 4), samples (B, S) in {1, -1, 0}, matches (B, S) ground-truth index)``.
    Positives occupy the first ``max_pos`` slots. ``keys`` are uniform random numbers in [0, 1),
    ``K = key_count`` per image, that order the candidates within each kind; without them
    they are drawn in the graph.
    """

    def __init__(self, num_image, num_proposal, num_sample, pos_iou_thresh=0.5, pos_ratio=0.25,
                 max_num_gt=300, **kwargs):
        super().__init__(**kwargs)
        self.num_image = num_image
        self._num_proposal = num_proposal
        self.num_sample = num_sample
        self.max_pos = int(round(num_sample * pos_ratio))
        self._pos_iou = pos_iou_thresh
        self._max_num_gt = max_num_gt

    @property
    def pos_iou_thresh(self):
        """IoU with a ground-truth box at which a proposal is a positive."""
        return self._pos_iou

    @property
    def max_num_gt(self):
        """Ground-truth rows per image the sampler takes as candidates."""
        return self._max_num_gt

    @property
    def key_count(self):
        """Random keys per image: one for each proposal and each ground-truth row."""
        return self._num_proposal + self._max_num_gt

    def foreground(self, F, values):
        """This sampler's foreground slots: (B, S, ...) -> (B, P, ...)."""
        return foreground(F, values, self.max_pos)

    def foreground_rows(self, F, flat):
        """This sampler's foreground slots, flattened over images: (B*S, ...) -> (B*P, ...)."""
        return foreground_rows(F, flat, self.num_image, self.num_sample, self.max_pos)

    def hybrid_forward(self, F, rois, scores, gt_boxes, keys=None):
        with autograd.pause():
            if keys is None:
                keys = F.random.uniform(0, 1, shape=(self.num_image, self.key_count))
            per_image = []
            for i in range(self.num_image):
                pick = lambda t: F.squeeze(F.slice_axis(t, axis=0, begin=i, end=i + 1), axis=0)
                per_image.append(_sample_one(F, pick(rois), pick(scores), pick(gt_boxes), pick(keys),
                                             self.max_pos, self.num_sample, self._pos_iou))
            return tuple(F.stack(*parts, axis=0) for parts in zip(*per_image))


class RCNNTargetGenerator(gluon.HybridBlock):
    """Class targets for all sampled ROIs and class-specific box targets for the positives.

    Forward ``(rois (B, S, 4), samples (B, S), matches (B, S), gt_labels (B, M, 1),
    gt_boxes (B, M, 4))`` -> ``(cls_targets (B, S): class+1, 0 background, -1 ignored;
    box_targets (B, P, C, 4); box_masks (B, P, C, 4); indices (B, P))`` where P = ``max_pos``
    and ``indices`` are the sampled slots the box targets refer to (the first P).
    """

    def __init__(self, num_class, max_pos, means=(0.0, 0.0, 0.0, 0.0), stds=(0.1, 0.1, 0.2, 0.2),
                 **kwargs):
        super().__init__(**kwargs)
        self._num_class = num_class
        self._max_pos = max_pos
        self._means = means
        self._stds = stds

    def hybrid_forward(self, F, rois, samples, matches, gt_labels, gt_boxes):
        with autograd.pause():
            labels = _gather_per_image(F, gt_labels.reshape((0, -1)), matches)  # (B, M, 1) -> (B, S)
            cls_targets = F.where(samples > 0.5, labels + 1,
                                  F.where(samples < -0.5, F.zeros_like(labels), F.ones_like(labels) * -1))
            pos = lambda t: foreground(F, t, self._max_pos)
            means = F.concat(*[F.full((1,), m) for m in self._means], dim=0)  # (4,)
            stds = F.concat(*[F.full((1,), s) for s in self._stds], dim=0)  # (4,)
            targets, masks = F.contrib.box_encode(pos(samples), pos(matches), pos(rois), gt_boxes,
                                                  means, stds)
            class_range = F.arange(self._num_class).reshape((1, 1, -1))  # (1, 1, C)
            same_class = F.broadcast_equal(pos(labels).expand_dims(2), class_range)  # (B, P, C)
            box_targets = F.broadcast_axis(targets.expand_dims(2), axis=2, size=self._num_class)
            box_masks = F.broadcast_mul(masks.expand_dims(2), same_class.expand_dims(3))  # (B, P, C, 4)
            indices = F.contrib.arange_like(pos(samples), axis=1)  # (P,)
            indices = F.broadcast_like(indices.reshape((1, -1)), pos(samples))  # (P,) -> (B, P)
            return cls_targets, box_targets, box_masks, indices


class BoxROIHeads:
    """The box stage of Faster R-CNN, mixed into :class:`~gluon_maskrcnn.modeling.faster_rcnn.FasterRCNN`.

    Its blocks (``top_features``, ``box_features``, ``roi_pool``, ``class_predictor``,
    ``box_predictor``, ``sampler``, ``target_generator``) are attributes of the model itself,
    because GluonCV's parameter files name them at the top level (``class_predictor.weight``);
    a child block would rename every one of them. The model sets the first three, which the
    builder makes, and then calls :meth:`add_box_heads` inside its ``name_scope`` (this order
    of registration is the order of the parameters, which optimizer states follow).
    """

    def add_box_heads(self, *, per_device_batch_size, num_proposal, num_sample, pos_iou_thresh,
                      pos_ratio, max_num_gt, box_clip):
        """Add the predictors, the ROI sampler and the box targets; ``num_proposal``: the RPN's
        proposals per image in training."""
        self.box_clip = box_clip
        self.make_predictors(in_units=0)
        self.sampler = RCNNTargetSampler(per_device_batch_size, num_proposal, num_sample,
                                         pos_iou_thresh, pos_ratio, max_num_gt)
        self.target_generator = RCNNTargetGenerator(self.num_class, self.sampler.max_pos)

    def make_predictors(self, in_units):
        """(Re)create the class and box predictors for the current class list."""
        self.class_predictor = nn.Dense(self.num_class + 1, weight_initializer=mx.init.Normal(0.01),
                                        in_units=in_units, prefix="class_predictor_")
        self.box_predictor = nn.Dense(self.num_class * 4, weight_initializer=mx.init.Normal(0.001),
                                      in_units=in_units, prefix="box_predictor_")

    def pool_rois(self, F, feats, boxes):
        """ROIAlign features for boxes (B, N, 4) -> (B*N, C, R, R)."""
        return self.roi_pool(F.stop_gradient(with_batch_index(F, boxes)), *feats)

    def top(self, pooled):
        """Features the box and mask heads share (C4: res5 of the pooled ROIs; FPN: the pooled)."""
        return self.top_features(pooled) if self.top_features is not None else pooled

    def head_features(self, F, pooled):
        """(top features for the mask head, flat box features (K, D))."""
        top = self.top(pooled)
        if self.box_features is None:
            # global pooling stays in oneDNN's layout (AdaptiveAvgPooling2D reorders first)
            pooled = F.Pooling(top, global_pool=True, pool_type="avg", kernel=(1, 1))
            return top, F.flatten(pooled)
        return top, self.box_features(top)

    def box_inference(self, F, feats, rois, num_rois, nms):
        """Detections from the proposals rois (B, N, 4), N = ``num_rois``: (ids, scores, bboxes)
        after per-class NMS with the settings ``nms`` (see :func:`~gluon_maskrcnn.modeling.postprocess.detect`)."""
        _, box_feat = self.head_features(F, self.pool_rois(F, feats, rois))
        cls_pred = self.class_predictor(box_feat).reshape((-1, num_rois, self.num_class + 1))  # (B*N, C+1) -> (B, N, C+1)
        box_pred = self.box_predictor(box_feat).reshape((-1, num_rois, self.num_class, 4))  # (B*N, 4C) -> (B, N, C, 4)
        return detect(F, cls_pred, box_pred, rois, self.num_class, num_rois, clip=self.box_clip, **nms)

    def box_training(self, F, feats, rpn_rois, rpn_scores, gt_boxes, gt_labels, roi_keys=None):
        """Sample ROIs, score them all, regress the foreground slots, and make their targets.

        Returns a dict with ``rois, samples, matches`` (B, S, ...), ``cls_pred`` (B, S, C+1),
        ``box_pred`` (B, P, C, 4), the targets of :class:`RCNNTargetGenerator`, and
        ``top_feat`` (B*S, ...), the shared features of every sampled ROI.
        """
        batch = self.sampler.num_image
        keys = () if roi_keys is None else (roi_keys,)
        rois, samples, matches = self.sampler(rpn_rois, rpn_scores, gt_boxes, *keys)  # (B, S, ...)
        top_feat, box_feat = self.head_features(F, self.pool_rois(F, feats, rois))
        cls_pred = self.class_predictor(box_feat).reshape((batch, -1, self.num_class + 1))  # (B*S, C+1) -> (B, S, C+1)
        cls_targets, box_targets, box_masks, indices = self.target_generator(
            rois, samples, matches, gt_labels, gt_boxes)
        fg_feat = self.sampler.foreground_rows(F, box_feat)  # (B*P, D)
        box_pred = self.box_predictor(fg_feat).reshape((batch, -1, self.num_class, 4))  # (B*P, 4C) -> (B, P, C, 4)
        return dict(cls_pred=cls_pred, box_pred=box_pred, rois=rois, samples=samples,
                    matches=matches, cls_targets=cls_targets, box_targets=box_targets,
                    box_masks=box_masks, indices=indices, top_feat=top_feat)

    def reset_box_classes(self, classes, reuse_weights=None):
        """New predictors for ``classes``, keeping the rows of the classes that carry over;
        returns {new index: old index}."""
        mapping = class_mapping(self.classes, list(classes), reuse_weights)
        old = (self.class_predictor, self.box_predictor)
        self.classes = list(classes)
        with self.name_scope():
            self.make_predictors(old[0].weight.shape[1])
        ctx = old[0].weight.list_ctx()
        self.class_predictor.initialize(ctx=ctx)
        self.box_predictor.initialize(ctx=ctx)
        # background row 0 carries over; class k sits at row k+1 (scores) and rows 4k..4k+3 (boxes)
        copy_class_rows(old[0], self.class_predictor, {n + 1: o + 1 for n, o in mapping.items()} | {0: 0}, 1)
        copy_class_rows(old[1], self.box_predictor, mapping, 4)
        self.target_generator = RCNNTargetGenerator(self.num_class, self.sampler.max_pos)
        return mapping


def class_mapping(old_classes, new_classes, reuse_weights):
    """{new index: old index} of the classes whose weights carry over.

    ``reuse_weights``: None (every shared name), a list of shared names, or a dict
    ``{new: old}`` of names or indices.
    """
    if reuse_weights is None:
        reuse_weights = [c for c in new_classes if c in old_classes]
    if isinstance(reuse_weights, (list, tuple)):
        reuse_weights = {c: c for c in reuse_weights}
    mapping = {}
    for new, old in dict(reuse_weights).items():
        new_idx = new_classes.index(new) if isinstance(new, str) else int(new)
        old_idx = old_classes.index(old) if isinstance(old, str) else int(old)
        if not (0 <= new_idx < len(new_classes) and 0 <= old_idx < len(old_classes)):
            raise ValueError("cannot reuse class %r -> %r: index out of range" % (old, new))
        mapping[new_idx] = old_idx
    return mapping


def copy_class_rows(src, dst, mapping, rows_per_class):
    """Copy weight and bias rows of ``src`` classes into ``dst`` for {dst class: src class}."""
    for name in ("weight", "bias"):
        old = getattr(src, name).list_data()[0].asnumpy()  # data() would read the default device
        new = getattr(dst, name).list_data()[0].asnumpy()
        for new_idx, old_idx in mapping.items():
            n, o = new_idx * rows_per_class, old_idx * rows_per_class
            new[n:n + rows_per_class] = old[o:o + rows_per_class]
        getattr(dst, name).set_data(mx.nd.array(new))
