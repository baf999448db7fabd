"""Export a model for deployment: MXNet's MODEL-symbol.json, MODEL-0000.params and
MODEL-meta.json, or one ONNX file MODEL.onnx (--format onnx).

    python scripts/export_mask_rcnn.py --model runs/mask_rcnn-best --out exported/mask_rcnn
    python scripts/export_mask_rcnn.py --model runs/mask_rcnn-best --out exported/mask_rcnn --format onnx

Load either back with ``gluon_maskrcnn.export.load_exported`` (the prefix, or the .onnx file),
or pass it to ``gluon_maskrcnn.predict`` and scripts/demo_mask_rcnn.py. The ONNX file takes any
batch, height and width; it needs ``pip install .[onnx]``.
"""
import argparse
import sys

from gluon_maskrcnn.engine.cli import add_device_flag, inference_context
from gluon_maskrcnn.engine.loading import load_model
from gluon_maskrcnn.export import export_model
from gluon_maskrcnn.errors import run_main


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="zoo name or checkpoint prefix")
    p.add_argument("--params", default=None, help=".params file for a zoo name")
    p.add_argument("--out", required=True, help="output prefix")
    p.add_argument("--size", type=int, nargs=2, default=None,
                   help="height width to trace with (default: the model's short side, square)")
    p.add_argument("--format", choices=("mxnet", "onnx"), default="mxnet",
                   help="mxnet: symbol, params and meta files; onnx: one .onnx file (opset 13)")
    add_device_flag(p)
    return p


def main():
    args = build_parser().parse_args()
    net = load_model(args.model, args.params, ctx=inference_context(args.gpus))
    size = args.size or (net.short, net.short)
    for name in export_model(net, args.out, size, format=args.format):
        print("wrote", name)


if __name__ == "__main__":
    sys.exit(run_main(main))
