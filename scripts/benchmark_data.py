"""Data pipeline speed: our train transform + RPN targets + batching vs GluonCV's, same images.

    OMP_NUM_THREADS=2 python scripts/benchmark_data.py
"""
import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))

from gluon_maskrcnn.benchmarks.data import run_data_benchmark  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mask_rcnn_fpn_resnet50_v1b_coco")
    p.add_argument("--num-images", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=2)
    args = p.parse_args()
    run_data_benchmark(args.model, args.num_images, batch_size=args.batch_size)


if __name__ == "__main__":
    main()
