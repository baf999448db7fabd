"""One interface over the engines that spread training: a kvstore (local, device, nccl,
dist_sync, dist_device_sync) or Horovod."""
import hashlib
import pickle

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..errors import UserError
from ..internals import init_trainer_kvstore, kvstore_barrier, trainer_params

__all__ = ["Distributed", "PerTensorSGD", "horovod_device", "is_statistic", "STATISTICS", "array_digest", "make_optimizer", "pull_initial_weights", "parameter_digests"]

# kvstore keys of the exchanges between workers, past any trainer's parameter indices: one per
# power-of-two size, so that repeated exchanges reuse the server's arrays
_EXCHANGE_KEY = 1 << 30


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
            self.local_rank, self.local_size = hvd.local_rank(), hvd.local_size()
        elif kv_store.startswith("dist"):
            self.kv = mx.kv.create(kv_store)
            self.rank, self.num_workers = self.kv.rank, self.kv.num_workers
        else:
            self.kv = kv_store
            self.rank, self.num_workers = 0, 1
        self._weights_pulled = False
        self._exchange_keys = set()

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
        # gradients go through the kvstore and come back summed; every device and worker then
        # updates its own copy: identical updates, the summed gradient can be clipped before
        # (Trainer.allreduce_grads, then Trainer.update), and the optimizer state stays local,
        # so checkpoints can save it
        return gluon.Trainer(params, optimizer, kvstore=self.kv, update_on_kvstore=False)

    def allreduce_grads(self, trainer):
        """Sum the gradients over devices and workers (``trainer.allreduce_grads``), the first
        time after every worker has received rank 0's initial weights."""
        if not self._weights_pulled and isinstance(self.kv, mx.kvstore.KVStore):
            pull_initial_weights(trainer)
        self._weights_pulled = True
        trainer.allreduce_grads()

    def differing_parameters(self, net):
        """{rank: names of its parameters that differ from rank 0's}, compared by a digest of
        each parameter's bytes; {} when all agree. Every worker must call it at the same point."""
        if self.num_workers == 1:
            return {}
        return self._differing(*parameter_digests(net))

    def _differing(self, names, digests):
        """{rank: the ``names`` whose digests (P, 8) differ from rank 0's} (collective)."""
        slots = np.zeros((self.num_workers,) + digests.shape, np.float32)
        slots[self.rank] = digests
        everyone = self._sum_over_workers(mx.nd.array(slots.reshape(-1))).asnumpy()
        everyone = everyone.reshape(slots.shape)  # (W*P*8,) -> (W, P, 8)
        differing = {}
        for rank in range(1, self.num_workers):
            apart = np.any(everyone[rank] != everyone[0], axis=1)  # (P,)
            if apart.any():
                differing[rank] = [name for name, differs in zip(names, apart) if differs]
        return differing

    def average_statistics(self, net):
        """Give every device of every worker the mean of the norm layers' running statistics
        (trainable BatchNorm updates them from each device's own images), so that what is
        evaluated and saved does not depend on one device's shard. Statistics that already
        agree everywhere (frozen BatchNorm, SyncBatchNorm) are left bit for bit as they are.
        Every worker must call it at the same point. Returns the names averaged."""
        stats = [(name, param) for name, param in sorted(net.collect_params().items()) if is_statistic(name)]
        if not stats:
            return []
        means, apart = {}, set()
        for name, param in stats:
            copies = [data.asnumpy() for data in param.list_data()]
            if any(not np.array_equal(copy, copies[0]) for copy in copies[1:]):
                apart.add(name)
                means[name] = np.mean(np.stack(copies).astype(np.float64), axis=0).astype(np.float32)
            else:
                means[name] = copies[0]
        if self.num_workers > 1:
            apart.update(self._average_over_workers(means))
        for name, param in stats:
            if name in apart:
                for data in param.list_data():
                    data[:] = mx.nd.array(means[name], ctx=data.context, dtype=data.dtype)
        return sorted(apart)

    def _average_over_workers(self, means):
        """Replace the entries of ``means`` ({name: array}) that differ between workers by
        their mean over the workers; returns their names (collective)."""
        names = sorted(means)
        differing = self._differing(names, np.stack([array_digest(means[n]) for n in names]))
        across = sorted({name for ranks in differing.values() for name in ranks})
        if not across:
            return []
        flat = np.concatenate([means[name].reshape(-1) for name in across])  # (total size,)
        total = self._sum_over_workers(mx.nd.array(flat)).asnumpy() / self.num_workers
        offset = 0
        for name in across:
            size = means[name].size
            means[name] = total[offset:offset + size].reshape(means[name].shape)  # (size,) -> its shape
            offset += size
        return across

    def all_gather(self, obj):
        """[rank 0's ``obj``, rank 1's, ...] on every worker (any picklable object). Every
        worker must call it at the same point."""
        if self.num_workers == 1:
            return [obj]
        if self.horovod:
            return self._hvd.allgather_object(obj)
        payload = np.frombuffer(pickle.dumps(obj), np.uint8)
        sizes = np.zeros((self.num_workers, 2), np.float32)  # 16-bit halves: exact in float32
        sizes[self.rank] = divmod(len(payload), 65536)
        sizes = self._sum_over_workers(mx.nd.array(sizes.reshape(-1))).asnumpy().astype(np.int64)
        sizes = sizes.reshape((self.num_workers, 2)) @ np.array([65536, 1])  # (W*2,) -> (W, 2) -> (W,)
        width = -(-int(sizes.max()) // 3)  # 3 bytes per float32 word: exact below 2 ** 24
        rows = np.zeros((self.num_workers, width * 3), np.float32)
        rows[self.rank, :len(payload)] = payload
        words = rows.reshape((self.num_workers, width, 3)) @ np.float32([65536, 256, 1])  # (W, width)
        words = self._sum_over_workers(mx.nd.array(words.reshape(-1))).asnumpy().astype(np.int64)
        words = words.reshape((self.num_workers, width, 1))  # (W*width,) -> (W, width, 1)
        data = ((words >> np.array([16, 8, 0])) & 255).astype(np.uint8).reshape((self.num_workers, -1))
        return [pickle.loads(data[rank, :sizes[rank]].tobytes()) for rank in range(self.num_workers)]

    def any_worker(self, flag):
        """Whether ``flag`` is true on any worker: the same answer on all, so all stop at the
        same step. Every worker must call it at the same point."""
        if self.num_workers == 1:
            return bool(flag)
        return float(self._sum_over_workers(mx.nd.array([1.0 if flag else 0.0])).asscalar()) > 0

    def _sum_over_workers(self, vector):
        """The element-wise sum of a 1-D float32 ``vector`` over all workers."""
        if self.horovod:
            return self._hvd.allreduce(vector, average=False, name="gluon_maskrcnn_sum%d" % len(vector))
        bucket = max(1, int(np.ceil(np.log2(max(len(vector), 1)))))
        key, padded = _EXCHANGE_KEY + bucket, 2 ** bucket
        if key not in self._exchange_keys:  # rank 0's zeros initialise it; pushpull then sums
            self.kv.init(key, mx.nd.zeros((padded,)))
            self._exchange_keys.add(key)
        out = mx.nd.zeros((padded,))
        self.kv.pushpull(key, mx.nd.concat(vector, mx.nd.zeros((padded - len(vector),)), dim=0)
                         if padded > len(vector) else vector, out=out)
        return out[:len(vector)]

    def device_contexts(self, ctx):
        """The devices this process trains on: all of ``ctx`` with a kvstore; with Horovod,
        which reduces one device per process, the local rank's entry (see
        :func:`horovod_device`)."""
        if not self.horovod:
            return list(ctx)
        return [horovod_device(ctx, self.local_rank, self.local_size)]

    def step_scale(self, local_parts):
        """What ``trainer.update`` divides the summed gradients by: Horovod's trainer divides
        by the number of workers itself."""
        return local_parts if self.horovod else local_parts * self.num_workers

    def broadcast_parameters(self, net):
        """Make every worker start from rank 0's parameters (a dist kvstore does it at init)."""
        if self.horovod:
            self._hvd.broadcast_parameters(net.collect_params(), root_rank=0)

    def close(self):
        if isinstance(self.kv, mx.kvstore.KVStore) and self.num_workers > 1:
            kvstore_barrier(self.kv)


def horovod_device(ctx, local_rank, local_size):
    """The device of the Horovod process of local rank ``local_rank`` (of ``local_size`` on its
    machine) among the devices ``--gpus`` lists: the local rank's entry, as GluonCV's script
    takes ``gpu(local_rank)``. On CPU (``--gpus ''``) every process takes the one CPU context.

    Raises :class:`~gluon_maskrcnn.errors.UserError` when the list cannot give every process
    of the machine a device of its own.
    """
    if ctx[0].device_type == "cpu":
        if len(ctx) > 1:
            raise UserError("--horovod runs one device per process, got %d CPU contexts (%s): drop "
                            "--cpu-contexts and start one process per device with horovodrun"
                            % (len(ctx), ", ".join(map(str, ctx))))
        return ctx[0]
    if len(ctx) < local_size:
        raise UserError("--gpus %s lists %d GPU(s) but horovodrun started %d processes on this "
                        "machine: list one GPU per process (--gpus %s)"
                        % (",".join(str(c.device_id) for c in ctx), len(ctx), local_size,
                           ",".join(map(str, range(local_size)))))
    return ctx[local_rank]


def parameter_digests(net):
    """(sorted parameter names, (P, 8) float32): a 128-bit digest of each parameter's shape and
    bytes, as eight 16-bit integers (exact in float32, so sums over workers stay exact)."""
    names, digests = [], []
    for name, param in sorted(net.collect_params().items()):
        names.append(name)
        digests.append(array_digest(param.list_data()[0].asnumpy()))  # the first device's copy
    return names, np.stack(digests)


def array_digest(value):
    """(8,) float32: a 128-bit digest of an array's shape and bytes as eight 16-bit integers."""
    value = np.ascontiguousarray(value)
    digest = hashlib.md5(str(value.shape).encode() + value.tobytes()).digest()
    return np.frombuffer(digest, np.uint16).astype(np.float32)


# names of the running statistics of BatchNorm (running_*) and of GluonCV's symbolic FPN norms
# (moving_*), which training updates without gradients
STATISTICS = ("running_mean", "running_var", "moving_mean", "moving_var")


def is_statistic(name):
    """Whether a parameter name is a norm layer's running statistic."""
    return name.endswith(STATISTICS)


def pull_initial_weights(trainer):
    """Initialise a dist kvstore's keys with rank 0's weights, and wait until this worker holds them.

    ``gluon.Trainer`` does this lazily inside the first ``step``/``allreduce_grads``: each key's
    ``broadcast`` is an ``init`` (rank 0 pushes, then a barrier) and an asynchronous ``pull``,
    and the first gradients' ``pushpull`` follows at once. Nothing orders a key's weight pull
    before its gradient pushpull (they write different arrays), and for every key but the last
    the next key's barrier gives the pull time to finish. For the last key a worker's engine
    can send the pushpull first; if the other worker has pushed already, the server merges the
    gradients, stores their sum as the key's value (no updater runs on the server when updates
    run on the workers) and answers the late pull with it: that worker's last parameter
    becomes the first summed gradient, and the workers silently part. Waiting for the pulls
    before the first gradient leaves the order to no chance.

    MXNet has no public call for this step (see :mod:`gluon_maskrcnn.internals`).
    """
    init_trainer_kvstore(trainer)
    for param in trainer_params(trainer):
        for data in param.list_data():
            data.wait_to_read()


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
