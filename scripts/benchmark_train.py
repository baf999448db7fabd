"""Seconds per training iteration, ours vs GluonCV's own training step, same weights, one image.

    OMP_NUM_THREADS=2 python scripts/benchmark_train.py
"""
import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))

from gluon_maskrcnn.benchmark_train import run_train_benchmark  # noqa: E402
from gluon_maskrcnn.benchmark import add_torchvision_arguments, torch_python  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["mask_rcnn_fpn_resnet50_v1b_coco", "mask_rcnn_resnet50_v1b_coco"])
    p.add_argument("--short", type=int, default=600)
    p.add_argument("--max-size", type=int, default=1000)
    add_torchvision_arguments(p)
    args = p.parse_args()
    run_train_benchmark(args.models, args.short, args.max_size,
                        torch_python=torch_python(args))


if __name__ == "__main__":
    main()
