"""Region Proposal Network: head, proposal decoding, and NMS over all levels."""
import mxnet as mx
from mxnet import autograd, gluon
from mxnet.gluon import nn

from .anchors import AnchorGenerator

__all__ = ["RPNHead", "RPN", "decode_proposals", "at_anchors", "head_outputs", "ranking_keys", "VALID_KEY"]


def _add_head_layers(block, channels, num_anchors):
    """Give ``block`` GluonCV's RPN head layers: ``conv1`` (3x3 + ReLU), ``score``, ``loc``."""
    init = mx.init.Normal(0.01)
    block.conv1 = nn.HybridSequential()
    block.conv1.add(nn.Conv2D(channels, 3, 1, 1, weight_initializer=init), nn.Activation("relu"))
    block.score = nn.Conv2D(num_anchors, 1, 1, 0, weight_initializer=init)
    block.loc = nn.Conv2D(num_anchors * 4, 1, 1, 0, weight_initializer=init)


def head_outputs(block, x):
    """Raw objectness logits (B, h*w*A, 1) and box deltas (B, h*w*A, 4) of one level."""
    x = block.conv1(x)
    return _per_anchor(block.score(x), block.loc(x))


def _per_anchor(score, loc):
    """Head maps as rows per anchor: (B, A, h, w), (B, 4A, h, w) -> (B, h*w*A, 1), (B, h*w*A, 4)."""
    return (score.transpose((0, 2, 3, 1)).reshape((0, -1, 1)),  # (B, A, h, w) -> (B, h*w*A, 1)
            loc.transpose((0, 2, 3, 1)).reshape((0, -1, 4)))  # (B, 4A, h, w) -> (B, h*w*A, 4)


