"""ONNX Runtime against MXNet on zoo names: top-100 detections and masks of the same network.

    OMP_NUM_THREADS=2 python scripts/compare_onnx.py
    OMP_NUM_THREADS=2 python scripts/compare_onnx.py --names mask_rcnn_fpn_resnet50_v1b_coco

Random weights with BatchNorm statistics calibrated on an image (see
gluon_maskrcnn/benchmarks/onnx_equality.py); needs pip install .[onnx].
"""
import argparse

from gluon_maskrcnn.benchmarks.onnx_equality import compare_names
from gluon_maskrcnn.errors import run_main
from gluon_maskrcnn.model_zoo import get_model_list


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="+", default=[n for n in get_model_list() if n != "custom_mask_rcnn_fpn"])
    parser.add_argument("--size", type=int, nargs=2, default=(384, 512), help="height width")
    return parser


def main():
    args = build_parser().parse_args()
    compare_names(args.names, tuple(args.size))


if __name__ == "__main__":
    run_main(main)
