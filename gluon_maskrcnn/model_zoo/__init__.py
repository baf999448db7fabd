"""Model zoo: GluonCV's Mask R-CNN names, presets and published parameter files.

>>> net = get_model('mask_rcnn_fpn_resnet50_v1b_coco', pretrained=True)      # doctest: +SKIP
>>> net = get_model('mask_rcnn_resnet18_v1b_coco', pretrained_base=False,
...                 classes=['cat', 'dog'], max_dets=50)                       # doctest: +SKIP
"""
import os
import re
import tempfile

import mxnet as mx

from ..data.classes import COCO_CLASSES
from ..modeling.backbone import initialize_fresh
from .builder import build_mask_rcnn
from .gluoncv_keywords import KeywordError, norm_kind, translate
from .presets import CUSTOM, PRESETS, PUBLISHED_AP, UNPUBLISHED, custom_preset
from ..errors import UserError
from ..store import ModelFileError, resolve_params

__all__ = ["get_model", "get_model_list", "pretrained_model_list", "custom_mask_rcnn_fpn", "model_config", "CUSTOM",
           "PRESETS", "PUBLISHED_AP", "ModelFileError"] + sorted(PRESETS)  # GluonCV's per-name functions too


class UnknownModelError(UserError, ValueError):
    """A model name that is not in the zoo."""


def load_parameter_file(net, path, ctx=None):
    """Load a parameter file strictly (nothing missing, nothing extra).

    GluonCV names MobileNet's parameters by its automatic prefix (``mobilenet0_`` for the first
    one a process builds, ``mobilenet1_`` for the next); any number maps to the
    ``mobilenet0_`` of our networks.
    """
    ctx = ctx or mx.cpu()
    loaded = mx.nd.load(path)
    renamed = {re.sub(r"^features\.mobilenet\d+_", "features.mobilenet0_", key): value
               for key, value in loaded.items()}
    if list(renamed) == list(loaded):
        net.load_parameters(path, ctx=ctx)
        return
    if len(renamed) != len(loaded):
        raise ValueError("%s holds the parameters of more than one MobileNet" % path)
    with tempfile.TemporaryDirectory() as folder:
        renamed_path = os.path.join(folder, os.path.basename(path))
        mx.nd.save(renamed_path, renamed)
        net.load_parameters(renamed_path, ctx=ctx)


def get_model_list():
    """Names accepted by :func:`~gluon_maskrcnn.model_zoo.get_model`: GluonCV's nine Mask R-CNN names."""
    return list(PRESETS) + [CUSTOM]


def pretrained_model_list():
    """Names whose COCO parameters GluonCV publishes (``get_model(name, pretrained=True)``), as
    GluonCV's ``pretrained_model_list`` lists them."""
    return [name for name in PRESETS if name not in UNPUBLISHED]


# The keywords GluonCV's per-name functions name in their signatures beyond (pretrained,
# pretrained_base); ours take them too, with None for the preset's value (the same as GluonCV's
# default for the RPN counts; 100 detections for rcnn_max_dets, see the README)
_GLUONCV_EXTRA_KEYWORDS = {
    "mask_rcnn_resnet18_v1b_coco": ("rcnn_max_dets", "rpn_test_pre_nms", "rpn_test_post_nms"),
    "mask_rcnn_fpn_resnet18_v1b_coco": ("rcnn_max_dets", "rpn_test_pre_nms", "rpn_test_post_nms"),
    "mask_rcnn_fpn_syncbn_resnet18_v1b_coco": ("num_devices", "rcnn_max_dets", "rpn_test_pre_nms",
                                               "rpn_test_post_nms"),
    "mask_rcnn_fpn_syncbn_mobilenet1_0_coco": ("num_devices", "rcnn_max_dets", "rpn_test_pre_nms",
                                               "rpn_test_post_nms"),
}


def _named_builder(name):
    """GluonCV's per-name function of zoo name ``name``, with its parameters."""
    import inspect

    extras = _GLUONCV_EXTRA_KEYWORDS.get(name, ())

    def build(pretrained=False, pretrained_base=True, **kwargs):
        kwargs = {key: value for key, value in kwargs.items() if not (key in extras and value is None)}
        return get_model(name, pretrained=pretrained, pretrained_base=pretrained_base, **kwargs)

    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    build.__signature__ = inspect.Signature(
        [inspect.Parameter("pretrained", keyword, default=False),
         inspect.Parameter("pretrained_base", keyword, default=True)]
        + [inspect.Parameter(key, keyword, default=None) for key in extras]
        + [inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)])
    build.__name__ = build.__qualname__ = name
    build.__doc__ = ("GluonCV's ``%s``: ``get_model(%r, pretrained, pretrained_base, **kwargs)`` (see\n"
                     "    :func:`get_model` for the keywords)." % (name, name))
    return build


for _name in PRESETS:  # mask_rcnn_resnet50_v1b_coco(pretrained=True), ... as in gluoncv.model_zoo
    globals()[_name] = _named_builder(_name)
del _name


