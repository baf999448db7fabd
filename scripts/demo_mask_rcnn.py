"""Draw a model's masks, boxes and labels on images and save PNGs.

    python scripts/demo_mask_rcnn.py --model runs/mask_rcnn-best --images a.jpg b.jpg --out demo/
"""
import argparse
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))

from gluon_maskrcnn.data.coco import read_image  # noqa: E402
from gluon_maskrcnn.engine.cli import add_device_flag, inference_context  # noqa: E402
from gluon_maskrcnn.engine.loading import load_model  # noqa: E402
from gluon_maskrcnn.inference import predict_images  # noqa: E402
from gluon_maskrcnn.viz import draw_instances, save_png  # noqa: E402
from gluon_maskrcnn.errors import run_main  # noqa: E402


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="zoo name or checkpoint prefix")
    p.add_argument("--params", default=None)
    p.add_argument("--images", nargs="+", required=True)
    p.add_argument("--out", default="demo")
    p.add_argument("--threshold", type=float, default=0.5)
    add_device_flag(p)
    return p


def main():
    args = build_parser().parse_args()
    net = load_model(args.model, args.params, ctx=inference_context(args.gpus))
    for path in args.images:
        image = read_image(path)
        result = predict_images(net, [image], score_thresh=args.threshold)[0]
        drawn = draw_instances(image, result["boxes"], result["labels"], result["scores"], result["masks"], net.classes)
        out = os.path.join(args.out, os.path.splitext(os.path.basename(path))[0] + ".png")
        save_png(out, drawn)
        print("%s: %d instances -> %s" % (path, len(result["labels"]), out))


if __name__ == "__main__":
    sys.exit(run_main(main))
