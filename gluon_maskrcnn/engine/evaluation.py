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

__all__ = ["predict_dataset", "image_results", "coco_evaluate", "evaluate", "format_metrics", "EVALUATORS",
           "EvaluationTimes", "per_class_ap", "format_per_class", "write_per_class_csv"]

METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _val_loader(dataset, net, batch_size, num_workers, indices):
    transform = ValTransform(net.short, net.max_size)
    view = dataset.transform(lambda image, instances: transform(image))
    return mx.gluon.data.DataLoader(view, batch_size=batch_size, sampler=indices,
                                    batchify_fn=ValBatchify(), num_workers=num_workers)


class EvaluationTimes:
    """Seconds spent predicting (network and data), pasting and encoding masks (the encoding
    threads' busy time, which overlaps prediction), waiting for the encoding after the last
    batch, and in COCOeval."""

    def __init__(self):
        self.predict = self.encode = self.encode_wait = self.cocoeval = 0.0

    def __str__(self):
        return ("predict %.1f s, paste and encode %.1f s (overlapping prediction; %.1f s after it), "
                "COCOeval %.1f s" % (self.predict, self.encode, self.encode_wait, self.cocoeval))


def predict_dataset(net, dataset, ctx=None, batch_size=1, num_workers=0, score_thresh=0.0, indices=None,
                    encode_threads=1, times=None):
    """Run ``net`` over a :class:`~gluon_maskrcnn.data.coco.COCOInstances` split, or over the
    images at ``indices`` of it.

    Returns COCO result dicts (bbox xywh and RLE segmentation in original pixels). Each
    image's masks are pasted into their boxes and RLE-encoded (:func:`image_results`) in
    ``encode_threads`` threads while the network predicts the next batches (the resize and the
    encoder release the GIL); no image-sized mask array is made. ``times``: an
    :class:`~gluon_maskrcnn.engine.evaluation.EvaluationTimes` to fill.
    """
    import concurrent.futures
    import time

    ctx = ctx or [network_context(net)]
    indices = list(range(len(dataset))) if indices is None else list(indices)
    times = times if times is not None else EvaluationTimes()
    pending, results, position = [], [], 0

    def encode(outputs, scale, meta):
        start = time.perf_counter()
        found = image_results(outputs, scale, meta, dataset.category_ids, score_thresh)
        return found, time.perf_counter() - start

    def collect(limit):  # results in image order; at most `limit` images left pending
        while len(pending) > limit:
            found, seconds = pending.pop(0).result()
            results.extend(found)
            times.encode += seconds

    loader = _val_loader(dataset, net, batch_size, num_workers, indices)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max(1, encode_threads)) as pool:
        try:
            for images, infos in loader:
                outputs = [o.asnumpy() for o in net(images.as_in_context(ctx[0]))]
                for b in range(images.shape[0]):
                    meta = dataset.images[indices[position]]
                    pending.append(pool.submit(encode, [o[b] for o in outputs], infos[b, 2:4].asnumpy(), meta))
                    position += 1
                collect(4 * max(1, encode_threads))  # bounded: memory stays that of a few images
        finally:  # the workers may ignore MXNet's own SIGTERM clean-up (see engine.preemption)
            close_dataloader_workers(loader)
        times.predict += time.perf_counter() - start
        waited = time.perf_counter()
        collect(0)
        times.encode_wait += time.perf_counter() - waited
    return results


def image_results(outputs, scale_info, meta, category_ids, score_thresh=0.0):
    """COCO result dicts of one image from the network's outputs for it (ids, scores, boxes,
    masks): each mask pasted into its box and RLE-encoded from there (the result equals
    ``pycocotools.mask.encode`` of the full paste), with no image-sized array."""
    det = detections_to_original(*outputs, scale_info, meta["height"], meta["width"], score_thresh,
                                 mask_format="rle")
    results = []
    for box, label, score, rle in zip(det["boxes"], det["labels"], det["scores"], det["masks"]):
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
                metrics[iou_type]["per_class"] = {cat["name"]: 0.0 for cat in gt.loadCats(gt.getCatIds())}
                continue
            dt = gt.loadRes(results)
            scorer = eval_class(gt, dt, iou_type, **ext)
            if image_ids is not None:
                scorer.params.imgIds = list(image_ids)
            scorer.evaluate()
            scorer.accumulate()
            scorer.summarize()
            metrics[iou_type] = {name: float(max(v, 0.0)) for name, v in zip(METRIC_NAMES, scorer.stats)}
            metrics[iou_type]["per_class"] = per_class_ap(scorer.eval["precision"], scorer.params.catIds, gt)
    return metrics


