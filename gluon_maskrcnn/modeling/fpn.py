"""Feature Pyramid Network top-down pathway (Lin et al. 2017), GluonCV's P2-P6 variant."""
import mxnet as mx
from mxnet import gluon
from mxnet.gluon import nn

__all__ = ["FPN"]


class FPN(gluon.HybridBlock):
    """Lateral 1x1 convs, nearest 2x upsampling with addition, and 3x3 output convs.

    P6 is a stride-2 3x3 conv on the top lateral map, as in GluonCV. Convs are named
    ``P{n}_conv_lat`` and ``P{n}_conv1`` so that parameters match GluonCV's files.

    Forward: C2..C5 -> [P2, P3, P4, P5, P6].
    """

    def __init__(self, in_channels, channels=256, **kwargs):
        super().__init__(**kwargs)
        init = mx.init.Xavier(rnd_type="uniform", factor_type="in", magnitude=1.0)
        self._levels = list(range(2, 2 + len(in_channels)))  # [2, 3, 4, 5]
        with self.name_scope():
            for level, cin in zip(self._levels, in_channels):
                setattr(self, "lat%d" % level, nn.Conv2D(channels, 1, in_channels=cin,
                                                         weight_initializer=init,
                                                         prefix="P%d_conv_lat_" % level))
                setattr(self, "out%d" % level, nn.Conv2D(channels, 3, padding=1, in_channels=channels,
                                                         weight_initializer=init,
                                                         prefix="P%d_conv1_" % level))
            top = self._levels[-1] + 1
            self.extra = nn.Conv2D(channels, 3, strides=2, padding=1, in_channels=channels,
                                   weight_initializer=init, prefix="P%d_conv1_" % top)

    def hybrid_forward(self, F, *stages):
        top_level = self._levels[-1]
        merged = getattr(self, "lat%d" % top_level)(stages[-1])
        p_extra = self.extra(merged)
        outputs = [getattr(self, "out%d" % top_level)(merged)]
        for level, stage in zip(self._levels[-2::-1], stages[-2::-1]):
            lateral = getattr(self, "lat%d" % level)(stage)
            upsampled = F.UpSampling(merged, scale=2, sample_type="nearest")
            upsampled = F.slice_like(upsampled, lateral, axes=(2, 3))  # crop odd sizes
            merged = lateral + upsampled
            outputs.insert(0, getattr(self, "out%d" % level)(merged))
        return outputs + [p_extra]
