"""One interface over the engines that spread training: a kvstore (local, device, nccl,
dist_sync, dist_device_sync) or Horovod."""
import mxnet as mx
from mxnet import gluon

__all__ = ["Distributed"]


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
        if self.horovod:
            return self._hvd.DistributedTrainer(params, optimizer, optimizer_params)
        # gradients go through the kvstore, updates run on every worker: identical updates, and
        # the optimizer state stays local, so checkpoints can save it
        update_on_kvstore = False if self.num_workers > 1 else None
        return gluon.Trainer(params, optimizer, optimizer_params, kvstore=self.kv,
                             update_on_kvstore=update_on_kvstore)

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
