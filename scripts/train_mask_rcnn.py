"""Train Mask R-CNN: ``python scripts/train_mask_rcnn.py --gpus 0,1,2,3 --use-fpn``."""
import logging
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))  # MXNet uses half the cores otherwise

from gluon_maskrcnn.engine.cli import build_parser, apply_recipe  # noqa: E402
from gluon_maskrcnn.engine.preemption import PREEMPTED_EXIT_CODE  # noqa: E402
from gluon_maskrcnn.engine.trainer import NonFiniteLossError, TrainingStopped, WorkersDivergedError, fit  # noqa: E402
from gluon_maskrcnn.errors import run_main  # noqa: E402


def main(argv=None):
    args = apply_recipe(build_parser().parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        state = fit(args)
    except NonFiniteLossError as err:
        logging.error("%s", err)
        return 3
    except WorkersDivergedError as err:
        logging.error("%s", err)
        return 4
    except TrainingStopped as err:  # SIGTERM / SIGINT: a scheduler re-runs with --resume auto
        logging.warning("%s", err)
        return PREEMPTED_EXIT_CODE
    metrics = state.get("last_metrics")
    if metrics:
        print("final segm AP %.3f, bbox AP %.3f" % (metrics["segm"]["AP"], metrics["bbox"]["AP"]))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
