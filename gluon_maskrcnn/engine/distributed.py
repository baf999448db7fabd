"""One interface over the engines that spread training: a kvstore (local, device, nccl,
dist_sync, dist_device_sync) or Horovod."""
import mxnet as mx
from mxnet import gluon

__all__ = ["Distributed", "PerTensorSGD", "make_optimizer"]


class Distributed:
    """Rank, worker count, trainer construction and parameter broadcast for one engine."""

    def __init__(self, kv_store="device", horovod=False):
        self.horovod = horovod
        self.kv = None
        if horovod:
            # (gluon_maskrcnn.ops stays off in this process: see ops.load)
            import horovod.mxnet as hvd

            hvd.init()
            self._hvd = hvd
            self.rank, self.num_workers = hvd.rank(), hvd.size()
        elif kv_store.startswith("dist"):
            self.kv = mx.kv.create(kv_store)
            self.rank, self.num_workers = self.kv.rank, self.kv.num_workers
        else:
            self.kv = kv_store
            self.rank, self.num_workers = 0, 1

    @property
    def is_root(self):
        return self.rank == 0

    def trainer(self, params, optimizer, optimizer_params):
        # Keyed by position, so in the network's order: gluon.Trainer (and Horovod's) sort a dict
        # by key, and parameter names carry global counters (dense9 vs dense10), so optimizer
        # states saved by one network instance would land on other parameters of the next one.
        ordered = list(params.values()) if hasattr(params, "values") else list(params)
        params = {"%06d" % i: param for i, param in enumerate(ordered)}
        optimizer = make_optimizer(optimizer, optimizer_params, params)
        if self.horovod:
            return self._hvd.DistributedTrainer(params, optimizer)
        # gradients go through the kvstore, updates run on every worker: identical updates, and
        # the optimizer state stays local, so checkpoints can save it
        update_on_kvstore = False if self.num_workers > 1 else None
        return gluon.Trainer(params, optimizer, kvstore=self.kv, update_on_kvstore=update_on_kvstore)

    def step_scale(self, local_parts):
        """What ``trainer.step`` divides gradients by: Horovod averages over workers itself."""
        return local_parts if self.horovod else local_parts * self.num_workers

    def broadcast_parameters(self, net):
        """Make every worker start from rank 0's parameters (a dist kvstore does it at init)."""
        if self.horovod:
            self._hvd.broadcast_parameters(net.collect_params(), root_rank=0)

    def close(self):
        if isinstance(self.kv, mx.kvstore.KVStore) and self.num_workers > 1:
            self.kv._barrier()


class PerTensorSGD(mx.optimizer.SGD):
    """SGD with momentum that updates each dense tensor with its own ``sgd_mom_update``.

    MXNet's SGD always goes through the fused ``multi_sgd_mom_update``, which on CPU runs about
    1.8x slower than ``sgd_mom_update`` on the same tensor; the results are bit-identical.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.aggregate_num = 0  # the updater then hands over one tensor per call

    def _update_impl(self, indices, weights, grads, states, multi_precision=False):
        single = not isinstance(indices, (tuple, list))
        if not single or multi_precision or states is None or weights.stype != "default" \
                or grads.stype != "default":
            return super()._update_impl(indices, weights, grads, states, multi_precision)
        self._update_count(indices)
        kwargs = dict(lr=self._get_lr(indices), wd=self._get_wd(indices), momentum=self.momentum,
                      rescale_grad=self.rescale_grad)
        if self.clip_gradient:
            kwargs["clip_gradient"] = self.clip_gradient
        mx.nd.sgd_mom_update(weights, grads, states, out=weights, **kwargs)
        return None


def make_optimizer(name, optimizer_params, params):
    """The optimizer; on CPU, plain SGD with momentum is :class:`PerTensorSGD` (GPUs keep
    MXNet's fused update)."""
    contexts = {ctx.device_type for param in params.values() for ctx in param.list_ctx()}
    if name == "sgd" and contexts == {"cpu"} and optimizer_params.get("momentum"):
        return PerTensorSGD(**optimizer_params)
    return mx.optimizer.create(name, **optimizer_params)
