"""Batch samplers: aspect-ratio grouping and per-worker sharding."""
import numpy as np

__all__ = ["AspectRatioBatchSampler"]


class AspectRatioBatchSampler:
    """Batches of images of the same orientation (landscape / portrait), so padding is small.

    Parameters
    ----------
    aspect_ratios : array of width / height, one per image.
    batch_size : int
        Images per batch of this shard (all devices of one worker).
    shuffle : bool
        Reshuffle every epoch (``set_epoch``), reproducibly from ``seed``.
    num_shards, shard_index : int
        Distributed training. The images are grouped into global batches of
        ``batch_size * num_shards``, and shard ``k`` takes the ``k``-th slice of each: step ``i``
        of every shard belongs to the same global batch, which holds the same images whatever
        the number of shards (one worker with the whole batch, or several with a slice each).
    last_batch : 'keep' or 'discard'
        What to do with an incomplete last batch of a group.
    with_epoch : bool
        Yield ``(index, epoch)`` pairs, for datasets whose randomness is seeded per sample
        (:class:`~gluon_maskrcnn.data.loader.SeededTrainView`).
    """

    def __init__(self, aspect_ratios, batch_size, shuffle=True, seed=0, num_shards=1, shard_index=0,
                 last_batch="keep", with_epoch=False):
        self.aspect_ratios = np.asarray(aspect_ratios)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_shards = num_shards
        self.shard_index = shard_index
        self.last_batch = last_batch
        self.with_epoch = with_epoch
        self.epoch = 0
        self.skip = 0
        self.done_before = ()

    def set_epoch(self, epoch, skip=0, done_before=()):
        """Iterate epoch ``epoch``'s batches from batch ``skip`` on (a run resumed mid-epoch
        sees the rest of the same order).

        ``done_before``: ``[(global batch size, workers, batches done), ...]``, the parts of this
        epoch that earlier runs of another shape (workers x devices x images per device) trained;
        their images are left out, and the rest of the epoch is grouped in this sampler's
        global batches, so that every image of the epoch is seen once across the parts.
        """
        self.epoch = epoch
        self.skip = skip
        self.done_before = tuple((int(size), int(shards), int(done)) for size, shards, done in done_before)

    def images_done_before(self):
        """The image indices the ``done_before`` parts of this epoch trained on."""
        seen = set()
        for size, shards, done in self.done_before:
            for batch in self._grouped(size, shards, seen)[:done]:
                seen.update(batch)
        return seen

    def global_batches(self):
        """This epoch's global batches (lists of image indices), the same for every shard."""
        return self._grouped(self.batch_size * self.num_shards, self.num_shards, self.images_done_before())

    def _grouped(self, size, shards, leave_out):
        """The epoch's images but ``leave_out``, in global batches of ``size`` over ``shards``
        workers (an incomplete batch is kept if every worker gets an image)."""
        rng = np.random.RandomState(self.seed + self.epoch)
        order = rng.permutation(len(self.aspect_ratios)) if self.shuffle else np.arange(len(self.aspect_ratios))
        if leave_out:
            order = order[~np.isin(order, np.fromiter(leave_out, np.int64, len(leave_out)))]
        batches = []
        for group in (order[self.aspect_ratios[order] >= 1], order[self.aspect_ratios[order] < 1]):
            for start in range(0, len(group), size):
                chunk = group[start:start + size]
                if len(chunk) == size or (self.last_batch == "keep" and len(chunk) >= shards):
                    batches.append(chunk.tolist())
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _batches(self):
        shards = [np.array_split(batch, self.num_shards)[self.shard_index] for batch in self.global_batches()]
        return [shard.tolist() for shard in shards]

    def __iter__(self):
        batches = self._batches()[self.skip:]
        if self.with_epoch:
            return iter([[(i, self.epoch) for i in batch] for batch in batches])
        return iter(batches)

    def __len__(self):
        """Batches left in this epoch (all of them unless ``set_epoch`` skipped some)."""
        return max(0, len(self._batches()) - self.skip)
