"""Train Mask R-CNN: ``python scripts/train_mask_rcnn.py --gpus 0,1,2,3 --use-fpn``."""
import logging
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))  # MXNet uses half the cores otherwise

from gluon_maskrcnn.engine.cli import build_parser, apply_recipe  # noqa: E402
from gluon_maskrcnn.engine.trainer import train_command  # noqa: E402
from gluon_maskrcnn.errors import run_main  # noqa: E402


def main(argv=None):
    args = apply_recipe(build_parser().parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return train_command(args)


if __name__ == "__main__":
    sys.exit(run_main(main))
