"""Normalisation layers by name: frozen BatchNorm, BatchNorm, and SyncBatchNorm.

``"frozen"`` keeps ImageNet statistics (GluonCV's default); ``"bn"`` normalises each device's
images by their own statistics; ``"syncbn"`` normalises by the statistics of every device's
images of the step (MXNet's ``SyncBatchNorm``, which runs on several CPU contexts as on GPUs).

GluonCV's FPN is a symbol graph whose SyncBatchNorm layers are MXNet's symbolic operator, with
that operator's defaults (``fix_gamma=True``, ``eps=1e-3``) and statistics named
``moving_mean`` / ``moving_var``; :class:`PyramidNorm` computes the same and keeps those names,
so that GluonCV's parameter files load into ours.
"""
import os

import mxnet as mx
from mxnet import gluon
from mxnet.gluon import nn

__all__ = ["NORMS", "norm_layer", "PyramidNorm", "CPU_SYNCBN_TEMP_COPIES", "reserve_cpu_temp_space"]

NORMS = ("frozen", "bn", "syncbn")

# Scratch buffers that MXNet's CPU contexts take in turn: enough that no two operators of one
# training step of a zoo model over a few CPU contexts share one (see reserve_cpu_temp_space).
CPU_SYNCBN_TEMP_COPIES = 1024


def reserve_cpu_temp_space(copies=CPU_SYNCBN_TEMP_COPIES):
    """Let SyncBatchNorm run over several CPU contexts without deadlock. Returns the setting.

    MXNet gives each GPU its own scratch (temp-space) buffers, but every CPU context draws from
    one shared ring of ``MXNET_CPU_TEMP_COPY`` buffers (default 4), and an operator holds its
    buffer's engine variable while it runs. A SyncBatchNorm of context 0 waits at its layer's
    barrier for context 1; a convolution of context 0 queued behind it holds the turn on a
    buffer that context 1's convolution before the same barrier needs: neither moves. With a ring
    longer than the operators of one step, no two of them share a buffer. Buffers are allocated
    when first used, each the size its operator asks for. (Extension-library operators, such as
    :mod:`gluon_maskrcnn.ops`, also take MXNet's one CPU parallel-random resource, whose copies
    cost megabytes each: a network that syncs over CPU contexts runs without them.)

    MXNet reads the variable when it first hands out a buffer, so this must run before the
    process's first operator that uses one (the trainer calls it before building the network);
    a larger value already set is kept.
    """
    current = int(os.environ.get("MXNET_CPU_TEMP_COPY", "4"))
    os.environ["MXNET_CPU_TEMP_COPY"] = str(max(current, int(copies)))
    return int(os.environ["MXNET_CPU_TEMP_COPY"])


def norm_layer(kind, num_devices=None):
    """(Gluon layer class, keyword arguments) of a norm kind; (None, {}) for ``"frozen"``.

    ``num_devices``: devices whose images a ``"syncbn"`` layer normalises together (GluonCV's
    ``num_devices``; default 1).
    """
    if kind not in NORMS:
        raise ValueError("unknown norm %r; choose one of %s" % (kind, ", ".join(NORMS)))
    if kind == "frozen":
        return None, {}
    if kind == "bn":
        return nn.BatchNorm, {}
    return mx.gluon.contrib.nn.SyncBatchNorm, {"num_devices": max(1, int(num_devices or 1))}


class PyramidNorm(gluon.HybridBlock):
    """Normalisation of one FPN map as GluonCV's symbolic FPN applies it.

    ``kind`` ``"syncbn"`` is ``contrib.SyncBatchNorm`` with the symbolic operator's defaults
    (gamma fixed at 1, eps 1e-3, momentum 0.9), keyed by the layer's name so that the devices of
    one layer meet; ``"bn"`` is ``BatchNorm`` with the same settings. Parameters: ``gamma``,
    ``beta``, and the statistics ``moving_mean``, ``moving_var``.
    """

    def __init__(self, channels, kind="syncbn", num_devices=1, **kwargs):
        super().__init__(**kwargs)
        if kind not in ("bn", "syncbn"):
            raise ValueError("PyramidNorm needs kind 'bn' or 'syncbn', got %r" % (kind,))
        self._kind, self._num_devices = kind, max(1, int(num_devices or 1))
        with self.name_scope():
            self.gamma = self.params.get("gamma", shape=(channels,), init="ones")
            self.beta = self.params.get("beta", shape=(channels,), init="zeros")
            self.moving_mean = self.params.get("moving_mean", shape=(channels,), init="zeros",
                                               grad_req="null", differentiable=False)
            self.moving_var = self.params.get("moving_var", shape=(channels,), init="ones",
                                              grad_req="null", differentiable=False)

    def hybrid_forward(self, F, x, gamma, beta, moving_mean, moving_var):
        common = dict(eps=1e-3, momentum=0.9, fix_gamma=True, name="fwd")
        if self._kind == "syncbn":
            return F.contrib.SyncBatchNorm(x, gamma, beta, moving_mean, moving_var, key=self.prefix,
                                           ndev=self._num_devices, **common)
        return F.BatchNorm(x, gamma, beta, moving_mean, moving_var, **common)
