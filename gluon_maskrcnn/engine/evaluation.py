"""COCO bbox and segm evaluation through pycocotools, with results JSON in COCO's format."""
import contextlib
import io
import json

import mxnet as mx
import numpy as np

from ..data.batchify import ValBatchify
from ..data.transforms import ValTransform
from ..inference import detections_to_original, network_context
from ..errors import UserError
from ..internals import close_dataloader_workers
from ..files import atomic_write

__all__ = ["predict_dataset", "image_results", "coco_evaluate", "evaluate", "format_metrics", "EVALUATORS"]

METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _val_loader(dataset, net, batch_size, num_workers, indices):
    transform = ValTransform(net.short, net.max_size)
    view = dataset.transform(lambda image, instances: transform(image))
    return mx.gluon.data.DataLoader(view, batch_size=batch_size, sampler=indices,
                                    batchify_fn=ValBatchify(), num_workers=num_workers)


def predict_dataset(net, dataset, ctx=None, batch_size=1, num_workers=0, score_thresh=0.0, indices=None):
    """Run ``net`` over a :class:`~gluon_maskrcnn.data.coco.COCOInstances` split, or over the
    images at ``indices`` of it.

    Returns COCO result dicts (bbox xywh and RLE segmentation in original pixels).
    """
    ctx = ctx or [network_context(net)]
    indices = list(range(len(dataset))) if indices is None else list(indices)
    results, position = [], 0
    loader = _val_loader(dataset, net, batch_size, num_workers, indices)
    try:
        for images, infos in loader:
            outputs = [o.asnumpy() for o in net(images.as_in_context(ctx[0]))]
            for b in range(images.shape[0]):
                meta = dataset.images[indices[position]]
                results += image_results([o[b] for o in outputs], infos[b, 2:4].asnumpy(), meta,
                                         dataset.category_ids, score_thresh)
                position += 1
    finally:  # the workers may ignore MXNet's own SIGTERM clean-up (see engine.preemption)
        close_dataloader_workers(loader)
    return results


def image_results(outputs, scale_info, meta, category_ids, score_thresh=0.0):
    """COCO result dicts of one image from the network's outputs for it (ids, scores, boxes,
    masks): masks pasted at the original size and RLE-encoded."""
    from pycocotools import mask as mask_utils

    det = detections_to_original(*outputs, scale_info, meta["height"], meta["width"], score_thresh)
    results = []
    for box, label, score, mask in zip(det["boxes"], det["labels"], det["scores"], det["masks"]):
        rle = mask_utils.encode(np.asfortranarray(mask))
        results.append({"image_id": meta["id"], "category_id": category_ids[label],
                        "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                        "score": float(score),
                        "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode()}})
    return results


def nvidia_coco_api():
    """Whether the installed pycocotools is NVIDIA's COCO API (its ``COCOeval`` takes
    ``use_ext``, a C++ evaluation); ``--use-ext`` uses it when it is there."""
    import inspect

    from pycocotools.cocoeval import COCOeval

    return "use_ext" in inspect.signature(COCOeval.__init__).parameters


EVALUATORS = ("pycocotools", "faster-coco-eval")


def coco_evaluate(annotation_file, results, image_ids=None, use_ext=False, evaluator="pycocotools"):
    """COCO bbox and segm metrics: {'bbox': {AP, AP50, ...}, 'segm': {...}}.

    ``evaluator`` ``"pycocotools"`` (with ``use_ext`` and NVIDIA's COCO API installed, its C++
    evaluation) or ``"faster-coco-eval"`` (the maintained C++ COCOeval with pycocotools'
    interface and figures; ``pip install faster-coco-eval``).
    """
    coco_class, eval_class = _coco_classes(evaluator)
    ext = {"use_ext": True} if use_ext and evaluator == "pycocotools" and nvidia_coco_api() else {}
    metrics = {}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_class(annotation_file)
        for iou_type in ("bbox", "segm"):
            if not results:
                metrics[iou_type] = {name: 0.0 for name in METRIC_NAMES}
                continue
            dt = gt.loadRes(results)
            scorer = eval_class(gt, dt, iou_type, **ext)
            if image_ids is not None:
                scorer.params.imgIds = list(image_ids)
            scorer.evaluate()
            scorer.accumulate()
            scorer.summarize()
            metrics[iou_type] = {name: float(max(v, 0.0)) for name, v in zip(METRIC_NAMES, scorer.stats)}
    return metrics


def _coco_classes(evaluator):
    """(COCO class, COCOeval class) of an evaluator name; a missing package is a UserError."""
    if evaluator == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    if evaluator == "faster-coco-eval":
        try:
            from faster_coco_eval import COCO, COCOeval_faster
        except ImportError:
            raise UserError("--coco-evaluator faster-coco-eval: the package is not installed; "
                            "pip install faster-coco-eval, or use pycocotools") from None
        return COCO, COCOeval_faster
    raise UserError("unknown COCO evaluator %r; choose one of %s" % (evaluator, ", ".join(EVALUATORS)))


def evaluate(net, dataset, ctx=None, batch_size=1, num_workers=0, results_file=None, shard=(0, 1),
             all_gather=None, use_ext=False, evaluator="pycocotools"):
    """Predict and evaluate a split; optionally write the results JSON (atomically).

    With several workers, ``shard=(rank, count)`` makes this worker predict images ``rank``,
    ``rank + count``, ...; ``all_gather`` (``Distributed.all_gather``) brings every shard's
    results to every worker, which all return the metrics of the whole split.
    """
    rank, count = shard
    results = predict_dataset(net, dataset, ctx, batch_size, num_workers,
                              indices=range(rank, len(dataset), count))
    if count > 1:
        results = _in_image_order(sum(all_gather(results), []), dataset)
    if results_file:
        def write(tmp):
            with open(tmp, "w") as f:
                json.dump(results, f)

        atomic_write(results_file, write)
    return coco_evaluate(dataset.annotation_file, results, [im["id"] for im in dataset.images], use_ext, evaluator)


def _in_image_order(results, dataset):
    """Results regrouped in the split's image order (each image's own order kept)."""
    order = {image["id"]: position for position, image in enumerate(dataset.images)}
    return sorted(results, key=lambda result: order[result["image_id"]])


def format_metrics(metrics):
    """A plain-text table of the metrics."""
    lines = ["%-6s" % "" + "".join("%8s" % n for n in METRIC_NAMES)]
    for iou_type, values in metrics.items():
        lines.append("%-6s" % iou_type + "".join("%8.3f" % values[n] for n in METRIC_NAMES))
    return "\n".join(lines)
