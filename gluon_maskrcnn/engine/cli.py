"""Command-line arguments of ``scripts/train_mask_rcnn.py`` (GluonCV's flags plus ours)."""
import argparse
import logging
import os

import mxnet as mx

from ..errors import UserError
from .checkpoint import checkpoint_args
from .custom_model import CUSTOM_MODEL_FLAGS
from .recipes import ARCHITECTURE_KEYS, MODEL_SIZE_KEYS, recipe

__all__ = ["build_parser", "apply_recipe", "training_args", "contexts", "device_count", "gpu_contexts",
           "inference_context", "add_device_flag"]

logger = logging.getLogger(__name__)

# flags that come as --X / --no-X (default None: the dataset's preset decides)
ON_OFF_FLAGS = {"hybridize": "train a hybridized (graph) network; default: on for the synthetic set"}

def _optional(kind):
    """A flag type that reads '' as unset (GluonCV's string flags --epochs '', --lr '', ...)."""
    def parse(text):
        return None if text == "" else kind(text)
    parse.__name__ = kind.__name__
    return parse


def build_parser():
    """The parser of ``scripts/train_mask_rcnn.py``: GluonCV's flags, ours, and the
    ``custom-model`` sub-command."""
    p = argparse.ArgumentParser(description="Train Mask R-CNN.")
    a = p.add_argument
    a("--network", default=None, help="resnet18_v1b, resnet50_v1b, resnet101_v1d, any GluonCV "
      "ResNet v1b-v1s, or mobilenet1.0 (with --use-fpn --norm-layer syncbn)")
    a("--use-fpn", action="store_true", default=None, help="FPN heads instead of C4")
    a("--dataset", default="coco", choices=["coco", "synthetic", "custom"])
    a("--dataset-root", default=None, help="default: ~/.mxnet/datasets/coco, or data/synthetic")
    a("--train-split", default=None, help="default: train2017 (coco) or train")
    a("--val-split", default=None, help="default: val2017 (coco) or val")
    a("--gpus", default="0", help="comma-separated GPU ids; '' trains on CPU")
    a("--cpu-contexts", type=int, default=1, help="with --gpus '': split each batch over N CPU contexts")
    a("--epochs", type=_optional(int), default=None)
    a("--batch-size", type=int, default=None,
      help="images per iteration on this worker (default: 1 per device; 2 for the synthetic run)")
    a("--lr", type=_optional(float), default=None, help="default: 0.01 x total batch / 8, as GluonCV")
    a("--lr-mode", default=None, choices=["step", "cosine"], help="default: step (cosine for synthetic)")
    a("--lr-decay", type=float, default=0.1)
    a("--lr-decay-epoch", default=None)
    a("--lr-warmup", type=_optional(float), default=None,
      help="warm-up iterations (default: as GluonCV, max(8000 / total batch, 1000))")
    a("--lr-warmup-factor", type=float, default=1.0 / 3, help="warm-up starts at this fraction of --lr")
    a("--wd", type=_optional(float), default=1e-4)
    a("--momentum", type=float, default=0.9)
    a("--clip-gradient", type=float, default=None,
      help="clip the global L2 norm of the applied gradient (summed over devices and workers)")
    a("--kv-store", default="device", help="local, device, nccl, dist_sync, dist_device_sync")
    a("--horovod", action="store_true")
    a("--num-workers", "-j", dest="num_workers", type=int, default=None,
      help="DataLoader worker processes (default 4)")
    a("--save-prefix", default=None, help="default runs/mask_rcnn")
    a("--resume", default="", help="checkpoint prefix (runs/mask_rcnn-last), or 'auto': the newest "
      "complete checkpoint of --save-prefix, or a fresh start when there is none")
    a("--start-epoch", type=int, default=0)
    a("--val-interval", type=int, default=None, help="evaluate every N epochs (0: never)")
    a("--val-loss", action="store_true", help="also compute the five losses on the val split")
    a("--log-interval", type=int, default=20)
    a("--seed", type=int, default=233)
    a("--no-pretrained-base", action="store_true", default=None)
    a("--pretrained-base", default=None, metavar="FILE",
      help="the backbone's ImageNet weights from this parameter file (GluonCV's layout) instead "
      "of GluonCV's model store")
    a("--pretrained", default="", help="start from a zoo model's COCO weights (True), a .params "
      "file, or a training checkpoint prefix (runs/x-best: its network; classes are reset)")
    a("--train-all", action="store_true", default=None,
      help="train every parameter (default: the preset's patterns)")
    a("--norm", default=None, choices=["frozen", "bn", "syncbn"],
      help="backbone norm: frozen BatchNorm (GluonCV), BatchNorm per device, or SyncBatchNorm")
    a("--norm-layer", default=None, choices=["bn", "syncbn"],
      help="GluonCV's flag: SyncBatchNorm over this machine's devices, in the backbone, FPN and "
      "heads (GluonCV's mask_rcnn_fpn_syncbn_* models); 'bn' means the same, as in GluonCV")
    a("--save-interval", type=int, default=0,
      help="also keep PREFIX-epochNNNN every N epochs (0: only -last and -best)")
    a("--save-interval-iters", type=int, default=0,
      help="also write PREFIX-last every N iterations, with all an exact resume needs (0: at "
      "the end of each epoch only)")
    a("--keep-checkpoints", type=int, default=0,
      help="keep the K newest iteration checkpoints PREFIX-iterNNNNNNN besides -last and -best")
    a("--rpn-smoothl1-rho", type=float, default=1.0 / 9,
      help="RPN box loss: smooth-L1 turns into L1 past this (0: L1)")
    a("--rcnn-smoothl1-rho", type=float, default=1.0, help="R-CNN box loss: the same, for the boxes")
    a("--disable-hybridization", action="store_true", help="GluonCV's flag: same as --no-hybridize")
    a("--amp", action="store_true", help="mixed precision (float16) with dynamic loss scaling: GPUs only")
    a("--executor-threads", type=int, default=1,
      help="run the devices' forward and backward in N threads (GluonCV's flag)")
    a("--use-ext", action="store_true",
      help="evaluate with NVIDIA's COCO API if installed (else pycocotools, with a notice)")
    a("--coco-evaluator", default="pycocotools", choices=["pycocotools", "faster-coco-eval"],
      help="COCOeval implementation: pycocotools, or faster-coco-eval (same figures, faster; "
      "pip install faster-coco-eval)")
    a("--verbose", action="store_true", help="log the trainable parameters and the settings")
    a("--tensorboard", default=None, metavar="DIR", help="also write the losses, learning rate, "
      "throughput, AP figures and prediction gallery as TensorBoard events in DIR (rank 0; "
      "pip install -e \".[tensorboard]\")")
    for key, text in ON_OFF_FLAGS.items():
        a("--" + key.replace("_", "-"), action=argparse.BooleanOptionalAction, default=None, help=text)
    a("--static-alloc", action="store_true")
    a("--quiet", action="store_true")
    small = p.add_argument_group("model size overrides (defaults: the zoo preset)")
    for key in MODEL_SIZE_KEYS:
        small.add_argument("--" + key.replace("_", "-"), type=int, default=None)
    a("--synthetic-train", type=int, default=None, help="synthetic dataset: training images (600)")
    a("--synthetic-val", type=int, default=None, help="synthetic dataset: validation images (50)")
    a("--tiny", action="store_true", help="a small model and schedule that runs in a few minutes "
      "on CPU (smoke tests, tutorials); flags given explicitly still win")
    _add_custom_model(p)
    return p


