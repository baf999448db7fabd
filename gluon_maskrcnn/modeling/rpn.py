"""Region Proposal Network: head, proposal decoding, and NMS over all levels."""
import mxnet as mx
from mxnet import autograd, gluon
from mxnet.gluon import nn

from .anchors import AnchorGenerator

__all__ = ["RPNHead", "RPN", "decode_proposals"]


def _add_head_layers(block, channels, num_anchors):
    """Give ``block`` GluonCV's RPN head layers: ``conv1`` (3x3 + ReLU), ``score``, ``loc``."""
    init = mx.init.Normal(0.01)
    block.conv1 = nn.HybridSequential()
    block.conv1.add(nn.Conv2D(channels, 3, 1, 1, weight_initializer=init), nn.Activation("relu"))
    block.score = nn.Conv2D(num_anchors, 1, 1, 0, weight_initializer=init)
    block.loc = nn.Conv2D(num_anchors * 4, 1, 1, 0, weight_initializer=init)


def _head_outputs(block, x):
    """Raw objectness logits (B, h*w*A, 1) and box deltas (B, h*w*A, 4) of one level."""
    x = block.conv1(x)
    score = block.score(x).transpose((0, 2, 3, 1)).reshape((0, -1, 1))  # (B, A, h, w) -> (B, h*w*A, 1)
    loc = block.loc(x).transpose((0, 2, 3, 1)).reshape((0, -1, 4))  # (B, 4A, h, w) -> (B, h*w*A, 4)
    return score, loc


class RPNHead(gluon.HybridBlock):
    """The RPN head shared by all FPN levels: feature -> (raw scores, raw box deltas)."""

    def __init__(self, channels, num_anchors, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            _add_head_layers(self, channels, num_anchors)

    def hybrid_forward(self, F, x):
        return _head_outputs(self, x)


# Proposals are ranked by their objectness logit, not its sigmoid: in float32 the sigmoid of
# confident anchors saturates into exact ties, and MXNet's sort breaks ties differently from run
# to run (with thread timing), which made NMS keep different boxes. Logits rarely tie.
_INVALID = -1e30


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
    def post_nms(self):
        """Number of proposals returned per image in the current mode."""
        return self._train[1] if autograd.is_training() else self._test[1]

    def _levels(self, feats):
        """(anchors, raw scores, raw deltas) of each level."""
        if not self.multi_level:
            score, loc = _head_outputs(self, feats[0])
            return [(self.anchor_generator(feats[0]), score, loc)]
        return [(gen(feat),) + tuple(self.rpn_head(feat))
                for gen, feat in zip(self.anchor_generator, feats)]

    def hybrid_forward(self, F, img, *feats):
        pre_nms, post_nms = self._train if autograd.is_training() else self._test
        levels = self._levels(feats)
        with autograd.pause():
            proposals = [decode_proposals(F, anchors, F.stop_gradient(score), F.stop_gradient(loc),
                                          img, self._clip, self._min_size)
                         for anchors, score, loc in levels]
            proposals = F.concat(*proposals, _invalid_rows(F, proposals[0], post_nms), dim=1)  # (B, N+P, 5)
            kept = F.contrib.box_nms(proposals, overlap_thresh=self._nms_thresh, topk=pre_nms,
                                     valid_thresh=0.5 * _INVALID, coord_start=1, score_index=0,
                                     id_index=-1, force_suppress=True)
            kept = F.slice_axis(kept, axis=1, begin=0, end=post_nms)  # (B, post_nms, 5)
            logits = F.slice_axis(kept, axis=-1, begin=0, end=1)
            rois = F.slice_axis(kept, axis=-1, begin=1, end=None)
            # rows NMS dropped, and invalid boxes, are all -1; kept boxes are clipped to >= 0
            kept_box = F.slice_axis(rois, axis=-1, begin=0, end=1) >= 0
            scores = F.where(kept_box, F.sigmoid(logits), F.ones_like(logits) * -1)
        if not autograd.is_training():
            return scores, rois
        raw_scores = F.concat(*[lv[1] for lv in levels], dim=1)
        raw_deltas = F.concat(*[lv[2] for lv in levels], dim=1)
        anchors = F.concat(*[lv[0] for lv in levels], dim=1)
        return scores, rois, raw_scores, raw_deltas, anchors
