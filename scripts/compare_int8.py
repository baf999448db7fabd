"""int8 against float32 on zoo names: how many of the float32 detections int8 reproduces.

    OMP_NUM_THREADS=2 python scripts/compare_int8.py
    OMP_NUM_THREADS=2 python scripts/compare_int8.py --names mask_rcnn_resnet50_v1b_coco --calib-mode entropy

Random weights with BatchNorm statistics calibrated on an image (see
gluon_maskrcnn/benchmarks/int8_agreement.py); int8 calibrated on --num-calib noise images and
compared on --num-test others: the share of the float32 top 100 detections (and of those
scoring at least 0.5) that int8 has with the same class and box IoU at least 0.9.
"""
import argparse

from gluon_maskrcnn.benchmarks.int8_agreement import compare_int8
from gluon_maskrcnn.errors import run_main
from gluon_maskrcnn.quantization import CALIB_MODES


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="+", default=["mask_rcnn_fpn_resnet50_v1b_coco", "mask_rcnn_resnet50_v1b_coco"])
    parser.add_argument("--size", type=int, nargs=2, default=(384, 512), help="height width")
    parser.add_argument("--num-calib", type=int, default=8)
    parser.add_argument("--num-test", type=int, default=4)
    parser.add_argument("--calib-mode", default="naive", choices=CALIB_MODES)
    parser.add_argument("--granularity", default="tensor-wise", choices=["tensor-wise", "channel-wise"])
    return parser


def main():
    args = build_parser().parse_args()
    compare_int8(args.names, tuple(args.size), args.num_calib, args.num_test, args.calib_mode, args.granularity)


if __name__ == "__main__":
    run_main(main)
