"""Validation loss: the five training losses on a held-out split, leaving the model as it was."""
import numpy as np
from mxnet import autograd

from ..data.batchify import TrainBatchify, split_batch
from ..data.loader import SeededTrainView
from ..data.rpn_targets import RPNTargetGenerator
from ..data.transforms import TrainTransform
from ..modeling.losses import LOSS_NAMES
from .distributed import is_statistic
from .metrics import RunningMean

__all__ = ["validation_losses"]

def validation_losses(net, dataset, cfg, ctx, per_device_batch=1, seed=0):
    """Mean training losses over ``dataset`` (no flip; sampling seeded by ``seed``).

    The forward runs in training mode, which is what defines these losses; the norm layers'
    running statistics (BatchNorm's ``running_*``, the FPN norms' ``moving_*``) are restored
    on every device afterwards, so evaluating changes nothing. ``ctx``: a device or the run's
    device list; each batch of ``per_device_batch`` images per device is split over all of them,
    as a training step is, so that SyncBatchNorm's devices all reach its barrier. A last
    incomplete batch is left out. Returns a dict of the five losses and their ``total``.
    """
    devices = list(ctx) if isinstance(ctx, (list, tuple)) else [ctx]
    view = SeededTrainView(dataset, TrainTransform(cfg["short"], cfg["max_size"], flip_prob=0.0), seed)
    batchify = TrainBatchify(RPNTargetGenerator.from_preset(cfg), sampled_rpn=True,
                             roi_key_count=net.sampler.key_count)  # every random choice seeded
    saved = {name: [data.copy() for data in p.list_data()] for name, p in net.collect_params().items()
             if is_statistic(name)}
    batch_size = per_device_batch * len(devices)
    mean = RunningMean()
    try:
        with autograd.train_mode():
            for first in range(0, len(view) - batch_size + 1, batch_size):
                batch = batchify([view[i] for i in range(first, first + batch_size)])
                # every device's forward is queued before any value is read (SyncBN's barrier)
                per_device = [net.losses(*part) for part in split_batch(batch, devices)]
                mean.update({name: float(np.mean([losses[i].asscalar() for losses in per_device]))
                             for i, name in enumerate(LOSS_NAMES)})
    finally:
        for name, copies in saved.items():
            for data, value in zip(net.collect_params()[name].list_data(), copies):
                data[:] = value
    values = mean.means()
    values["total"] = float(np.sum([values.get(name, np.nan) for name in LOSS_NAMES]))
    return values
