"""A distributed worker for tests: training on a synthetic set, then its parameters to a file.

    dist_worker.py ROOT PREFIX dist_sync|horovod [TRAINING FLAGS...]

Without flags, one epoch at lr 0.01 with frozen BatchNorm.

Test hooks (environment):

- ``DELAY_LAST_PULL=SECONDS`` (dist_sync): on rank 0, the pull of the last kvstore key's initial
  weights waits SECONDS behind a slow operator, as a busy engine can make it wait; the first
  gradients' pushpull of that key is free to go first, which is the race
  :func:`gluon_maskrcnn.engine.distributed.pull_initial_weights` closes.
- ``WITHOUT_INITIAL_PULL=1``: leave the kvstore's initialisation to gluon.Trainer's first step,
  as before that function existed.
- ``RECORD_IMAGES=PATH``: append ``epoch index`` of every training image this worker loads to
  ``PATH-wN`` (see ``record_images``).
"""
import logging
import os
import sys
import time

import mxnet as mx

sys.path.insert(0, os.path.dirname(__file__))
from train_helpers import make_args  # noqa: E402

from gluon_maskrcnn.engine import distributed  # noqa: E402
from gluon_maskrcnn.engine.preemption import PREEMPTED_EXIT_CODE  # noqa: E402
from gluon_maskrcnn.engine.trainer import TrainingStopped, fit  # noqa: E402
from gluon_maskrcnn.internals import trainer_params  # noqa: E402


class _SlowCopy(mx.operator.CustomOp):
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def forward(self, is_train, req, in_data, out_data, aux):
        time.sleep(self.seconds)
        self.assign(out_data[0], req[0], in_data[0])


@mx.operator.register("test_slow_copy")
class _SlowCopyProp(mx.operator.CustomOpProp):
    def __init__(self, seconds):
        super().__init__(need_top_grad=False)
        self.seconds = float(seconds)

    def list_outputs(self):
        return ["output"]

    def infer_shape(self, in_shape):
        return in_shape, [in_shape[0]], []

    def create_operator(self, ctx, shapes, dtypes):
        return _SlowCopy(self.seconds)


def delay_last_initial_pull(seconds):
    """Make rank 0's pull of the last key's initial weights wait ``seconds`` in its engine.

    A fault injection: it replaces MXNet's own ``Trainer._init_params`` and ``KVStore.broadcast``,
    the internal steps whose order the race is about, so it has to name them."""
    init_params = mx.gluon.Trainer._init_params
    last = {}

    def counting_init_params(trainer):
        last["key"] = len(trainer_params(trainer)) - 1
        return init_params(trainer)

    def broadcast(kv, key, value, out, priority=0):  # a dist kvstore's broadcast: init, then pull
        kv.init(key, value)
        if kv.rank == 0 and key == last.get("key"):
            # rank 0 pulls into the array it initialised the key from: the pull waits for this
            value[:] = mx.nd.Custom(value, op_type="test_slow_copy", seconds=seconds)
        kv.pull(key, out, priority=priority)

    mx.gluon.Trainer._init_params = counting_init_params
    mx.kvstore.KVStore.broadcast = broadcast


def record_images(path):
    """Append ``epoch index`` to ``path`` for every training image loaded (DataLoader workers
    0: in this process)."""
    from gluon_maskrcnn.data.loader import SeededTrainView

    load = SeededTrainView.__getitem__

    def recording(view, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        with open(path, "a") as f:
            f.write("%d %d\n" % (epoch, index))
        return load(view, key)

    SeededTrainView.__getitem__ = recording


def main():
    if os.environ.get("RECORD_IMAGES"):
        record_images(os.environ["RECORD_IMAGES"] + "-w" + os.environ.get("GLUON_MASKRCNN_WORKER_INDEX",
                                                                           os.environ.get("HOROVOD_RANK", "0")))
    if os.environ.get("DELAY_LAST_PULL"):
        delay_last_initial_pull(float(os.environ["DELAY_LAST_PULL"]))
    if os.environ.get("WITHOUT_INITIAL_PULL"):
        distributed.pull_initial_weights = lambda trainer: None

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root, prefix, engine = sys.argv[1], sys.argv[2], sys.argv[3]
    flags = sys.argv[4:] or ["--epochs", "1", "--lr", "0.01", "--norm", "frozen"]
    if engine == "horovod":
        index, flags = os.environ["HOROVOD_RANK"], flags + ["--horovod"]
    else:
        index, flags = os.environ["GLUON_MASKRCNN_WORKER_INDEX"], flags + ["--kv-store", "dist_sync"]
    try:
        state = fit(make_args(root, "%s-w%s" % (prefix, index), *flags))
    except TrainingStopped as stopped:
        print("stopped:", stopped, flush=True)
        sys.exit(PREEMPTED_EXIT_CODE)
    state["net"].save_parameters("%s-final-w%s.params" % (prefix, index))
    print("rank", state["rank"], "iterations", state["iteration"])


if __name__ == "__main__":
    main()
