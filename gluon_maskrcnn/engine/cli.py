"""Command-line arguments of ``scripts/train_mask_rcnn.py`` (GluonCV's flags plus ours)."""
import argparse
import os

__all__ = ["build_parser", "prepare_dataset", "SYNTHETIC_DEFAULTS", "COCO_DEFAULTS"]

# Flags left unset take these values. The synthetic set trains a small FPN R18 from scratch on
# CPU (offline: no ImageNet weights) in minutes; the COCO set is GluonCV's schedule.
COCO_DEFAULTS = dict(network="resnet50_v1b", use_fpn=False, epochs=26, lr_decay_epoch="17,23", norm="frozen",
                     lr_warmup=1000, val_interval=1, no_pretrained_base=False, train_all=False)
SYNTHETIC_DEFAULTS = dict(network="resnet18_v1b", use_fpn=True, epochs=14, lr=0.01, lr_decay_epoch="11,13",
                          lr_warmup=100, val_interval=7, no_pretrained_base=True, train_all=True,
                          short=256, max_size=320, rpn_channels=256, num_sample=128,
                          rpn_train_pre_nms=2000, rpn_train_post_nms=512, rpn_test_pre_nms=1000,
                          rpn_test_post_nms=200, max_dets=50, num_workers=2, clip_gradient=5.0,
                          dataset_root="data/synthetic", save_prefix="runs/synthetic/mask_rcnn",
                          norm="bn")


def build_parser():
    p = argparse.ArgumentParser(description="Train Mask R-CNN.")
    a = p.add_argument
    a("--network", default=None, help="resnet18_v1b, resnet50_v1b or resnet101_v1d")
    a("--use-fpn", action="store_true", default=None, help="FPN heads instead of C4")
    a("--dataset", default="coco", choices=["coco", "synthetic", "custom"])
    a("--dataset-root", default=None, help="default: ~/.mxnet/datasets/coco, or data/synthetic")
    a("--train-split", default=None, help="default: train2017 (coco) or train")
    a("--val-split", default=None, help="default: val2017 (coco) or val")
    a("--gpus", default="0", help="comma-separated GPU ids; '' trains on CPU")
    a("--cpu-contexts", type=int, default=1, help="with --gpus '': split each batch over N CPU contexts")
    a("--epochs", type=int, default=None)
    a("--batch-size", type=int, default=None, help="images per iteration on this worker (default: 1 per device)")
    a("--lr", type=float, default=None, help="default: 0.01 x total batch / 8, as GluonCV")
    a("--lr-mode", default="step", choices=["step", "cosine"])
    a("--lr-decay", type=float, default=0.1)
    a("--lr-decay-epoch", default=None)
    a("--lr-warmup", type=int, default=None, help="warm-up iterations")
    a("--wd", type=float, default=1e-4)
    a("--momentum", type=float, default=0.9)
    a("--clip-gradient", type=float, default=None, help="clip each device's gradient global norm")
    a("--kv-store", default="device", help="local, device, nccl, dist_sync, dist_device_sync")
    a("--horovod", action="store_true")
    a("--num-workers", type=int, default=None, help="DataLoader worker processes (default 4)")
    a("--save-prefix", default=None, help="default runs/mask_rcnn")
    a("--resume", default="", help="checkpoint prefix, e.g. runs/mask_rcnn-last")
    a("--start-epoch", type=int, default=0)
    a("--val-interval", type=int, default=None)
    a("--log-interval", type=int, default=20)
    a("--seed", type=int, default=233)
    a("--no-pretrained-base", action="store_true", default=None)
    a("--pretrained", default="", help="start from a zoo model's COCO weights (True) or a .params file")
    a("--train-all", action="store_true", default=None,
      help="train every parameter (default: the preset's patterns)")
    a("--norm", default=None, choices=["frozen", "bn"], help="frozen BatchNorm (GluonCV) or trainable BatchNorm")
    a("--hybridize", action="store_true")
    a("--static-alloc", action="store_true")
    a("--quiet", action="store_true")
    small = p.add_argument_group("model size overrides (defaults: the zoo preset)")
    for flag in ("short", "max-size", "rpn-channels", "num-sample", "rpn-train-pre-nms",
                 "rpn-train-post-nms", "rpn-test-pre-nms", "rpn-test-post-nms", "max-dets"):
        small.add_argument("--" + flag, type=int, default=None)
    a("--synthetic-train", type=int, default=64, help="synthetic dataset: training images")
    a("--synthetic-val", type=int, default=16, help="synthetic dataset: validation images")
    return p


def prepare_dataset(args):
    """Fill unset flags from the dataset's defaults; write the synthetic dataset if missing."""
    coco = args.dataset == "coco"
    defaults = dict(COCO_DEFAULTS, dataset_root=os.path.expanduser("~/.mxnet/datasets/coco"),
                    save_prefix="runs/mask_rcnn", num_workers=4, clip_gradient=-1.0)
    if args.dataset == "synthetic":
        defaults.update(SYNTHETIC_DEFAULTS)
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.train_split = args.train_split or ("train2017" if coco else "train")
    args.val_split = args.val_split or ("val2017" if coco else "val")
    if args.pretrained in ("True", "true", "1"):
        args.pretrained = True
    if args.dataset == "synthetic":
        marker = os.path.join(args.dataset_root, "annotations", "instances_%s.json" % args.val_split)
        if not os.path.exists(marker):
            from ..data.synthetic import write_synthetic_coco

            write_synthetic_coco(args.dataset_root, args.synthetic_train, args.synthetic_val)
    if args.batch_size is None:
        args.batch_size = max(1, len([g for g in args.gpus.split(",") if g.strip()]) or args.cpu_contexts)
    return args
