"""Batching: pad images, boxes and masks; compute RPN targets for the padded shape.

The RPN targets depend on the padded input size (the anchors the network will see), so they
are computed here, in the DataLoader worker, with the anchor parameters alone.
"""
import numpy as np
from mxnet import nd

__all__ = ["TrainBatchify", "ValBatchify", "TrainBatch", "SampledTrainBatch", "SeededTrainBatch",
           "image_streams", "split_batch"]

#: The names of a training batch's arrays, in order.
TrainBatch = ("images", "gt_boxes", "gt_labels", "gt_masks", "rpn_cls_targets", "rpn_box_targets",
              "rpn_box_masks")
#: :data:`TrainBatch` and the ids of the RPN's sampled anchors.
SampledTrainBatch = TrainBatch + ("rpn_anchor_ids",)
#: :data:`SampledTrainBatch` and each image's ROI-sampling keys: what the training loop uses.
SeededTrainBatch = SampledTrainBatch + ("roi_keys",)


def _pad_to(value, multiple):
    return int(np.ceil(value / multiple) * multiple) if multiple > 1 else value


class TrainBatchify:
    """Collate train samples into NDArrays (see :data:`TrainBatch` for the order).

    Images are zero-padded at the bottom and right to the largest (rounded up to
    ``size_multiple``); boxes and labels are padded with -1, masks with 0. Anchors falling in the
    padding are ignored by the RPN loss, exactly as anchors outside a single image are.

    A sample's anchor subsampling and ROI keys come from its own seed (:func:`image_streams`),
    so they do not depend on which other images share its batch, device or worker.

    Parameters
    ----------
    rpn_targets : :class:`~gluon_maskrcnn.data.rpn_targets.RPNTargetGenerator`
    seed : int, optional
        Seeds the anchor subsampling of samples that carry no seed of their own (each worker
        process should have its own stream).
    sampled_rpn : bool
        Give the RPN targets of the sampled anchors only, (B, S), (B, S, 4), (B, S, 4) with
        S = ``rpn_targets.num_sample``, followed by their anchor indices (B, S) (-1 padding):
        :data:`SampledTrainBatch`.
    roi_key_count : int, optional
        With samples that carry their seed (:class:`~gluon_maskrcnn.data.loader.SeededTrainView`),
        also give each image ``roi_key_count`` uniform random keys (B, K) for the second stage's
        ROI sampling (:class:`~gluon_maskrcnn.modeling.roi_heads.RCNNTargetSampler`):
        :data:`SeededTrainBatch`, what the training loop uses.
    """

    def __init__(self, rpn_targets, size_multiple=1, seed=None, sampled_rpn=False, roi_key_count=None):
        self.rpn_targets = rpn_targets
        self.size_multiple = size_multiple
        self.sampled_rpn = sampled_rpn
        self.roi_key_count = roi_key_count
        self._rng = np.random.RandomState(seed)

    def __call__(self, samples):
        seeded = len(samples[0]) == 5  # samples carry their seeds: reproducible anywhere
        streams = [image_streams(int(s[4])) if seeded else (self._rng, None) for s in samples]
        samples = [s[:4] for s in samples]
        images, boxes, labels, masks = zip(*samples)
        batch = len(images)
        pad_h = _pad_to(max(im.shape[1] for im in images), self.size_multiple)
        pad_w = _pad_to(max(im.shape[2] for im in images), self.size_multiple)
        most = max(1, max(len(b) for b in boxes))
        out_images = np.zeros((batch, 3, pad_h, pad_w), np.float32)
        out_boxes = -np.ones((batch, most, 4), np.float32)
        out_labels = -np.ones((batch, most, 1), np.float32)
        out_masks = np.zeros((batch, most, pad_h, pad_w), np.uint8)
        rpn = []
        for i, (image, box, label, mask) in enumerate(zip(images, boxes, labels, masks)):
            _, h, w = image.shape
            out_images[i, :, :h, :w] = image
            out_boxes[i, :len(box)] = box
            out_labels[i, :len(label), 0] = label
            out_masks[i, :len(mask), :h, :w] = mask
            targets = self.rpn_targets(box, h, w, pad_h, pad_w, rng=streams[i][0])
            if self.sampled_rpn:
                targets = sampled_targets(*targets, count=self.rpn_targets.num_sample)
            rpn.append(targets)
        rpn = [np.stack(parts) for parts in zip(*rpn)]
        arrays = [out_images, out_boxes, out_labels, out_masks] + rpn
        if seeded and self.roi_key_count:
            arrays.append(np.stack([keys.random_sample(self.roi_key_count).astype(np.float32)
                                    for _, keys in streams]))  # (B, K)
        return tuple(nd.array(a, dtype=a.dtype) for a in arrays)


def image_streams(seed):
    """Two independent random streams of one image: (RPN anchor subsampling, ROI sampling keys).

    Both depend on the image's seed alone (see :func:`~gluon_maskrcnn.data.loader.sample_seed`),
    and differ from the stream of its flip and scale, which uses the seed itself.
    """
    return np.random.RandomState([seed, 1]), np.random.RandomState([seed, 2])


def sampled_targets(cls_targets, box_targets, box_masks, count):
    """One image's targets at its sampled anchors (``cls_targets >= 0``), padded to ``count``.

    Returns cls (count,) (-1 padding), box targets and masks (count, 4) (0 padding), and the
    anchor indices (count,) as float32 (-1 padding; exact up to 2**24 anchors).
    """
    ids = np.flatnonzero(cls_targets >= 0)[:count]
    out_ids = -np.ones(count, np.float32)
    out_ids[:len(ids)] = ids
    out_cls = -np.ones(count, np.float32)
    out_cls[:len(ids)] = cls_targets[ids]
    out_box = np.zeros((count, 4), np.float32)
    out_box[:len(ids)] = box_targets[ids]
    out_mask = np.zeros((count, 4), np.float32)
    out_mask[:len(ids)] = box_masks[ids]
    return out_cls, out_box, out_mask, out_ids


class ValBatchify:
    """Collate validation samples: padded images (B, 3, H, W) and infos (B, 3)."""

    def __init__(self, size_multiple=1):
        self.size_multiple = size_multiple

    def __call__(self, samples):
        images, infos = zip(*[s[:2] for s in samples])
        pad_h = _pad_to(max(im.shape[1] for im in images), self.size_multiple)
        pad_w = _pad_to(max(im.shape[2] for im in images), self.size_multiple)
        out = np.zeros((len(images), 3, pad_h, pad_w), np.float32)
        for i, image in enumerate(images):
            out[i, :, :image.shape[1], :image.shape[2]] = image
        return nd.array(out), nd.array(np.stack(infos))


def split_batch(batch, ctx_list):
    """Split every array of a batch along axis 0 over contexts: a list of per-context tuples."""
    from mxnet.gluon.utils import split_and_load

    parts = [split_and_load(array, ctx_list, batch_axis=0, even_split=True) for array in batch]
    return list(zip(*parts))
