"""ResNet v1b/v1d backbones from GluonCV, split for C4 heads or wrapped with our FPN.

Parameter names follow GluonCV's Mask R-CNN files exactly, so GluonCV-saved parameter files
load strictly: C4 uses the structural names of two ``HybridSequential`` blocks
(``features.*``, ``top_features.*``); FPN uses the names of GluonCV's symbolic FPN
(``features.resnetv1b_layers1_conv0_weight``, ``features.P2_conv1_weight``, ...).
"""
import mxnet as mx
from mxnet import gluon
from mxnet.gluon import nn

from .fpn import FPN

__all__ = ["build_resnet", "c4_backbone", "ResNetFPN", "RESNETS"]

RESNETS = ("resnet18_v1b", "resnet50_v1b", "resnet101_v1d")
_STEM = ("conv1", "bn1", "relu", "maxpool")


def build_resnet(name, pretrained_base=False, norm_layer=None, root=None):
    """A GluonCV ResNet with frozen BatchNorm (``use_global_stats``), or ``norm_layer``.

    ``pretrained_base`` True loads ImageNet weights through :mod:`gluon_maskrcnn.store`
    (GluonCV's model store, sha1-checked, with a clear error when offline); a str is a file path.
    """
    from gluoncv.model_zoo import resnetv1b

    if name not in RESNETS:
        raise ValueError("unknown backbone %r; choose one of %s" % (name, ", ".join(RESNETS)))
    kwargs = {"dilated": False}
    if norm_layer is None:
        kwargs["use_global_stats"] = True
    else:
        kwargs["norm_layer"] = norm_layer
        kwargs["last_gamma"] = not pretrained_base  # from scratch: residual branches start at zero
    net = getattr(resnetv1b, name)(pretrained=False, **kwargs)
    if pretrained_base:
        from ..store import resolve_params

        path = resolve_params(name, pretrained_base, root=root)
        net.load_parameters(path, allow_missing=False, ignore_extra=True)
    return net


def c4_backbone(resnet):
    """Split a ResNet into ``features`` (stem to res4, stride 16) and ``top_features`` (res5)."""
    features = nn.HybridSequential(prefix="")
    for layer in _STEM + ("layer1", "layer2", "layer3"):
        features.add(getattr(resnet, layer))
    top_features = nn.HybridSequential(prefix="")
    top_features.add(resnet.layer4)
    return features, top_features


class ResNetFPN(gluon.HybridBlock):
    """ResNet body plus FPN: image (B, 3, H, W) -> [P2, P3, P4, P5, P6], 256 channels each.

    Pn has stride 2**n. The parameters are keyed as GluonCV's symbolic FPN keys them: the
    body's own global names (``resnetv1b_...``) and the FPN convs' names (``P2_conv1_...``).
    """

    def __init__(self, resnet, channels=256, **kwargs):
        super().__init__(**kwargs)
        # The ResNet was built outside our name scope, so its parameter names stay GluonCV's;
        # its classifier (avgpool, fc) is left out, as GluonCV's symbolic FPN leaves it out.
        self.stem = nn.HybridSequential(prefix="")
        self.stem.add(*[getattr(resnet, name) for name in _STEM])
        self.stages = nn.HybridSequential(prefix="")
        self.stages.add(*[getattr(resnet, "layer%d" % i) for i in range(1, 5)])
        with self.name_scope():
            in_channels = [_stage_channels(stage) for stage in self.stages]
            self.fpn = FPN(in_channels, channels, prefix="")

    def _collect_params_with_prefix(self, prefix=""):
        if prefix:
            prefix += "."
        own = self.prefix
        return {prefix + (p.name[len(own):] if p.name.startswith(own) else p.name): p
                for p in self.collect_params().values()}

    def hybrid_forward(self, F, x):
        x = self.stem(x)
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return self.fpn(*outputs)


def _stage_channels(stage):
    """Output channels of a ResNet stage (its last block's last conv)."""
    last = stage[len(stage) - 1]
    conv = getattr(last, "conv3", None) or last.conv2
    return conv.weight.shape[0]  # (out, in, k, k)


def initialize_fresh(block, ctx=None):
    """Initialise parameters that have no data yet (e.g. heads on top of a pretrained base).

    Layers without an initializer of their own (the backbone's convs) get He initialisation.
    """
    ctx = ctx or mx.cpu()
    default = mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)
    for param in block.collect_params().values():
        try:
            param.list_ctx()  # raises only when neither initialised nor awaiting deferred init
        except RuntimeError:
            param.initialize(default_init=default, ctx=ctx)
