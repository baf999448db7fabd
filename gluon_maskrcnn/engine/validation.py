"""Validation loss: the five training losses on a held-out split, leaving the model as it was."""
import numpy as np
from mxnet import autograd

from ..data.batchify import TrainBatchify, split_batch
from ..data.loader import SeededTrainView
from ..data.rpn_targets import RPNTargetGenerator
from ..data.transforms import TrainTransform
from ..modeling.losses import LOSS_NAMES
from .metrics import RunningMean

__all__ = ["validation_losses"]

_RUNNING_STATS = ("running_mean", "running_var")


def validation_losses(net, dataset, cfg, ctx, per_device_batch=1, seed=0):
    """Mean training losses over ``dataset`` (no flip; sampling seeded by ``seed``).

    The forward runs in training mode, which is what defines these losses; trainable
    BatchNorm's running statistics are restored afterwards, so evaluating changes nothing.
    Images are taken ``per_device_batch`` at a time on ``ctx``; a last incomplete group is left
    out. Returns a dict of the five losses and their ``total``.
    """
    view = SeededTrainView(dataset, TrainTransform(cfg["short"], cfg["max_size"], flip_prob=0.0), seed)
    batchify = TrainBatchify(RPNTargetGenerator.from_preset(cfg), sampled_rpn=True,
                             roi_key_count=net.sampler.key_count)  # every random choice seeded
    saved = {name: p.data(ctx).copy() for name, p in net.collect_params().items()
             if name.endswith(_RUNNING_STATS)}
    mean = RunningMean()
    try:
        with autograd.train_mode():
            for first in range(0, len(view) - per_device_batch + 1, per_device_batch):
                batch = batchify([view[i] for i in range(first, first + per_device_batch)])
                losses = net.losses(*split_batch(batch, [ctx])[0])
                mean.update({name: float(loss.asscalar()) for name, loss in zip(LOSS_NAMES, losses)})
    finally:
        for name, value in saved.items():
            net.collect_params()[name].data(ctx)[:] = value
    values = mean.means()
    values["total"] = float(np.sum([values.get(name, np.nan) for name in LOSS_NAMES]))
    return values
