"""Convert a checkpoint whose optimizer file is pickled (written before checkpoint format 2)
into the current format, which holds no pickle.

    python scripts/convert_checkpoint.py runs/mask_rcnn-last [runs/mask_rcnn-best ...]

This unpickles each ``PREFIX.states`` once, and unpickling runs whatever code the file carries:
convert only checkpoints you trust (your own). Training refuses pickled checkpoints.
"""
import argparse
import sys

from gluon_maskrcnn.engine.checkpoint import convert_pickled_checkpoint
from gluon_maskrcnn.errors import run_main


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("prefixes", nargs="+", metavar="PREFIX", help="checkpoint prefix (without .json)")
    return p


def main():
    args = build_parser().parse_args()
    for prefix in args.prefixes:
        print("%s: %s" % (prefix, "converted" if convert_pickled_checkpoint(prefix) else "already in the current format"))


if __name__ == "__main__":
    sys.exit(run_main(main))
