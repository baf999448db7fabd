"""RPN anchor generator block: a constant anchor map sliced to each feature map."""
from mxnet import gluon

from ..boxes import anchor_grid

__all__ = ["AnchorGenerator"]


class AnchorGenerator(gluon.HybridBlock):
    """Anchors of one feature level, precomputed for an ``alloc_size`` map.

    Forward: ``feat`` (B, C, h, w) -> anchors (1, h*w*A, 4).

    Parameters
    ----------
    stride : int
        Feature stride in input pixels.
    sizes : sequence of float
        Anchor sizes in pixels (GluonCV: ``base_size * scales``).
    ratios : sequence of float
        Aspect ratios h / w.
    alloc_size : (int, int)
        Largest feature map (H, W) served; the anchors are stored as a constant parameter
        named ``anchors`` of shape (1, 1, H, W, A*4), as in GluonCV's parameter files.
    """

    def __init__(self, stride, sizes, ratios, alloc_size, **kwargs):
        super().__init__(**kwargs)
        self.stride = stride
        self.sizes = tuple(sizes)
        self.ratios = tuple(ratios)
        self.num_anchors = len(self.sizes) * len(self.ratios)
        grid = anchor_grid(stride, self.sizes, self.ratios, alloc_size[0], alloc_size[1])
        self.anchors = self.params.get_constant("anchors", grid[None, None])  # (1, 1, H, W, A*4)

    def hybrid_forward(self, F, feat, anchors):
        cropped = F.slice_like(anchors, feat, axes=(2, 3))  # (1, 1, h, w, A*4)
        return cropped.reshape((1, -1, 4))  # (1, 1, h, w, A*4) -> (1, h*w*A, 4)
