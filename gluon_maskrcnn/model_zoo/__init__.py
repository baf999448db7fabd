"""Model zoo: GluonCV's Mask R-CNN names, presets and published parameter files.

>>> net = get_model('mask_rcnn_fpn_resnet50_v1b_coco', pretrained=True)      # doctest: +SKIP
>>> net = get_model('mask_rcnn_resnet18_v1b_coco', pretrained_base=False,
...                 classes=['cat', 'dog'], max_dets=50)                       # doctest: +SKIP
"""
import mxnet as mx

from ..data.classes import COCO_CLASSES
from ..modeling.backbone import initialize_fresh
from .builder import build_mask_rcnn
from .presets import PRESETS, PUBLISHED_AP
from ..store import ModelFileError, resolve_params

__all__ = ["get_model", "get_model_list", "PRESETS", "PUBLISHED_AP", "ModelFileError"]


def get_model_list():
    """Names accepted by :func:`get_model`."""
    return list(PRESETS)


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
        over by name are kept (:meth:`MaskRCNN.reset_class`).
    ctx : Context or list of Context
    root : str, optional
        Cache folder of parameter files.
    **overrides
        Any preset entry, e.g. ``max_dets=1000``, ``short=600``, ``per_device_batch_size=2``.
    """
    if name not in PRESETS:
        raise ValueError("unknown model %r; available: %s" % (name, ", ".join(PRESETS)))
    unknown = set(overrides) - set(PRESETS[name])
    if unknown:
        raise TypeError("unknown preset keys for %s: %s" % (name, ", ".join(sorted(unknown))))
    cfg = dict(PRESETS[name], **overrides)
    ctx = ctx or mx.cpu()
    params_path = resolve_params(name, pretrained, root) if pretrained else None
    net_classes = COCO_CLASSES if (pretrained or classes is None) else classes
    net = build_mask_rcnn(cfg, net_classes, pretrained_base=pretrained_base and not pretrained,
                          root=root)
    if params_path:
        net.load_parameters(params_path, ctx=ctx)
        if classes is not None and list(classes) != list(COCO_CLASSES):
            net.reset_class(classes)
    else:
        initialize_fresh(net, ctx)
    return net
