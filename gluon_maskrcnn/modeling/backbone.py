"""GluonCV ImageNet backbones (ResNet v1b/v1c/v1d/v1e/v1s of any depth, MobileNet 1.0), split
for C4 heads or wrapped with our FPN.

Parameter names follow GluonCV's Mask R-CNN files exactly, so GluonCV-saved parameter files
load strictly: C4 uses the structural names of two ``HybridSequential`` blocks
(``features.*``, ``top_features.*``); FPN uses the names of GluonCV's symbolic FPN
(``features.resnetv1b_layers1_conv0_weight``, ``features.P2_conv1_weight``, ...).
"""
import re

import mxnet as mx
from mxnet import gluon
from mxnet.gluon import nn

from ..errors import UserError
from .fpn import FPN
from .norm import norm_layer as make_norm_layer

__all__ = ["build_backbone", "build_resnet", "build_mobilenet", "c4_backbone", "PyramidBackbone",
           "ResNetFPN", "MobileNetFPN", "RESNETS", "is_backbone", "pyramid"]

# the ResNets of GluonCV's Mask R-CNN zoo; any resnetNN_v1X of gluoncv.model_zoo.resnetv1b builds
RESNETS = ("resnet18_v1b", "resnet50_v1b", "resnet101_v1d")
_RESNET_NAME = re.compile(r"^resnet(18|34|50|101|152)_v1[bcdes]$")
MOBILENET = "mobilenet1_0"  # GluonCV's ImageNet name is mobilenet1.0
_MOBILENET_PREFIX = "mobilenet0_"  # the prefix GluonCV's files carry (its first MobileNet's)
_MOBILENET_STAGE_ENDS = ("relu6", "relu10", "relu22", "relu26")  # strides 4, 8, 16, 32
_STEM = ("conv1", "bn1", "relu", "maxpool")


def pyramid(name, body, channels=256, norm=None, num_devices=1, use_bias=True):
    """The FPN backbone of a network :func:`build_backbone` built under ``name``."""
    wrap = MobileNetFPN if name in (MOBILENET, "mobilenet1.0") else ResNetFPN
    return wrap(body, channels, norm, num_devices, use_bias)


class UnknownBackboneError(UserError, ValueError):
    """A backbone name GluonCV's ImageNet zoo has no builder for here."""


def is_backbone(name):
    """Whether ``name`` is a backbone :func:`build_backbone` builds."""
    return bool(_RESNET_NAME.match(name)) or name in (MOBILENET, "mobilenet1.0")


def _load_base(net, name, pretrained_base, root, ctx):
    """ImageNet weights into ``net`` on ``ctx`` (a Context or a list; default ``cpu()``) through
    :mod:`gluon_maskrcnn.store` (sha1-checked, with a clear error when offline);
    ``pretrained_base`` a str is a file path."""
    from ..store import resolve_params

    path = resolve_params(name, pretrained_base, root=root)
    net.load_parameters(path, ctx=ctx or mx.cpu(), allow_missing=False, ignore_extra=True)


def build_resnet(name, pretrained_base=False, norm_layer=None, root=None, norm_kwargs=None, ctx=None):
    """A GluonCV ResNet with frozen BatchNorm (``use_global_stats``), or ``norm_layer``.

    ``pretrained_base`` True loads ImageNet weights through :mod:`gluon_maskrcnn.store`
    (GluonCV's model store, sha1-checked, with a clear error when offline); a str is a file
    path. The weights go to ``ctx`` (a Context or a list of them).
    """
    from gluoncv.model_zoo import resnetv1b

    if not _RESNET_NAME.match(name):
        raise UnknownBackboneError("unknown backbone %r; choose a GluonCV ResNet (resnet18_v1b ... "
                         "resnet152_v1d) or %s" % (name, MOBILENET))
    kwargs = {"dilated": False}
    if norm_layer is None:
        kwargs["use_global_stats"] = True
    else:
        kwargs.update(norm_layer=norm_layer, norm_kwargs=dict(norm_kwargs or {}))
        kwargs["last_gamma"] = not pretrained_base  # from scratch: residual branches start at zero
    net = getattr(resnetv1b, name)(pretrained=False, **kwargs)
    if pretrained_base:
        _load_base(net, name, pretrained_base, root, ctx)
    return net


