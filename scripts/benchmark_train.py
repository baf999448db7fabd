"""Seconds per training iteration, ours vs GluonCV's own training step, same weights, one image.

The two run in separate processes that take turns step by step, so both see the same machine.

    OMP_NUM_THREADS=2 python scripts/benchmark_train.py --json docs/benchmarks/train.json
"""
import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))

from gluon_maskrcnn.benchmarks.train import run_train_benchmark  # noqa: E402
from gluon_maskrcnn.benchmarks.inference import add_torchvision_arguments, torch_python  # noqa: E402
from gluon_maskrcnn.benchmarks.report import add_json_argument, write_results  # noqa: E402


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["mask_rcnn_fpn_resnet50_v1b_coco", "mask_rcnn_resnet50_v1b_coco"])
    p.add_argument("--short", type=int, default=600)
    p.add_argument("--max-size", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=2, help="untimed turns of each implementation")
    p.add_argument("--runs", type=int, default=5, help="timed turns of each; the median is reported")
    add_torchvision_arguments(p)
    add_json_argument(p)
    return p


def main():
    args = build_parser().parse_args()
    rows = run_train_benchmark(args.models, args.short, args.max_size, warmup=args.warmup, runs=args.runs,
                               torch_python=torch_python(args))
    write_results(args.json, "train", rows, args)


if __name__ == "__main__":
    main()
