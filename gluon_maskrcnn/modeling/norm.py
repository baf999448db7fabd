"""Normalisation layers by name: frozen BatchNorm, BatchNorm, and SyncBatchNorm.

``"frozen"`` keeps ImageNet statistics (GluonCV's default); ``"bn"`` normalises each device's
images by their own statistics; ``"syncbn"`` normalises by the statistics of every device's
images of the step (MXNet's ``SyncBatchNorm``, which runs on several CPU contexts as on GPUs).

GluonCV's FPN is a symbol graph whose SyncBatchNorm layers are MXNet's symbolic operator, with
that operator's defaults (``fix_gamma=True``, ``eps=1e-3``) and statistics named
``moving_mean`` / ``moving_var``; :class:`PyramidNorm` computes the same and keeps those names,
so that GluonCV's parameter files load into ours.
"""
import mxnet as mx
from mxnet import gluon
from mxnet.gluon import nn

__all__ = ["NORMS", "norm_layer", "PyramidNorm"]

NORMS = ("frozen", "bn", "syncbn")


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
