"""A distributed worker for tests: one epoch of training, then its parameters to a file.

    dist_worker.py ROOT PREFIX dist_sync|horovod
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from train_helpers import make_args  # noqa: E402

from gluon_maskrcnn.engine.trainer import fit  # noqa: E402

root, prefix, engine = sys.argv[1], sys.argv[2], sys.argv[3]
if engine == "horovod":
    index, flags = os.environ["HOROVOD_RANK"], ["--horovod"]
else:
    index, flags = os.environ["GLUON_MASKRCNN_WORKER_INDEX"], ["--kv-store", "dist_sync"]
args = make_args(root, "%s-w%s" % (prefix, index), "--epochs", "1", "--lr", "0.01", "--norm", "frozen", *flags)
state = fit(args)
state["net"].save_parameters("%s-final-w%s.params" % (prefix, index))
print("rank", state["rank"], "iterations", state["iteration"])
