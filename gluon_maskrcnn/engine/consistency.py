"""Repeat a two-worker ``dist_sync`` training on loopback and count the runs whose workers end
with identical parameters (``scripts/check_dist_consistency.py``).

Each run trains the ``--tiny`` recipe for one epoch of four synthetic images, one image per
worker and step, with frozen BatchNorm. The trainer itself compares a digest of every
parameter's bytes across the workers after each epoch (``fit`` raises
:class:`~gluon_maskrcnn.engine.trainer.WorkersDivergedError` when they differ), so a run counts
as identical when it exits 0 and reports the parameters identical.
"""
import os
import sys
import tempfile
import time

from .launcher import launch_local

__all__ = ["repeat_dist_sync", "WORKER_FLAGS"]

IDENTICAL = "parameters identical on all"
WORKER_FLAGS = dict(dataset="synthetic", tiny=True, gpus="", synthetic_train=4, synthetic_val=2,
                    epochs=1, val_interval=0, batch_size=1, num_workers=0, norm="frozen",
                    kv_store="dist_sync", quiet=True, hybridize=False)


def repeat_dist_sync(runs, num_workers=2, workdir=None, sink=sys.stdout):
    """Run the worker ``runs`` times; returns the list of (exit code, identical, seconds)."""
    from ..data.synthetic import ensure_synthetic_coco

    workdir = workdir or tempfile.mkdtemp(prefix="dist_consistency_")
    root = os.path.join(workdir, "data")
    ensure_synthetic_coco(root, WORKER_FLAGS["synthetic_train"], WORKER_FLAGS["synthetic_val"])
    results = []
    for index in range(runs):
        log = os.path.join(workdir, "run%03d.log" % index)
        command = [sys.executable, "-m", "gluon_maskrcnn.engine.consistency", root,
                   os.path.join(workdir, "run%03d" % index, "mask_rcnn")]
        start = time.time()
        with open(log, "w") as out:
            code = launch_local(command, num_workers, env={"OMP_NUM_THREADS": "1"}, timeout=600, sink=out)
        identical = code == 0 and IDENTICAL in open(log).read()
        results.append((code, identical, time.time() - start))
        sink.write("run %d: exit %d, %s, %.1f s (%s)\n" % (index + 1, code, "identical" if identical
                                                          else "DIFFERENT", results[-1][2], log))
        sink.flush()
    return results


def _worker(root, prefix):
    import logging

    from .cli import training_args
    from .trainer import fit

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fit(training_args(dataset_root=root, save_prefix=prefix, **WORKER_FLAGS))


if __name__ == "__main__":
    _worker(*sys.argv[1:3])