def custom_mask_rcnn_fpn(classes, transfer=None, pretrained_base=True, backbone="resnet18_v1b",
                         norm_layer="frozen", fpn_norm=None, ctx=None, root=None, **kwargs):
    """A Mask R-CNN with FPN on any GluonCV ImageNet backbone, as GluonCV's ``custom_mask_rcnn_fpn``.

    ``backbone`` (GluonCV's ``base_network_name``): a ResNet v1b/v1c/v1d/v1e/v1s of any depth
    (``resnet18_v1b`` ... ``resnet152_v1d``) or ``mobilenet1_0``. ``norm_layer``: ``"frozen"``
    (GluonCV's ``nn.BatchNorm``), ``"bn"`` or ``"syncbn"`` (or the Gluon classes). With a
    trainable norm, as in GluonCV: the FPN convs lose their biases, the box head is
    ``box_head_convs`` (GluonCV's ``num_box_head_conv``, default 4) convs with that norm and
    one FC layer, and every parameter but the statistics trains; SyncBN also normalises the
    mask head. ``fpn_norm`` (GluonCV's ``sym_norm_layer``) puts norms in the FPN.
    Widths and the mask head's depth are keywords: ``fpn_channels`` (``num_fpn_filters``),
    ``box_head_conv_channels``, ``box_hidden`` (``num_box_head_dense_filters``),
    ``num_fcn_convs``, and every other preset entry or GluonCV keyword.

    ``transfer="coco"`` starts from GluonCV's COCO weights of the same backbone
    (``mask_rcnn_fpn_<backbone>_coco``), keeping the classes that carry over.
    """
    if transfer is not None:
        name = "mask_rcnn_fpn_%s_coco" % kwargs.pop("base_network_name", backbone)
        return get_model(name, pretrained=True, classes=classes, ctx=ctx, root=root, **kwargs)
    cfg, kwargs = _custom_preset(backbone, norm_layer, fpn_norm, kwargs)
    return _build(CUSTOM, cfg, False, pretrained_base, classes, ctx, root, kwargs)


def _custom_preset(backbone, norm_layer, fpn_norm, kwargs):
    """(custom preset, the keywords left) from custom_mask_rcnn_fpn's keywords."""
    kwargs = dict(kwargs)
    backbone = kwargs.pop("base_network_name", backbone)
    norm = norm_kind(kwargs.pop("norm", norm_layer))
    fpn_norm = norm_kind(kwargs.pop("sym_norm_layer", kwargs.pop("fpn_norm", fpn_norm)))
    return custom_preset(backbone, norm, None if fpn_norm == "frozen" else fpn_norm), kwargs


def _preset(name):
    """The preset of a zoo name; an unknown name is a user error that lists the names."""
    if name not in PRESETS:
        raise UnknownModelError("unknown model %r; available: %s" % (name, ", ".join(get_model_list())))
    return PRESETS[name]


def model_config(name, **overrides):
    """The preset of ``name`` with our or GluonCV's ``overrides`` applied, as the network is
    built (for ``custom_mask_rcnn_fpn``, its keywords)."""
    if name == CUSTOM:
        preset, overrides = _custom_preset(overrides.pop("backbone", "resnet18_v1b"),
                                           overrides.pop("norm_layer", "frozen"), None, overrides)
    else:
        preset = _preset(name)
    changes, _ = translate(preset, {k: v for k, v in overrides.items() if k != "transfer"})
    return dict(preset, **changes)


def get_model(name, pretrained=False, pretrained_base=True, classes=None, ctx=None, root=None,
              **overrides):
    """Build a Mask R-CNN by GluonCV name.

    Parameters
    ----------
    name : str
        One of :func:`get_model_list`.
    pretrained : bool or str
        True loads GluonCV's published COCO parameters (cached under ``$MXNET_HOME/models`` or
        downloaded); a path loads that file. The load is strict.
    pretrained_base : bool or str
        Load ImageNet weights into the backbone (ignored when ``pretrained``).
    classes : list of str, optional
        Custom foreground classes. With ``pretrained``, the COCO weights of classes that carry
        over by name are kept (:meth:`~gluon_maskrcnn.modeling.mask_rcnn.MaskRCNN.reset_class`).
    ctx : Context or list of Context
    root : str, optional
        Cache folder of parameter files.
    **overrides
        Any preset entry, e.g. ``max_dets=1000``, ``short=600``, ``per_device_batch_size=2``,
        or GluonCV's keyword for it (``rcnn_max_dets=1000``, ``rpn_channel=256``, ...: see
        :mod:`~gluon_maskrcnn.model_zoo.gluoncv_keywords`).
    """
    if name == CUSTOM:
        if classes is None:
            raise TypeError("custom_mask_rcnn_fpn needs classes=[...]")
        return custom_mask_rcnn_fpn(classes, pretrained_base=pretrained_base, ctx=ctx, root=root,
                                    **overrides)
    return _build(name, _preset(name), pretrained, pretrained_base, classes, ctx, root, overrides)


def _build(name, preset, pretrained, pretrained_base, classes, ctx, root, overrides):
    """The network of preset ``preset`` with GluonCV's or our ``overrides``, loaded or fresh."""
    try:
        changes, extras = translate(preset, overrides)
    except TypeError as err:  # a user error (KeywordError is also a TypeError, as GluonCV's)
        raise KeywordError("%s: %s" % (name, err)) from None
    pretrained = extras.get("pretrained", pretrained)
    cfg = dict(preset, **changes)
    ctx = ctx or mx.cpu()
    params_path = resolve_params(name, pretrained, root) if pretrained else None
    net_classes = COCO_CLASSES if (pretrained or classes is None) else classes
    # a path in pretrained_base is the user's own backbone file: pass it on as it is
    net = build_mask_rcnn(cfg, net_classes, pretrained_base=False if pretrained else pretrained_base,
                          root=root, ctx=ctx)
    if params_path:
        load_parameter_file(net, params_path, ctx)
        if classes is not None and list(classes) != list(COCO_CLASSES):
            net.reset_class(classes)
    else:
        initialize_fresh(net, ctx)
    return net
