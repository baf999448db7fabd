"""Feature Pyramid Network top-down pathway (Lin et al. 2017), GluonCV's P2-P6 variant."""
import mxnet as mx
from mxnet import gluon
from mxnet.gluon import nn

from .norm import PyramidNorm

__all__ = ["FPN"]


class FPN(gluon.HybridBlock):
    """Lateral 1x1 convs, nearest 2x upsampling with addition, and 3x3 output convs.

    P6 is a stride-2 3x3 conv on the top lateral map, as in GluonCV. Convs are named
    ``P{n}_conv_lat`` and ``P{n}_conv1`` so that parameters match GluonCV's files.

    ``use_bias`` False drops the convs' biases (GluonCV's custom models with a norm layer).
    With ``norm`` ``"bn"`` or ``"syncbn"``, each conv is followed by a :class:`~gluon_maskrcnn.modeling.norm.PyramidNorm`
    where GluonCV's FPN puts one, with its names: ``P5_lat_bn`` after the top lateral (the P6
    conv and the top-down path read the normalised map), ``P{n}_conv1_bn`` after the other
    laterals, ``P{n}_bn`` after each output conv and ``P6_pre_bn`` after the P6 conv.

    Forward: C2..C5 -> [P2, P3, P4, P5, P6].
    """

    def __init__(self, in_channels, channels=256, norm=None, num_devices=1, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        init = mx.init.Xavier(rnd_type="uniform", factor_type="in", magnitude=1.0)
        self._levels = list(range(2, 2 + len(in_channels)))  # [2, 3, 4, 5]
        top = self._levels[-1]
        with self.name_scope():
            for level, cin in zip(self._levels, in_channels):
                setattr(self, "lat%d" % level, nn.Conv2D(channels, 1, in_channels=cin,
                                                         use_bias=use_bias, weight_initializer=init,
                                                         prefix="P%d_conv_lat_" % level))
                setattr(self, "out%d" % level, nn.Conv2D(channels, 3, padding=1, in_channels=channels,
                                                         use_bias=use_bias, weight_initializer=init,
                                                         prefix="P%d_conv1_" % level))
            self.extra = nn.Conv2D(channels, 3, strides=2, padding=1, in_channels=channels,
                                   use_bias=use_bias, weight_initializer=init, prefix="P%d_conv1_" % (top + 1))
            self.norms = None
            if norm in ("bn", "syncbn"):
                names = ["P%d_lat_bn_" % top] + ["P%d_conv1_bn_" % lv for lv in self._levels[:-1]]
                names += ["P%d_bn_" % lv for lv in self._levels] + ["P%d_pre_bn_" % (top + 1)]
                self.norms = nn.HybridSequential(prefix="")
                with self.norms.name_scope():
                    for name in names:
                        self.norms.add(PyramidNorm(channels, norm, num_devices, prefix=name))
            elif norm not in (None, "frozen"):
                raise ValueError("FPN norm must be None, 'bn' or 'syncbn', got %r" % (norm,))

    def _norm(self, name, x):
        """The map after the norm GluonCV names ``name`` (unchanged without norms)."""
        if self.norms is None:
            return x
        for block in self.norms:
            if block.prefix.endswith(name + "_"):
                return block(x)
        raise KeyError(name)

    def hybrid_forward(self, F, *stages):
        top_level = self._levels[-1]
        merged = self._norm("P%d_lat_bn" % top_level, getattr(self, "lat%d" % top_level)(stages[-1]))
        p_extra = self._norm("P%d_pre_bn" % (top_level + 1), self.extra(merged))
        outputs = [self._norm("P%d_bn" % top_level, getattr(self, "out%d" % top_level)(merged))]
        for level, stage in zip(self._levels[-2::-1], stages[-2::-1]):
            lateral = self._norm("P%d_conv1_bn" % level, getattr(self, "lat%d" % level)(stage))
            upsampled = F.UpSampling(merged, scale=2, sample_type="nearest")
            upsampled = F.slice_like(upsampled, lateral, axes=(2, 3))  # crop odd sizes
            merged = lateral + upsampled
            outputs.insert(0, self._norm("P%d_bn" % level, getattr(self, "out%d" % level)(merged)))
        return outputs + [p_extra]
