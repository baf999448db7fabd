"""Training and validation loaders with per-sample seeded randomness (exact resume)."""
import mxnet as mx
import numpy as np

from .batchify import TrainBatchify
from .coco import transform_item
from .samplers import AspectRatioBatchSampler

__all__ = ["SeededTrainView", "sample_seed", "train_loader"]


def sample_seed(seed, epoch, index):
    """The seed of one sample's random choices: a function of (run seed, epoch, image index)."""
    return (seed * 1000003 + epoch * 100003 + index) % (2 ** 31)


class SeededTrainView:
    """``view[(index, epoch)]`` -> the transformed sample plus its seed.

    The flip, scale and anchor subsampling of a sample depend only on (seed, epoch, index), not
    on which worker process handles it or on what ran before: a resumed run sees the same data.
    """

    def __init__(self, dataset, transform, seed=0):
        self.dataset = dataset
        self.transform = transform
        self.seed = seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        seed = sample_seed(self.seed, epoch, index)
        sample = transform_item(self.dataset, index, self.transform, np.random.RandomState(seed))
        return sample + (seed,)


def train_loader(dataset, transform, rpn_targets, batch_size, num_workers=0, seed=0, num_shards=1,
                 shard_index=0, size_multiple=1, roi_key_count=None):
    """(DataLoader, sampler) for training; call ``sampler.set_epoch(epoch)`` every epoch.

    ``batch_size`` is this shard's (worker's) share of a global batch of
    ``batch_size * num_shards`` images; batches are :data:`~gluon_maskrcnn.data.batchify.SeededTrainBatch` when
    ``roi_key_count`` is given (the network's ``sampler.key_count``)."""
    sampler = AspectRatioBatchSampler(dataset.aspect_ratios(), batch_size, shuffle=True, seed=seed,
                                      num_shards=num_shards, shard_index=shard_index,
                                      last_batch="discard", with_epoch=True)
    loader = mx.gluon.data.DataLoader(SeededTrainView(dataset, transform, seed), batch_sampler=sampler,
                                      batchify_fn=TrainBatchify(rpn_targets, size_multiple, sampled_rpn=True,
                                                                roi_key_count=roi_key_count),
                                      num_workers=num_workers)
    return loader, sampler
