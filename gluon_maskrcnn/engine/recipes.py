"""Training recipes: the values that flags left unset take, for each dataset.

The COCO recipe is GluonCV's ``train_mask_rcnn.py`` (see the README's table). The synthetic one
trains a small FPN R18 from scratch on CPU in about ten minutes, and ``--tiny`` shrinks it to
about three.
"""
import os

__all__ = ["recipe", "COCO_DEFAULTS", "SYNTHETIC_DEFAULTS", "TINY_DEFAULTS", "ARCHITECTURE_KEYS",
           "MODEL_SIZE_KEYS"]

# Flags left unset take these values. The synthetic set trains a small FPN R18 from scratch on
# CPU (offline: no ImageNet weights) in about ten minutes: images at 128 pixels (the shapes
# are 23-54 pixels there), a 64-channel FPN, RPN and mask head and a 256-wide box head
# (GluonCV: 256, 1024, 256, 1024), which cut a step to less than half of the 192-pixel,
# 128-channel recipe's; two images per step, which share the SGD update; hybridized; 3,600
# images seen (six epochs of 600), with a cosine decay. The COCO set is GluonCV's schedule.
# ``images_per_device`` is the default --batch-size per device.
COCO_DEFAULTS = dict(network="resnet50_v1b", use_fpn=False, epochs=26, lr_decay_epoch="17,23", norm="frozen",
                     lr_mode="step", val_interval=1, no_pretrained_base=False, train_all=False,
                     images_per_device=1)
SYNTHETIC_DEFAULTS = dict(network="resnet18_v1b", use_fpn=True, epochs=6, lr=0.01, lr_mode="cosine",
                          lr_warmup=100, val_interval=2, no_pretrained_base=True, train_all=True,
                          short=128, max_size=160, fpn_channels=64, rpn_channels=64, mask_channels=64,
                          box_hidden=256, num_sample=64, rpn_train_pre_nms=1000, rpn_train_post_nms=256,
                          rpn_test_pre_nms=1000, rpn_test_post_nms=200, max_dets=50, num_workers=2,
                          clip_gradient=5.0, hybridize=True, dataset_root="data/synthetic",
                          save_prefix="runs/synthetic/mask_rcnn", norm="bn", synthetic_train=600,
                          synthetic_val=50, images_per_device=2)
# --tiny: a recipe of about three minutes on a 2-core CPU, for smoke tests and the short
# training runs of the tutorials (its widths are fixed here: its runs and tests predate the
# narrower synthetic recipe). It learns the shapes roughly; it is no substitute for the full
# synthetic run.
TINY_DEFAULTS = dict(network="resnet18_v1b", use_fpn=True, no_pretrained_base=True, train_all=True,
                     norm="bn", short=128, max_size=160, rpn_channels=64, fpn_channels=128,
                     mask_channels=128, box_hidden=512, num_sample=64,
                     rpn_train_pre_nms=500, rpn_train_post_nms=128, rpn_test_pre_nms=300,
                     rpn_test_post_nms=64, max_dets=20, epochs=6, lr=0.01, lr_decay_epoch="5",
                     lr_mode="step", lr_warmup=20, val_interval=6, clip_gradient=5.0, synthetic_train=48,
                     synthetic_val=8, dataset_root="data/synthetic_tiny",
                     save_prefix="runs/tiny/mask_rcnn", images_per_device=1)


# Preset entries the command line can override ("model size overrides"). The architecture keys
# change the parameters' shapes or the input scale, so a checkpoint records and restores them.
ARCHITECTURE_KEYS = ("short", "max_size", "rpn_channels", "fpn_channels", "box_hidden", "mask_channels")
MODEL_SIZE_KEYS = ARCHITECTURE_KEYS + ("num_sample", "rpn_train_pre_nms", "rpn_train_post_nms",
                                       "rpn_test_pre_nms", "rpn_test_post_nms", "max_dets")

# TINY_DEFAULTS entries that only make sense for the synthetic set
_SYNTHETIC_ONLY = ("synthetic_train", "synthetic_val", "dataset_root")


def recipe(dataset, tiny=False):
    """The defaults of ``--dataset`` (``coco``, ``synthetic`` or ``custom``), shrunk by ``--tiny``."""
    defaults = dict(COCO_DEFAULTS, dataset_root=os.path.expanduser("~/.mxnet/datasets/coco"),
                    save_prefix="runs/mask_rcnn", num_workers=4, clip_gradient=-1.0, hybridize=False)
    if dataset == "synthetic":
        defaults.update(SYNTHETIC_DEFAULTS)
    if tiny:
        defaults.update(TINY_DEFAULTS if dataset == "synthetic" else
                        {k: v for k, v in TINY_DEFAULTS.items() if k not in _SYNTHETIC_ONLY})
    return defaults