def build_mobilenet(pretrained_base=False, norm_layer=None, root=None, norm_kwargs=None, ctx=None):
    """GluonCV's MobileNet 1.0 with frozen BatchNorm, or ``norm_layer``, under the prefix of
    GluonCV's files (``mobilenet0_``) whatever was built before in this process."""
    from gluoncv.model_zoo.mobilenet import mobilenet1_0

    kwargs = {"prefix": _MOBILENET_PREFIX}
    if norm_layer is None:
        kwargs["norm_kwargs"] = {"use_global_stats": True}
    else:
        kwargs.update(norm_layer=norm_layer, norm_kwargs=dict(norm_kwargs or {}))
    net = mobilenet1_0(pretrained=False, **kwargs)
    if pretrained_base:
        _load_base(net, "mobilenet1.0", pretrained_base, root, ctx)
    return net


def build_backbone(name, pretrained_base=False, norm="frozen", num_devices=1, root=None, ctx=None):
    """A GluonCV ImageNet network by name with the norm kind ``norm`` (see
    :func:`~gluon_maskrcnn.modeling.norm.norm_layer`); ImageNet weights are loaded onto ``ctx``."""
    layer, kwargs = make_norm_layer(norm, num_devices)
    if name in (MOBILENET, "mobilenet1.0"):
        return build_mobilenet(pretrained_base, layer, root, kwargs, ctx)
    return build_resnet(name, pretrained_base, layer, root, kwargs, ctx)


def c4_backbone(resnet):
    """Split a ResNet into ``features`` (stem to res4, stride 16) and ``top_features`` (res5)."""
    features = nn.HybridSequential(prefix="")
    for layer in _STEM + ("layer1", "layer2", "layer3"):
        features.add(getattr(resnet, layer))
    top_features = nn.HybridSequential(prefix="")
    top_features.add(resnet.layer4)
    return features, top_features


class PyramidBackbone(gluon.HybridBlock):
    """A backbone's stages plus FPN: image (B, 3, H, W) -> [P2, P3, P4, P5, P6].

    ``stem`` and the four ``stages`` (strides 4, 8, 16, 32) are blocks of a GluonCV network
    built outside our name scope, so their parameter names stay GluonCV's. The parameters are
    keyed as GluonCV's symbolic FPN keys them: the body's own global names
    (``resnetv1b_...``, ``mobilenet0_...``) and the FPN's (``P2_conv1_...``).
    """

    def __init__(self, stem, stages, channels=256, norm=None, num_devices=1, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.stem = nn.HybridSequential(prefix="")
        self.stem.add(*stem)
        self.stages = nn.HybridSequential(prefix="")
        self.stages.add(*stages)
        with self.name_scope():
            in_channels = [_stage_channels(stage) for stage in self.stages]
            self.fpn = FPN(in_channels, channels, norm=norm, num_devices=num_devices,
                           use_bias=use_bias, prefix="")

    def _collect_params_with_prefix(self, prefix=""):
        # overrides Gluon's structural naming: GluonCV's SymbolBlock FPN keys by global names
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


def ResNetFPN(resnet, channels=256, norm=None, num_devices=1, use_bias=True):
    """A GluonCV ResNet's stages (its classifier left out, as GluonCV's FPN leaves it) plus FPN."""
    return PyramidBackbone([getattr(resnet, name) for name in _STEM],
                           [getattr(resnet, "layer%d" % i) for i in range(1, 5)],
                           channels, norm, num_devices, use_bias)


def MobileNetFPN(mobilenet, channels=256, norm=None, num_devices=1, use_bias=True):
    """GluonCV's MobileNet 1.0 cut after ``relu6``, ``relu10``, ``relu22`` and ``relu26`` (the
    outputs GluonCV's FPN takes), plus FPN."""
    layers = list(mobilenet.features)
    ends = [next(i for i, block in enumerate(layers) if block.name.endswith("_" + relu))
            for relu in _MOBILENET_STAGE_ENDS]
    stages, start = [], 0
    for end in ends:
        stage = nn.HybridSequential(prefix="")
        stage.add(*layers[start:end + 1])
        stages.append(stage)
        start = end + 1
    return PyramidBackbone([], stages, channels, norm, num_devices, use_bias)


def _stage_channels(stage):
    """Output channels of a stage: its last convolution's (a ResNet block's conv3 or conv2, or
    a MobileNet layer)."""
    convs = [p for name, p in stage.collect_params().items()
             if name.endswith("_weight") and len(p.shape) == 4]
    return convs[-1].shape[0]  # (out, in, k, k)


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
