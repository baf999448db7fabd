"""A ``dist_sync`` training worker: the ordinary training entry point, one short epoch of the
tiny recipe, and a copy of the worker's final parameters named by its rank.

Tutorial 5 launches two of these with one server over loopback::

    python scripts/launch.py -n 2 -s 1 -- python docs/examples/dist_worker.py runs/distributed
"""
import os
import sys

from gluon_maskrcnn.engine import fit, training_args


def main(out):
    args = training_args(dataset="synthetic", gpus="", tiny=True, epochs=1, val_interval=0,
                         kv_store="dist_sync", norm="frozen", quiet=True, log_interval=8,
                         save_prefix=os.path.join(out, "mask_rcnn"))
    state = fit(args)  # every worker runs this; the kvstore makes them one job
    state["net"].save_parameters(os.path.join(out, "worker%d.params" % state["rank"]))
    print("rank %d finished %d iterations" % (state["rank"], state["iteration"]))


if __name__ == "__main__":
    main(sys.argv[1])
