"""A dist_sync worker for tests: one epoch of training, then its parameters to a file."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from train_helpers import make_args  # noqa: E402

from gluon_maskrcnn.engine.trainer import fit  # noqa: E402

root, prefix = sys.argv[1], sys.argv[2]
index = os.environ["GLUON_MASKRCNN_WORKER_INDEX"]
args = make_args(root, "%s-w%s" % (prefix, index), "--epochs", "1", "--lr", "0.01", "--kv-store", "dist_sync",
                 "--norm", "frozen")
state = fit(args)
state["net"].save_parameters("%s-final-w%s.params" % (prefix, index))
print("rank", state["rank"], "iterations", state["iteration"])