def per_class_ap(precision, category_ids, gt):
    """{class name: AP} from COCOeval's accumulated ``precision`` (T IoUs, R recalls, K classes,
    A areas, M max-detections): each class's mean precision over the IoU thresholds and recall
    points, all areas, 100 detections, as COCO's AP is for all classes together; None for a
    class with no ground truth (every entry -1)."""
    names = {cat["id"]: cat["name"] for cat in gt.loadCats(list(category_ids))}
    table = {}
    for k, category in enumerate(category_ids):
        values = np.asarray(precision)[:, :, k, 0, -1]  # (T, R): area 'all', the last maxDets (100)
        values = values[values > -1]
        table[names[category]] = float(values.mean()) if values.size else None
    return table


def format_per_class(metrics, columns=3):
    """Per-class AP as a plain-text table: each row ``class  bbox  segm``, in ``columns``
    column groups (as detectron2 prints it); ``-`` for a class without ground truth."""
    names = list(metrics["bbox"].get("per_class", {}))
    cell = lambda v: "%6.3f" % v if v is not None else "%6s" % "-"  # noqa: E731
    width = max([len(n) for n in names] + [8])
    cells = ["%-*s %s %s" % (width, name, cell(metrics["bbox"]["per_class"][name]),
                             cell(metrics["segm"]["per_class"].get(name))) for name in names]
    header = "%-*s %6s %6s" % (width, "category", "bbox", "segm")
    rows = ["   ".join([header] * min(columns, max(len(cells), 1)))]
    for start in range(0, len(cells), columns):
        rows.append("   ".join(cells[start:start + columns]))
    return "\n".join(rows)


def write_per_class_csv(metrics, path):
    """Write per-class AP as CSV (``category,bbox_AP,segm_AP``; empty for a class without ground
    truth), atomically."""
    import csv

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["category", "bbox_AP", "segm_AP"])
            for name, bbox in metrics["bbox"].get("per_class", {}).items():
                segm = metrics["segm"]["per_class"].get(name)
                out.writerow([name, "" if bbox is None else "%.6f" % bbox, "" if segm is None else "%.6f" % segm])

    atomic_write(path, write)


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
             all_gather=None, use_ext=False, evaluator="pycocotools", times=None):
    """Predict and evaluate a split; optionally write the results JSON (atomically).

    With several workers, ``shard=(rank, count)`` makes this worker predict images ``rank``,
    ``rank + count``, ...; ``all_gather`` (``Distributed.all_gather``) brings every shard's
    results to every worker, which all return the metrics of the whole split. Each task's
    metrics include ``per_class`` (see :func:`~gluon_maskrcnn.engine.evaluation.per_class_ap`); ``times`` (an
    :class:`~gluon_maskrcnn.engine.evaluation.EvaluationTimes`) gets the time of each stage.
    """
    import time

    rank, count = shard
    times = times if times is not None else EvaluationTimes()
    results = predict_dataset(net, dataset, ctx, batch_size, num_workers,
                              indices=range(rank, len(dataset), count), times=times)
    if count > 1:
        results = _in_image_order(sum(all_gather(results), []), dataset)
    if results_file:
        def write(tmp):
            with open(tmp, "w") as f:
                json.dump(results, f)

        atomic_write(results_file, write)
    start = time.perf_counter()
    metrics = coco_evaluate(dataset.annotation_file, results, [im["id"] for im in dataset.images], use_ext,
                            evaluator)
    times.cocoeval += time.perf_counter() - start
    return metrics


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
