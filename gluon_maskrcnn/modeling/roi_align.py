"""ROIAlign over one feature map (C4) or over FPN levels chosen by ROI size."""
from mxnet import gluon

__all__ = ["roi_levels", "MultiLevelROIAlign", "with_batch_index"]


def with_batch_index(F, boxes):
    """(B, N, 4) boxes -> (B*N, 5) ROIs ``[batch_index, x1, y1, x2, y2]``."""
    batch_ids = F.contrib.arange_like(boxes, axis=0)  # (B,)
    batch_ids = F.broadcast_like(batch_ids.reshape((-1, 1, 1)),
                                 boxes.slice_axis(axis=-1, begin=0, end=1))  # (B,) -> (B, N, 1)
    rois = F.concat(batch_ids, boxes, dim=-1)  # (B, N, 5)
    return rois.reshape((-1, 5))  # (B, N, 5) -> (B*N, 5)


def roi_levels(F, rois, min_level, max_level, canonical_scale=224.0, canonical_level=4, eps=1e-6):
    """FPN level of each ROI: ``floor(4 + log2(sqrt(w*h) / 224))`` clipped to the levels.

    rois (K, 5) -> (K,) float levels. Sizes use ``x2 - x1 + 1`` as in GluonCV.
    """
    _, x1, y1, x2, y2 = F.split(rois, axis=-1, num_outputs=5)
    scale = F.sqrt((x2 - x1 + 1) * (y2 - y1 + 1))
    level = F.floor(canonical_level + F.log2(scale / canonical_scale + eps))
    return F.clip(level, min_level, max_level).reshape((-1,))  # (K, 1) -> (K,)


class MultiLevelROIAlign(gluon.HybridBlock):
    """ROIAlign each ROI on its own level only.

    Forward ``(rois (K, 5), *feats)`` -> (K, C, roi_h, roi_w).

    With ``fast`` set (the model sets it for CPU inputs when :mod:`gluon_maskrcnn.ops` is
    available) all levels are pooled by one extension operator whose forward equals
    ``contrib.ROIAlign`` bit for bit and whose backward runs in parallel. Otherwise each level
    is pooled by ``contrib.ROIAlign``, other levels' ROIs given batch index -1.

    MXNet 1.9's CPU ROIAlign has two flaws with skipped ROIs (batch index -1), both worked
    around here: it leaves their output rows unwritten (stale memory in a hybridized graph),
    so they are selected away, never summed; and it zeroes flat element ``n`` of the *whole*
    output for skipped ROI ``n`` -- inside ROI 0's row, racing with the thread computing it --
    so a sacrificial ROI takes row 0 (valid while K < C*roi_h*roi_w).

    Parameters
    ----------
    roi_size : (int, int)
        Output size.
    strides : sequence of int
        Strides of the pooled levels (the first ``len(strides)`` feature maps are used).
    min_level : int
        Pyramid level of the first stride (2 for P2).
    sample_ratio : int
        Bilinear samples per bin side.
    """

    def __init__(self, roi_size, strides, min_level=2, sample_ratio=2, **kwargs):
        super().__init__(**kwargs)
        self._roi_size = tuple(roi_size)
        self._strides = tuple(strides)
        self._min_level = min_level
        self._sample_ratio = sample_ratio
        self.fast = False

    @property
    def roi_size(self):
        """(roi_h, roi_w) of the pooled features."""
        return self._roi_size

    @property
    def strides(self):
        """The strides of the pooled levels."""
        return self._strides

    def hybrid_forward(self, F, rois, *feats):
        feats = feats[:len(self._strides)]
        if self.fast:
            return self._pool_fused(F, rois, feats)
        if len(self._strides) == 1:
            return F.contrib.ROIAlign(feats[0], rois, self._roi_size, 1.0 / self._strides[0],
                                      sample_ratio=self._sample_ratio)
        max_level = self._min_level + len(self._strides) - 1
        levels = roi_levels(F, rois, self._min_level, max_level)  # (K,)
        sacrificial = F.zeros_like(F.slice_axis(rois, axis=0, begin=0, end=1))  # (1, 5)
        padded_levels = F.concat(F.zeros_like(F.slice_axis(levels, axis=0, begin=0, end=1)), levels, dim=0)
        merged = None
        for i in range(len(self._strides) - 1, -1, -1):  # top level first
            level_rois = F.where(levels == self._min_level + i, rois, F.ones_like(rois) * -1)
            level_rois = F.concat(sacrificial, level_rois, dim=0)  # (K+1, 5): row 0 is sacrificial
            pooled = F.contrib.ROIAlign(feats[i], level_rois, self._roi_size, 1.0 / self._strides[i],
                                        sample_ratio=self._sample_ratio)  # (K+1, C, R, R)
            # rows of other levels are unwritten (stale memory when hybridized): select, never sum.
            # `merged` is the first data input so that, in graph order, the levels above are
            # pooled and merged before this level's buffer is allocated.
            merged = pooled if merged is None else F.where(padded_levels != self._min_level + i, merged, pooled)
        return F.slice_axis(merged, axis=0, begin=1, end=None)  # (K+1, ...) -> (K, ...)

    def _pool_fused(self, F, rois, feats):
        if len(feats) == 1:
            levels = F.zeros_like(rois.slice_axis(axis=1, begin=0, end=1)).reshape((-1,))  # (K, 1) -> (K,)
            min_level = 0
        else:
            min_level = self._min_level
            levels = roi_levels(F, rois, min_level, min_level + len(feats) - 1)  # (K,)
        scales = tuple(1.0 / s for s in self._strides)
        return F.gm_multi_roi_align(rois, levels, *feats, pooled_size=self._roi_size,
                                    sample_ratio=self._sample_ratio, min_level=min_level,
                                    spatial_scales=str(scales))