class RPNHead(gluon.HybridBlock):
    """The RPN head shared by all FPN levels: feature -> (raw scores, raw box deltas)."""

    def __init__(self, channels, num_anchors, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            _add_head_layers(self, channels, num_anchors)

    def hybrid_forward(self, F, x):
        return head_outputs(self, x)


# Proposals are ranked by their objectness logit, not its sigmoid: in float32 the sigmoid of
# confident anchors saturates into exact ties, and MXNet's sort breaks ties differently from run
# to run (with thread timing), which made NMS keep different boxes. Logits rarely tie.
_INVALID = -1e30
# What NMS ranks by is the logit shifted by the image's lowest valid logit, so that every valid
# row scores >= 0: MXNet 1.9.1's GPU box_nms, on the path a traced graph takes (its second
# output unused), drops every row whose score is below 0 after suppression (CompactDataKernel
# in src/operator/contrib/bounding_box.cu), where the CPU kernel keeps every row above
# valid_thresh. Invalid rows score -1, below VALID_KEY on both.
VALID_KEY = -0.5


def ranking_keys(F, logits):
    """NMS scores of proposals: logits (B, N, 1), invalid rows at -1e30 -> (keys (B, N, 1),
    shift (B, 1, 1)).

    ``key = logit - lowest valid logit of the image`` is >= 0 and in the logits' order (a
    rounded difference never reverses an order; two logits closer than the key's float32
    spacing, at most twice the logits' own, would tie); invalid rows get -1. ``key + shift``
    gives the logit back to within that rounding.
    """
    valid = logits > 0.5 * _INVALID
    # topk rather than min: MXNet's exporter checks the ONNX graph against the newest opset,
    # whose ReduceMin no longer takes the axes attribute that its opset-13 translation writes
    lowest = F.topk(F.where(valid, logits, F.ones_like(logits) * -_INVALID), axis=1, k=1, ret_typ="value",
                    is_ascend=True)  # (B, N, 1) -> (B, 1, 1)
    keys = F.where(valid, F.broadcast_sub(logits, lowest), F.ones_like(logits) * -1)
    return keys, lowest


def decode_proposals(F, anchors, logits, deltas, img, clip, min_size):
    """Decode deltas on anchors, clip to the image, and invalidate boxes under ``min_size``.

    anchors (1, N, 4), logits (B, N, 1), deltas (B, N, 4), img (B, 3, H, W).
    Returns (B, N, 5) rows ``[logit, x1, y1, x2, y2]``; invalid rows are
    ``[-1e30, -1, -1, -1, -1]``.
    """
    boxes = F.contrib.box_decode(deltas, anchors, 1.0, 1.0, 1.0, 1.0, clip=clip, format="corner")
    hw = F.shape_array(img).slice_axis(axis=0, begin=2, end=None)  # (2,) = [H, W]
    whwh = F.tile(F.reverse(hw, axis=0), reps=(2,)).reshape((1, 1, 4))  # (4,) -> (1, 1, 4)
    boxes = F.broadcast_minimum(F.maximum(boxes, 0.0), F.cast(whwh, "float32"))
    x1, y1, x2, y2 = F.split(boxes, axis=-1, num_outputs=4)
    too_small = ((x2 - x1 + 1.0) < min_size) + ((y2 - y1 + 1.0) < min_size)  # (B, N, 1)
    logits = F.where(too_small, F.ones_like(logits) * _INVALID, logits)
    too_small4 = F.broadcast_axis(too_small, axis=2, size=4)  # (B, N, 1) -> (B, N, 4)
    boxes = F.where(too_small4, F.ones_like(boxes) * -1, boxes)
    return F.concat(logits, boxes, dim=-1)


def _invalid_rows(F, like, count):
    """(B, count, 5) invalid proposals, so that small images still yield ``count`` rows."""
    column = F.ones_like(F.slice_axis(like, axis=1, begin=0, end=1).slice_axis(axis=2, begin=0, end=1))
    column = F.broadcast_axis(column, axis=1, size=count)  # (B, 1, 1) -> (B, count, 1)
    return F.concat(column * _INVALID, F.broadcast_axis(column * -1, axis=2, size=4), dim=-1)


class RPN(gluon.HybridBlock):
    """Region proposal network over one (C4) or several (FPN) feature levels.

    ``rpn(img, *feats)`` at inference returns ``(scores, rois)``: (B, P, 1) and (B, P, 4), P
    proposals per image. In training it returns ``(scores, rois, raw_scores, raw_deltas,
    anchors)``: the same two, then the head's outputs (B, N, 1) and (B, N, 4) and the anchors
    (1, N, 4), for the N anchors of all levels.

    Parameters
    ----------
    channels : int
        Channels of the 3x3 head conv (1024 in GluonCV's presets).
    strides, sizes : sequence
        Per level: feature stride, and the anchor sizes in pixels of that level.
    ratios : sequence of float
        Anchor aspect ratios.
    alloc_size : (int, int)
        Anchor map allocated for the first level; each next level halves it (at least 16).
    clip : float
        Cap on log-size deltas before exp.
    nms_thresh : float
        IoU threshold of the proposal NMS.
    train_pre_nms, train_post_nms, test_pre_nms, test_post_nms : int
        Proposals kept before and after NMS (all levels together).
    min_size : float
        Proposals narrower or shorter than this (``x2 - x1 + 1``) are discarded.

    """

    def __init__(self, channels, strides, sizes, ratios, alloc_size, clip, nms_thresh=0.7,
                 train_pre_nms=12000, train_post_nms=2000, test_pre_nms=6000, test_post_nms=1000,
                 min_size=1, **kwargs):
        super().__init__(**kwargs)
        self.multi_level = len(strides) > 1
        self._clip = clip
        self._min_size = min_size
        self._nms_thresh = nms_thresh
        self._train = (max(1, train_pre_nms), max(1, min(train_post_nms, train_pre_nms)))
        self._test = (max(1, test_pre_nms), max(1, min(test_post_nms, test_pre_nms)))
        self.fast = False  # NMS with gluon_maskrcnn.ops (the model sets it, as for ROIAlign)
        num_anchors = len(sizes[0]) * len(ratios)
        with self.name_scope():
            if self.multi_level:
                self.anchor_generator = nn.HybridSequential()
                size = alloc_size
                for stride, level_sizes in zip(strides, sizes):
                    self.anchor_generator.add(AnchorGenerator(stride, level_sizes, ratios, size))
                    size = (max(size[0] // 2, 16), max(size[1] // 2, 16))
                self.rpn_head = RPNHead(channels, num_anchors)
            else:
                self.anchor_generator = AnchorGenerator(strides[0], sizes[0], ratios, alloc_size)
                _add_head_layers(self, channels, num_anchors)  # GluonCV keeps C4 head layers here

    @property
    def head(self):
        """The block holding conv1, score and loc: the head shared by the FPN levels, or the RPN
        itself for C4 (where GluonCV keeps them)."""
        return self.rpn_head if self.multi_level else self

    @property
    def nms_thresh(self):
        """IoU of the proposals' NMS."""
        return self._nms_thresh

    @property
    def min_size(self):
        """Proposals narrower or shorter than this (input pixels) are dropped."""
        return self._min_size

    @property
    def clip(self):
        """Largest log-scale a box delta may apply."""
        return self._clip

    @property
    def train_pre_nms(self):
        """Proposals per image that enter NMS in training."""
        return self._train[0]

    @property
    def test_pre_nms(self):
        """Proposals per image that enter NMS at inference."""
        return self._test[0]

    @property
    def train_post_nms(self):
        """Proposals returned per image in training."""
        return self._train[1]

    @property
    def test_post_nms(self):
        """Proposals returned per image at inference."""
        return self._test[1]

    @property
    def post_nms(self):
        """Number of proposals returned per image in the current mode."""
        return self.train_post_nms if autograd.is_training() else self.test_post_nms

    def head_levels(self, feats):
        """(anchors, raw scores, raw deltas) of each level."""
        if not self.multi_level:
            score, loc = head_outputs(self, feats[0])
            return [(self.anchor_generator(feats[0]), score, loc)]
        return [(gen(feat),) + tuple(self.rpn_head(feat))
                for gen, feat in zip(self.anchor_generator, feats)]

    def hybrid_forward(self, F, img, *feats):
        levels = self.head_levels(feats)
        scores, rois = self._propose(F, img, levels)
        if not autograd.is_training():
            return scores, rois
        raw_scores = F.concat(*[lv[1] for lv in levels], dim=1)
        raw_deltas = F.concat(*[lv[2] for lv in levels], dim=1)
        anchors = F.concat(*[lv[0] for lv in levels], dim=1)
        return scores, rois, raw_scores, raw_deltas, anchors

    def _propose(self, F, img, levels):
        """Decode, NMS over all levels, keep the top: scores (B, P, 1), rois (B, P, 4)."""
        pre_nms, post_nms = self._train if autograd.is_training() else self._test
        with autograd.pause():
            proposals = [decode_proposals(F, anchors, F.stop_gradient(score), F.stop_gradient(loc),
                                          img, self._clip, self._min_size)
                         for anchors, score, loc in levels]
            proposals = F.concat(*proposals, _invalid_rows(F, proposals[0], post_nms), dim=1)  # (B, N+P, 5)
            keys, shift = ranking_keys(F, F.slice_axis(proposals, axis=-1, begin=0, end=1))
            proposals = F.concat(keys, F.slice_axis(proposals, axis=-1, begin=1, end=None), dim=-1)
            if self.fast:  # same rows, stops once post_nms boxes are kept
                kept = F.gm_proposal_nms(F.stop_gradient(proposals), overlap_thresh=self._nms_thresh,
                                         topk=pre_nms, valid_thresh=VALID_KEY, keep=post_nms)
            else:
                kept = F.contrib.box_nms(proposals, overlap_thresh=self._nms_thresh, topk=pre_nms,
                                         valid_thresh=VALID_KEY, coord_start=1, score_index=0,
                                         id_index=-1, force_suppress=True)
                kept = F.slice_axis(kept, axis=1, begin=0, end=post_nms)  # (B, post_nms, 5)
            logits = F.broadcast_add(F.slice_axis(kept, axis=-1, begin=0, end=1), shift)
            rois = F.slice_axis(kept, axis=-1, begin=1, end=None)
            # rows NMS dropped, and invalid boxes, are all -1; kept boxes are clipped to >= 0
            kept_box = F.slice_axis(rois, axis=-1, begin=0, end=1) >= 0
            scores = F.where(kept_box, F.sigmoid(logits), F.ones_like(logits) * -1)
        return scores, rois

    def sampled_forward(self, F, img, feats, anchor_ids, ctx=None):
        """Training forward whose raw outputs are the sampled anchors' only.

        Returns ``(scores, rois, raw_scores (B, S, 1), raw_deltas (B, S, 4), anchors)``: the
        proposals are those of :meth:`hybrid_forward` (the dense head runs on
        gradient-stopped features and weights, so no backward pass is built for it), and the
        raw outputs are the head evaluated on the gathered 3x3 patches of the sampled anchors
        (``anchor_ids`` (B, S) in :meth:`hybrid_forward`'s anchor order, -1 padding), so the
        backward pass costs S patches instead of a full convolution backward at every level.
        Same loss, same gradients: the RPN loss has zero gradient at the anchors it does not
        sample. ``ctx``: device of the
        parameters when ``F`` is ``mx.nd``.
        """
        head = self.head
        channels, num_anchors = head.conv1[0].weight.shape[0], head.score.weight.shape[0]
        weights = _head_params(F, head, ctx, feats[-1])
        frozen = [F.stop_gradient(w) for w in weights]
        generators = self.anchor_generator if self.multi_level else [self.anchor_generator]
        levels = []
        for gen, feat in zip(generators, feats):
            feat = F.stop_gradient(feat)
            levels.append((gen(feat),) + _dense_head(F, feat, channels, num_anchors, *frozen))
        scores, rois = self._propose(F, img, levels)
        raw_scores, raw_deltas = _sampled_head(F, list(feats), anchor_ids, num_anchors, channels,
                                               *weights)
        anchors = F.concat(*[lv[0] for lv in levels], dim=1)
        return scores, rois, raw_scores, raw_deltas, anchors


def _dense_head(F, feat, channels, num_anchors, conv_w, conv_b, score_w, score_b, loc_w, loc_b):
    """The head from explicit weights: (B, h*w*A, 1) logits and (B, h*w*A, 4) deltas."""
    hidden = F.Activation(F.Convolution(feat, conv_w, conv_b, kernel=(3, 3), pad=(1, 1),
                                        num_filter=channels), act_type="relu")
    return _per_anchor(F.Convolution(hidden, score_w, score_b, kernel=(1, 1), num_filter=num_anchors),
                       F.Convolution(hidden, loc_w, loc_b, kernel=(1, 1), num_filter=4 * num_anchors))


def at_anchors(raw, anchor_ids):
    """Rows of dense head outputs at given anchors (NDArrays): (B, N, k), (B, S) -> (B, S, k).

    Padding ids (-1) read anchor 0 (the loss gives them no weight).
    """
    batch, num_anchors = raw.shape[:2]
    offsets = mx.nd.arange(batch, ctx=raw.context).reshape((-1, 1)) * num_anchors  # (B, 1)
    rows = mx.nd.broadcast_add(mx.nd.maximum(anchor_ids, 0), offsets).reshape((-1,))  # (B*S,)
    picked = mx.nd.take(raw.reshape((-3, 0)), rows)  # (B, N, k) -> (B*N, k) -> (B*S, k)
    return picked.reshape((batch, -1, raw.shape[2]))  # (B*S, k) -> (B, S, k)


def _head_params(F, head, ctx, feat=None):
    """(weight, bias) of the head's conv1, score and loc: graph variables when tracing.

    Imperatively, parameters still waiting for their shapes are initialised by running the
    head once on ``feat``.
    """
    layers = (head.conv1[0], head.score, head.loc)
    if F is mx.nd and feat is not None and any(0 in layer.weight.shape for layer in layers):
        with autograd.pause():
            head_outputs(head, F.stop_gradient(feat))
    value = (lambda p: p.var()) if F is mx.sym else (lambda p: p.data(ctx))
    return [value(p) for layer in layers for p in (layer.weight, layer.bias)]


def _patch_rows(F, feats, anchor_ids, num_anchors):
    """Rows of the 9 taps of each sampled anchor's cell, in the table of :func:`_patch_table`.

    anchor_ids (B, S) -> (rows (B, S, 9), anchor index within the cell (B, S)). Padding ids
    (-1) point at a zero row (level 0's top-left padding cell) with anchor 0.
    """
    batch = F.contrib.arange_like(anchor_ids, axis=0).reshape((-1, 1))  # (B,) -> (B, 1)
    center = F.zeros_like(anchor_ids)
    anchor = F.zeros_like(anchor_ids)
    width = F.ones_like(anchor_ids)  # padded row length of the sample's level
    first_anchor = F.zeros((1,))
    first_row = F.zeros((1,))
    for feat in feats:
        size = F.cast(F.shape_array(feat), "float32")  # (4,) = [B, C, H, W]
        num_images = F.slice_axis(size, axis=0, begin=0, end=1)
        h = F.slice_axis(size, axis=0, begin=2, end=3)
        w = F.slice_axis(size, axis=0, begin=3, end=4)
        count = h * w * num_anchors  # anchors per image on this level
        local = F.broadcast_sub(anchor_ids, first_anchor)  # (B, S)
        inside = F.broadcast_logical_and(local >= 0, F.broadcast_lesser(local, count))
        cell = F.floor(local / num_anchors)
        y = F.floor(F.broadcast_div(cell, w))
        x = cell - F.broadcast_mul(y, w)
        padded_w = w + 2
        plane = (h + 2) * padded_w  # rows per image in the table
        image_start = F.broadcast_add(F.broadcast_mul(batch, plane), first_row)  # (B, 1)
        row = F.broadcast_add(image_start, F.broadcast_mul(y + 1, padded_w) + x + 1)  # (B, S)
        center = F.where(inside, row, center)
        anchor = F.where(inside, local - cell * num_anchors, anchor)
        width = F.where(inside, F.broadcast_like(padded_w.reshape((1, 1)), anchor_ids), width)
        first_anchor = first_anchor + count
        first_row = first_row + num_images * plane
    tap = F.arange(9)  # (9,) as (ky, kx) row-major
    dy = F.floor(tap / 3) - 1
    dx = tap - 3 * F.floor(tap / 3) - 1
    offsets = F.broadcast_add(F.broadcast_mul(width.expand_dims(-1), dy.reshape((1, 1, 9))),
                              dx.reshape((1, 1, 9)))  # (B, S, 9)
    rows = F.broadcast_add(center.expand_dims(-1), offsets)
    return rows, anchor


def _patch_table(F, feats):
    """All levels, zero-padded by one cell, as one (rows, C) table of per-pixel channel vectors."""
    tables = []
    for feat in feats:
        padded = F.pad(feat, mode="constant", pad_width=(0, 0, 0, 0, 1, 1, 1, 1), constant_value=0)
        rows = padded.transpose((0, 2, 3, 1))  # (B, C, H+2, W+2) -> (B, H+2, W+2, C)
        tables.append(rows.reshape((-1, 0), reverse=True))  # -> (B*(H+2)*(W+2), C)
    return F.concat(*tables, dim=0) if len(tables) > 1 else tables[0]


def _sampled_head(F, feats, anchor_ids, num_anchors, channels, conv_w, conv_b, score_w, score_b,
                  loc_w, loc_b):
    """The RPN head (3x3 conv + ReLU, 1x1 score and loc) evaluated at the sampled anchors."""
    rows, anchor = _patch_rows(F, feats, anchor_ids, num_anchors)
    patches = F.take(_patch_table(F, feats), rows.reshape((-1,)))  # (B*S*9, C)
    patches = patches.reshape((-1, 9, 0), reverse=True).reshape((0, -1))  # (B*S*9, C) -> (B*S, 9*C), tap-major
    kernel = conv_w.transpose((0, 2, 3, 1)).reshape((0, -1))  # (O, C, 3, 3) -> (O, 9*C), tap-major
    hidden = F.Activation(F.FullyConnected(patches, kernel, conv_b, num_hidden=channels),
                          act_type="relu")  # (B*S, O)
    scores = F.FullyConnected(hidden, F.Flatten(score_w), score_b,
                              num_hidden=num_anchors)  # (A, O, 1, 1) -> (A, O); out (B*S, A)
    deltas = F.FullyConnected(hidden, F.Flatten(loc_w), loc_b,
                              num_hidden=4 * num_anchors)  # (4A, O, 1, 1) -> (4A, O); out (B*S, 4A)
    flat_anchor = anchor.reshape((-1,))  # (B, S) -> (B*S,)
    pick = F.contrib.arange_like(flat_anchor) * num_anchors + flat_anchor  # (B*S,) rows of (B*S*A, .)
    score = F.take(scores.reshape((-1, 1)), pick)  # (B*S, A) -> (B*S*A, 1) -> (B*S, 1)
    delta = F.take(deltas.reshape((-1, 4)), pick)  # (B*S, 4A) -> (B*S*A, 4) -> (B*S, 4)
    return tuple(F.reshape_like(t, anchor_ids, lhs_begin=0, lhs_end=1, rhs_begin=0, rhs_end=2)
                 for t in (score, delta))  # (B*S, k) -> (B, S, k)