def _add_custom_model(parser):
    sub = parser.add_subparsers(dest="custom_model")
    custom = sub.add_parser("custom-model", help="GluonCV's custom FPN model (custom_mask_rcnn_fpn) "
                            "on --network, with the model's settings as flags")
    for key, (kind, default) in CUSTOM_MODEL_FLAGS.items():
        names = ["--" + key.replace("_", "-")]
        if key == "num_box_head_dense_filters":
            names.append("--num_box_head_dense_filters")  # GluonCV spells this one with underscores
        if kind is None:
            custom.add_argument(*names, dest="custom_" + key, action="store_true")
        else:
            custom.add_argument(*names, dest="custom_" + key, type=kind, default=default)


# preset entries that change parameter shapes
WIDTH_KEYS = ("rpn_channels", "fpn_channels", "box_hidden", "mask_channels")


def _checkpoint_architecture(pretrained):
    """Network flags of a training checkpoint named by ``--pretrained PREFIX`` (else {})."""
    saved = checkpoint_args(pretrained) or {}
    keys = ("network", "use_fpn", "norm") + ARCHITECTURE_KEYS
    return {key: saved[key] for key in keys if saved.get(key) is not None}


def apply_recipe(args):
    """Complete parsed flags: unset ones take the dataset's recipe (and a ``--pretrained``
    checkpoint's architecture), the splits and batch size get their defaults, and the
    synthetic dataset is written if it is missing. Returns ``args``."""
    coco = args.dataset == "coco"
    defaults = recipe(args.dataset, args.tiny)
    defaults.update(_checkpoint_architecture(args.pretrained))
    images_per_device = defaults.pop("images_per_device")  # no flag of its own: --batch-size
    managed_root = args.dataset_root is None  # the synthetic set at the default root is ours to rewrite
    _check_backbone_file(args)
    if args.pretrained and checkpoint_args(args.pretrained) is None:
        # GluonCV's weights (True or a .params file): the recipe's narrow widths would not fit
        # them, and its trainable BatchNorm (for training from scratch) would not suit them
        for key in WIDTH_KEYS + ("norm",):
            defaults.pop(key, None)
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.train_split = args.train_split or ("train2017" if coco else "train")
    args.val_split = args.val_split or ("val2017" if coco else "val")
    if args.pretrained in ("True", "true", "1"):
        args.pretrained = True
    if args.norm_layer:  # GluonCV's flag: 'bn' and 'syncbn' both mean SyncBatchNorm
        args.norm = "syncbn"
    if args.disable_hybridization:
        args.hybridize = False
    if args.wd is None:
        args.wd = 1e-4
    if args.dataset == "synthetic":
        _ensure_synthetic(args, managed_root)
    if args.batch_size is None:
        args.batch_size = device_count(args) * images_per_device
    return args


