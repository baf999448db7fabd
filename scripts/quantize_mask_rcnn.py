"""Quantize a Mask R-CNN to int8 for CPU inference, calibrated on your own images.

    python scripts/quantize_mask_rcnn.py --model runs/synthetic/mask_rcnn-best --dataset-root data/synthetic \\
        --split train --num-calib 32 --out exported/mask_rcnn_int8 --eval-split val

Writes the int8 model as MXNet symbol files (PREFIX-symbol.json, PREFIX-0000.params and
PREFIX-meta.json), which gm.predict, scripts/demo_mask_rcnn.py and scripts/eval_mask_rcnn.py
take. With --eval-split it prints the float32 and int8 AP side by side.
"""
import argparse
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))

from gluon_maskrcnn.engine.int8 import quantize_command  # noqa: E402
from gluon_maskrcnn.errors import run_main  # noqa: E402
from gluon_maskrcnn.quantization import CALIB_MODES  # noqa: E402


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="zoo name, training checkpoint prefix or exported prefix (float32)")
    p.add_argument("--params", default=None, help=".params file for a zoo name")
    p.add_argument("--dataset-root", required=True, help="COCO-format dataset whose images calibrate")
    p.add_argument("--split", default="train", help="the split whose first --num-calib images calibrate")
    p.add_argument("--num-calib", type=int, default=32)
    p.add_argument("--calib-mode", default="naive", choices=CALIB_MODES)
    p.add_argument("--granularity", default="tensor-wise", choices=["tensor-wise", "channel-wise"],
                   help="one weight scale per layer or per output channel")
    p.add_argument("--portable", action="store_true",
                   help="MXNet's own operators only, so the export loads without gluon_maskrcnn (slower: by "
                        "default ROIAlign and the proposal NMS run gluon_maskrcnn's CPU operators)")
    p.add_argument("--out", required=True, help="prefix of the int8 model's files")
    p.add_argument("--eval-split", default=None, help="also print float32 and int8 AP on this split")
    return p


def main():
    quantize_command(build_parser().parse_args())


if __name__ == "__main__":
    sys.exit(run_main(main))
