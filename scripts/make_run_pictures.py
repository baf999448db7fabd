"""The README's pictures: the prediction gallery and loss/AP curves of a finished run.

    python scripts/train_mask_rcnn.py --dataset synthetic --gpus ''   # the README's main command
    python scripts/make_run_pictures.py                                # then this

writes docs/_static/readme/predictions.png and curves.png from runs/synthetic/mask_rcnn (its
-best checkpoint and metrics log) and rewrites the README's block between
<!-- run-pictures --> and <!-- /run-pictures --> with captions that state the run's AP.
"""
import argparse
import os

from gluon_maskrcnn.engine.pictures import pictures_markdown, save_run_pictures, update_marked_block
from gluon_maskrcnn.errors import run_main


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/synthetic/mask_rcnn", help="the run's --save-prefix")
    parser.add_argument("--out", default="docs/_static/readme", help="folder of the two PNGs")
    parser.add_argument("--readme", default="README.md", help="markdown file whose block to rewrite ('' for none)")
    parser.add_argument("--count", type=int, default=4, help="val images in the gallery")
    parser.add_argument("--score-thresh", type=float, default=0.7, help="the gallery's lowest score drawn")
    return parser


def main():
    args = build_parser().parse_args()
    pictures = save_run_pictures(args.run, args.out, count=args.count, score_thresh=args.score_thresh)
    print("wrote %s and %s" % (pictures["predictions"], pictures["curves"]))
    if args.readme:
        block = pictures_markdown(pictures, os.path.dirname(os.path.abspath(args.readme)))
        update_marked_block(args.readme, block, "run-pictures")
        print("rewrote the run-pictures block of %s" % args.readme)


if __name__ == "__main__":
    run_main(main)