def _check_backbone_file(args):
    """``--pretrained-base FILE``: the file must exist, and it means ImageNet weights are used."""
    if not getattr(args, "pretrained_base", None):
        return
    if args.no_pretrained_base:
        raise UserError("--pretrained-base %s and --no-pretrained-base contradict each other: "
                        "give one" % args.pretrained_base)
    if not os.path.isfile(args.pretrained_base):
        raise UserError("--pretrained-base %s: no such file" % args.pretrained_base)
    args.no_pretrained_base = False  # before the recipe: the file wins over its default


def _gpu_ids(args):
    return _parse_gpu_ids(args.gpus)


def _parse_gpu_ids(gpus):
    try:
        return [int(i) for i in gpus.split(",") if i.strip()]
    except ValueError:
        raise UserError("--gpus %r: give comma-separated GPU ids (0,1,2,3), or '' for CPU"
                        % gpus) from None


def device_count(args):
    """How many devices ``--gpus`` / ``--cpu-contexts`` name (without checking the GPUs exist)."""
    return len(_gpu_ids(args)) if args.gpus.strip() else max(1, args.cpu_contexts)


def contexts(args):
    """Device list: ``--gpus 0,1`` -> GPUs; ``--gpus ''`` -> CPU, split into ``--cpu-contexts``.

    Raises :class:`~gluon_maskrcnn.errors.UserError` for GPUs this MXNet cannot use.
    """
    if args.gpus.strip():
        return gpu_contexts(args.gpus)
    return [mx.cpu(i) for i in range(max(1, args.cpu_contexts))]


def add_device_flag(parser):
    """``--gpus`` of the inference scripts (evaluate, demo, export)."""
    parser.add_argument("--gpus", default="", help="GPU id to run on (the first one of a list); "
                        "'' (the default) runs on CPU")


def gpu_contexts(gpus, purpose="train"):
    """The GPUs of a ``--gpus`` list (``'0,1'``), checked against this MXNet and machine;
    raises :class:`~gluon_maskrcnn.errors.UserError` naming the flag."""
    ids = _parse_gpu_ids(gpus)
    available = mx.context.num_gpus()
    if available == 0:
        raise UserError("--gpus %s: this MXNet has no GPU support (the CPU wheel, or no CUDA "
                        "device): install the CUDA build (pip install -e \".[cu112]\") or "
                        "pass --gpus '' to %s on CPU" % (gpus, purpose))
    missing = [i for i in ids if i >= available]
    if missing:
        raise UserError("--gpus %s: GPU %s does not exist (this machine has %d)"
                        % (gpus, ",".join(map(str, missing)), available))
    return [mx.gpu(i) for i in ids]


def inference_context(gpus):
    """The device of the inference scripts' ``--gpus``: the first GPU listed, or ``cpu()``
    for ``''``."""
    return gpu_contexts(gpus, "run")[0] if gpus.strip() else mx.cpu()


def _ensure_synthetic(args, managed_root):
    """Write the synthetic dataset: if missing, and at the default root also if it was made with
    other sizes (a folder given with --dataset-root is only ever written when it is empty)."""
    from ..data.synthetic import ensure_synthetic_coco, write_synthetic_coco

    marker = os.path.join(args.dataset_root, "annotations", "instances_%s.json" % args.val_split)
    if managed_root:
        wrote = ensure_synthetic_coco(args.dataset_root, args.synthetic_train, args.synthetic_val)
    elif not os.path.exists(marker):
        write_synthetic_coco(args.dataset_root, args.synthetic_train, args.synthetic_val)
        wrote = True
    else:
        wrote = False
    if wrote:
        logger.info("wrote the synthetic dataset (%d train, %d val images) to %s",
                    args.synthetic_train, args.synthetic_val, args.dataset_root)


def training_args(argv=(), **flags):
    """The namespace :func:`~gluon_maskrcnn.engine.trainer.fit` takes, built from Python.

    ``flags`` are the script's flags by keyword (``use_fpn=True`` is ``--use-fpn``,
    ``gpus=""`` is ``--gpus ''``); ``None`` leaves a flag unset, and so does ``False`` except for
    on/off flags (``hybridize=False`` is ``--no-hybridize``). Unset flags take
    the dataset's defaults, exactly as ``scripts/train_mask_rcnn.py`` does, and the synthetic
    dataset is written if it is missing.

    >>> args = training_args(dataset="synthetic", gpus="", epochs=2)  # doctest: +SKIP
    """
    argv = list(argv)
    for key, value in flags.items():
        name = key.replace("_", "-")
        if value is False and key in ON_OFF_FLAGS:
            argv.append("--no-" + name)
        if value is None or value is False:
            continue
        argv.append("--" + name)
        if value is not True:
            argv.append(str(value))
    return apply_recipe(build_parser().parse_args(argv))

