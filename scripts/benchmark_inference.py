"""Time our Mask R-CNN against GluonCV's with the same weights, in the same run.

    OMP_NUM_THREADS=2 python scripts/benchmark_inference.py
    OMP_NUM_THREADS=2 python scripts/benchmark_inference.py --onnx --models mask_rcnn_fpn_resnet50_v1b_coco
    OMP_NUM_THREADS=2 python scripts/benchmark_inference.py --onnx --json docs/benchmarks/inference.json
"""
import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))

from gluon_maskrcnn.benchmarks.inference import add_torchvision_arguments, run_inference_benchmark, torch_python  # noqa: E402
from gluon_maskrcnn.benchmarks.report import add_json_argument, write_results  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["mask_rcnn_fpn_resnet50_v1b_coco",
                                                        "mask_rcnn_resnet50_v1b_coco"])
    parser.add_argument("--sizes", nargs="+", default=["600x800", "800x1216"])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["gluoncv", "gluoncv100", "ours"])
    parser.add_argument("--onnx", action="store_true",
                        help="also time our graph exported to ONNX and run by ONNX Runtime (pip install .[onnx])")
    parser.add_argument("--int8", action="store_true",
                        help="also time our network quantized to int8 (CPU, oneDNN); the CPU's int8 "
                             "instruction set is printed beside the figures")
    add_torchvision_arguments(parser)
    add_json_argument(parser)
    return parser


def main():
    args = build_parser().parse_args()
    for flag in ("onnx", "int8"):
        if getattr(args, flag) and flag not in args.variants:
            args.variants.append(flag)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    rows = run_inference_benchmark(args.models, sizes, args.warmup, args.runs, args.variants,
                                   torch_python=torch_python(args))
    write_results(args.json, "inference", rows, args)


if __name__ == "__main__":
    main()
