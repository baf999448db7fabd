"""Box and mask heads (GluonCV's layouts, so that their parameter files load)."""
import mxnet as mx
from mxnet import gluon
from mxnet.gluon import nn

from .norm import norm_layer

__all__ = ["fpn_box_head", "MaskHead", "pick_class_masks"]


def fpn_box_head(hidden=1024, avg_pool=False, num_convs=0, conv_channels=256, conv_bias=True,
                 norm=None, num_devices=1):
    """The FPN box head on ROI features, in GluonCV's layouts.

    Without convs: 2 x (FC(``hidden``) + ReLU). With ``num_convs`` (the SyncBN and custom
    models): ``num_convs`` x (3x3 conv + norm + ReLU), then one FC(``hidden``) + ReLU.
    ``avg_pool`` first halves 14x14 ROI features to 7x7.
    """
    head = nn.HybridSequential()
    if avg_pool:
        head.add(nn.AvgPool2D(pool_size=(3, 3), strides=2, padding=1))
    layer, kwargs = norm_layer(norm or "frozen", num_devices)
    for _ in range(num_convs):
        head.add(nn.Conv2D(conv_channels, 3, padding=1, use_bias=conv_bias))
        if layer is not None:
            head.add(layer(**kwargs))
        head.add(nn.Activation("relu"))
    for _ in range(1 if num_convs else 2):
        head.add(nn.Dense(hidden, weight_initializer=mx.init.Normal(0.01)), nn.Activation("relu"))
    return head


class MaskHead(gluon.HybridBlock):
    """FCN mask head: ``num_convs`` x (3x3 conv + ReLU), 2x2 stride-2 deconv, ReLU, 1x1 conv.

    With ``num_convs=0`` (C4) ``deconv`` is the deconvolution itself, as GluonCV names it.
    With ``norm`` ``"syncbn"`` (GluonCV's SyncBN models), a SyncBatchNorm follows each conv and
    the deconvolution.

    Forward: ROI features (K, C, S, S) -> per-class mask logits (K, num_classes, 2S, 2S).
    """

    def __init__(self, num_classes, channels=256, num_convs=0, norm=None, num_devices=1, **kwargs):
        super().__init__(**kwargs)
        init = mx.init.Xavier(rnd_type="gaussian", factor_type="out", magnitude=2)
        layer, norm_kwargs = norm_layer(norm, num_devices) if norm == "syncbn" else (None, {})
        with self.name_scope():
            deconv = nn.Conv2DTranspose(channels, kernel_size=(2, 2), strides=(2, 2),
                                        weight_initializer=init)
            if num_convs > 0:
                self.deconv = nn.HybridSequential()
                for _ in range(num_convs):
                    self.deconv.add(nn.Conv2D(channels, 3, padding=1, weight_initializer=init))
                    if layer is not None:
                        self.deconv.add(layer(**norm_kwargs))
                    self.deconv.add(nn.Activation("relu"))
                self.deconv.add(deconv)
                if layer is not None:
                    self.deconv.add(layer(**norm_kwargs))
            else:
                self.deconv = deconv
            self.mask = nn.Conv2D(num_classes, 1, weight_initializer=init)

    def hybrid_forward(self, F, x):
        # Activation, not F.relu: oneDNN's relu backward is far faster
        return self.mask(F.Activation(self.deconv(x), act_type="relu"))


def pick_class_masks(F, logits, class_ids, num_classes):
    """Select each ROI's own class channel.

    logits (K, C, M, M), class_ids (K,) with -1 for none -> (K, M, M).
    """
    cls = F.clip(class_ids, 0, num_classes - 1)
    flat = logits.reshape((-3, -1))  # (K, C, M, M) -> (K*C, M*M)
    rows = F.contrib.arange_like(class_ids) * num_classes + cls  # (K,)
    picked = F.take(flat, rows)  # (K, M*M)
    return F.reshape_like(picked, logits, lhs_begin=1, lhs_end=2, rhs_begin=2,
                          rhs_end=4)  # (K, M*M) -> (K, M, M)
