"""
5. Distributed training
=======================

Train one model on several machines, on an engine MXNet users already run: MXNet's
parameter server (``dist_sync`` kvstore, ps-lite) or Horovod.

In both, every worker takes its slice of each global batch, gradients are summed over all
workers at each step, and one global step computes the same update as one device with the
whole batch would (with frozen BatchNorm). After every epoch the workers compare a digest of
every parameter and stop if any differ. Each worker predicts its shard of the val split, and
rank 0 scores the whole split, logs and checkpoints. The learning rate follows the total batch
(all devices of all workers).

**Parameter server**, on several machines: start the same command on each with any launcher
that sets MXNet's ``DMLC_*`` variables (``DMLC_ROLE``; ``DMLC_PS_ROOT_URI`` and
``DMLC_PS_ROOT_PORT``, the scheduler's address; ``DMLC_NUM_WORKER``, ``DMLC_NUM_SERVER``)::

    python scripts/train_mask_rcnn.py --kv-store dist_sync --dataset coco \\
        --dataset-root ~/.mxnet/datasets/coco --network resnet50_v1b --use-fpn --gpus 0,1,2,3

On one machine, ``scripts/launch.py`` starts a scheduler, the servers and the workers over
loopback (MXNet's own ``tools/launch.py`` does not run on Python 3.11)::

    python scripts/launch.py -n 2 -s 1 -- python scripts/train_mask_rcnn.py \\
        --kv-store dist_sync --dataset synthetic --gpus ''

**Horovod**, built with ``HOROVOD_WITH_MXNET=1 HOROVOD_WITH_GLOO=1``::

    horovodrun -np 8 -H host1:4,host2:4 python scripts/train_mask_rcnn.py --horovod \\
        --dataset coco --network resnet50_v1b --use-fpn --gpus 0,1,2,3

Each Horovod process trains on its local rank's entry of ``--gpus`` (local rank 2 on ``host1``
takes ``gpu(2)``), so ``--gpus`` lists one GPU per process of a machine.

This page runs the parameter-server launch for real, on this machine: one server and two
workers on loopback, one short epoch each, and checks that both workers end with the same
parameters.
"""
import os
import sys

import mxnet as mx
import numpy as np

from gluon_maskrcnn.engine import training_args
from gluon_maskrcnn.engine.launcher import launch_local

# %%
# A worker
# --------
# Each worker runs the ordinary training entry point; the ``dist_sync`` kvstore makes it one of
# several. This one, ``docs/examples/dist_worker.py``, also saves its final parameters under
# its rank, to compare them below. (BatchNorm is frozen here, GluonCV's COCO setting; with
# trainable BatchNorm the workers' running statistics are averaged at each epoch's end.)
#
# .. literalinclude:: ../examples/dist_worker.py
#    :language: python
#    :lines: 8-
training_args(dataset="synthetic", gpus="", tiny=True)  # writes the dataset once, up front
worker = os.path.abspath(os.path.join("..", "examples", "dist_worker.py"))
out = os.path.abspath(os.path.join("runs", "distributed"))
os.makedirs(out, exist_ok=True)

# %%
# Launch
# ------
# :func:`~gluon_maskrcnn.engine.launcher.launch_local` is what ``scripts/launch.py`` calls: a
# scheduler, one server and two workers, each a process with the ``DMLC_*`` environment, all
# on 127.0.0.1. Their output is prefixed with their role.
log = os.path.join(out, "launch.log")
with open(log, "w") as sink:
    code = launch_local([sys.executable, worker, out], num_workers=2, num_servers=1,
                        env={"OMP_NUM_THREADS": "1"}, timeout=600, sink=sink)
with open(log) as f:
    print("".join(line for line in f if line.startswith("[worker")))
assert code == 0, "the launch failed, see %s" % log

# %%
# The two workers agree
# ---------------------
first = mx.nd.load(os.path.join(out, "worker0.params"))
second = mx.nd.load(os.path.join(out, "worker1.params"))
largest = max(float(np.abs(first[k].asnumpy() - second[k].asnumpy()).max()) for k in first)
print("%d parameter arrays; largest difference between the workers: %g" % (len(first), largest))
print("checkpoints written by rank 0 only:", sorted(n for n in os.listdir(out) if n.endswith(".params")
                                                      and n.startswith("mask_rcnn")))
