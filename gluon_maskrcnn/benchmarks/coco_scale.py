"""Annotation files with COCO train2017's scale, and how long and how much memory loading takes.

``write_coco_scale_annotations`` writes an ``instances_train2017.json`` with COCO train's counts
(118,287 images, about 860,000 annotations over 80 categories; crowd regions as RLE, the rest
polygons of COCO-like complexity), reproducibly from a seed and without image files.
``run_load_benchmark`` loads it, each loader in a fresh process, and reports the wall time and
peak resident memory of ours, pycocotools' ``COCO`` and GluonCV's ``COCOInstance``.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

__all__ = ["write_coco_scale_annotations", "run_load_benchmark", "COCO_TRAIN_IMAGES", "COCO_TRAIN_ANNOTATIONS"]

COCO_TRAIN_IMAGES = 118287
COCO_TRAIN_ANNOTATIONS = 860001
CROWD_FRACTION = 0.011  # COCO train: about 9,000 crowd regions, stored as RLE
SIZES = ((640, 480), (480, 640), (640, 427), (640, 425), (500, 375), (427, 640))


POLYGON_VERTICES = (6, 8, 12, 16, 24, 32, 48, 60)
VERTEX_ODDS = (.08, .12, .2, .2, .18, .12, .06, .04)


def _polygons(rng, owner_sizes):
    """COCO-like polygons, one per row of ``owner_sizes`` (width, height of its image): 6 to 60
    vertices around a random centre. Returns (list of flat xy lists, boxes (P, 4) xywh)."""
    count = len(owner_sizes)
    vertices = rng.choice(POLYGON_VERTICES, size=count, p=VERTEX_ODDS)
    segment = np.repeat(np.arange(count), vertices)  # (V,): the polygon of each vertex
    wh = owner_sizes.astype(np.float64)
    centre = rng.uniform(0.1, 0.9, (count, 2)) * wh
    radius = rng.uniform(0.02, 0.3, count) * wh.min(1)
    angle = rng.uniform(0, 2 * np.pi, len(segment))
    order = np.lexsort((angle, segment))  # vertices in angular order within each polygon
    angle = angle[order]
    r = radius[segment] * rng.uniform(0.6, 1.0, len(segment))
    x = np.clip(centre[segment, 0] + r * np.cos(angle), 0, wh[segment, 0] - 1)
    y = np.clip(centre[segment, 1] + r * np.sin(angle), 0, wh[segment, 1] - 1)
    xy = np.round(np.stack([x, y], 1), 2)  # (V, 2)
    starts = np.concatenate([[0], np.cumsum(vertices)[:-1]])
    low = np.stack([np.minimum.reduceat(xy[:, 0], starts), np.minimum.reduceat(xy[:, 1], starts)], 1)
    high = np.stack([np.maximum.reduceat(xy[:, 0], starts), np.maximum.reduceat(xy[:, 1], starts)], 1)
    flat = [part.tolist() for part in np.split(xy.reshape(-1), 2 * np.cumsum(vertices)[:-1])]
    return flat, np.concatenate([low, high - low], 1)


def _crowd_rle(rng, width, height):
    """An uncompressed RLE (``counts`` list, column-major) of one rectangle, and its xywh box."""
    x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
    w, h = int(rng.integers(8, width - x0)), int(rng.integers(8, height - y0))
    counts = [x0 * height + y0] + [h, height - h] * (w - 1) + [h]
    counts.append(width * height - sum(counts))
    return {"counts": counts, "size": [height, width]}, [float(x0), float(y0), float(w), float(h)]


def coco_class_names():
    """COCO's 80 category names (GluonCV's COCOInstance accepts no others)."""
    from gluoncv.data import COCOInstance

    return list(COCOInstance.CLASSES)


def write_coco_scale_annotations(path, num_images=COCO_TRAIN_IMAGES, num_annotations=COCO_TRAIN_ANNOTATIONS,
                                 seed=0, image_dir=None):
    """Write the annotation file (and, with ``image_dir``, an empty placeholder file per image,
    which GluonCV's loader checks for); returns the file's size in bytes."""
    rng = np.random.default_rng(seed)
    size_index = rng.integers(len(SIZES), size=num_images)
    images = [{"id": i + 1, "file_name": "%012d.jpg" % (i + 1), "width": SIZES[k][0], "height": SIZES[k][1],
               "coco_url": "http://images.cocodataset.org/train2017/%012d.jpg" % (i + 1)}
              for i, k in enumerate(size_index.tolist())]
    owners = np.sort(rng.integers(0, num_images, num_annotations))
    crowd = rng.random(num_annotations) < CROWD_FRACTION
    two_parts = rng.random(num_annotations) < 0.12  # some objects are split in two polygons
    polygon_owner = np.repeat(owners[~crowd], 1 + two_parts[~crowd])  # (P,)
    sizes = np.array(SIZES)[size_index]  # (num_images, 2)
    flat, boxes = _polygons(rng, sizes[polygon_owner])
    categories = rng.integers(1, 81, num_annotations).tolist()
    annotations, p = [], 0
    for k, (owner, is_crowd, parts) in enumerate(zip(owners.tolist(), crowd.tolist(), (1 + two_parts).tolist())):
        width, height = images[owner]["width"], images[owner]["height"]
        ann = {"id": k + 1, "image_id": owner + 1, "category_id": categories[k], "iscrowd": int(is_crowd)}
        if is_crowd:
            ann["segmentation"], ann["bbox"] = _crowd_rle(rng, width, height)
        else:
            box = boxes[p:p + parts]
            x0, y0 = box[:, 0].min(), box[:, 1].min()
            x1, y1 = (box[:, 0] + box[:, 2]).max(), (box[:, 1] + box[:, 3]).max()
            ann["segmentation"] = flat[p:p + parts]
            ann["bbox"] = [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)]
            p += parts
        ann["area"] = round(ann["bbox"][2] * ann["bbox"][3], 2)
        annotations.append(ann)
    names = coco_class_names()
    categories = [{"id": i + 1, "name": name, "supercategory": "thing"} for i, name in enumerate(names)]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    if image_dir:
        _placeholder_images(image_dir, images)
    return os.path.getsize(path)


def _placeholder_images(folder, images):
    """An empty file under every image's name."""
    os.makedirs(folder, exist_ok=True)
    for image in images:
        open(os.path.join(folder, image["file_name"]), "ab").close()


_LOADERS = {
    # the first load parses and writes the cache next to the file; the second reads the cache
    "ours": "from gluon_maskrcnn.data.coco import COCOInstances\n"
            "d = COCOInstances(ROOT, 'train2017', skip_empty=True)\nn = len(d)",
    "ours, cached": "from gluon_maskrcnn.data.coco import COCOInstances\n"
                    "d = COCOInstances(ROOT, 'train2017', skip_empty=True)\nn = len(d)",
    "pycocotools": "from pycocotools.coco import COCO\n"
                   "d = COCO(os.path.join(ROOT, 'annotations', 'instances_train2017.json'))\nn = len(d.imgs)",
    "gluoncv": "from gluoncv.data import COCOInstance\n"
               "d = COCOInstance(ROOT, splits=('instances_train2017',), skip_empty=True)\nn = len(d)",
}


def _load_in_fresh_process(name, root):
    """(seconds, peak MB over the import baseline, peak MB of any child process, images) of one
    loader, in its own process."""
    code = ("import os, sys, time, io, contextlib\nROOT = %r\n" % root
            + "from gluon_maskrcnn.benchmarks.timing import peak_rss_gb\n"
            + "_peak_rss_mb = lambda: peak_rss_gb() * 1024.0\n"
            + "import numpy, mxnet, pycocotools.coco, gluon_maskrcnn.data.coco\n"
            + "base = _peak_rss_mb()\nt = time.perf_counter()\n"
            + "with contextlib.redirect_stdout(io.StringIO()):\n"
            + "".join("    %s\n" % line for line in _LOADERS[name].splitlines())
            + "import resource\nchild = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0\n"
            + "print(time.perf_counter() - t, _peak_rss_mb() - base, child, n)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        return None, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
    seconds, peak, child, count = done.stdout.split()[-4:]
    return (float(seconds), float(peak), float(child), int(count)), None


def run_load_benchmark(root=None, num_images=COCO_TRAIN_IMAGES, num_annotations=COCO_TRAIN_ANNOTATIONS,
                       loaders=("ours", "ours, cached", "pycocotools", "gluoncv"), seed=0):
    """Write (or reuse) ``root``'s COCO-scale file, load it with each loader, print a table."""
    root = root or tempfile.mkdtemp(prefix="coco-scale-")
    path = os.path.join(root, "annotations", "instances_train2017.json")
    if not os.path.exists(path):
        start = time.perf_counter()
        size = write_coco_scale_annotations(path, num_images, num_annotations, seed,
                                            image_dir=os.path.join(root, "train2017"))
        print("wrote %s: %.0f MB in %.0f s" % (path, size / 1e6, time.perf_counter() - start))
    cache = path + ".gmcache.npz"
    if os.path.exists(cache):
        os.remove(cache)  # "ours" parses; "ours, cached" then reads what it wrote
    rows = {}
    print("%-14s %10s %14s %20s %9s" % ("loader", "load (s)", "peak RSS (MB)", "child peak RSS (MB)", "images"))
    for name in loaders:
        result, error = _load_in_fresh_process(name, root)
        rows[name] = result
        if result is None:
            print("%-14s cannot load it: %s" % (name, error))
        else:
            print("%-14s %10.1f %14.0f %20.0f %9d" % (name, *result))
    return rows


class _AnnotationView:
    """DataLoader items that read one image's annotations (no pixels): what a training worker
    touches of the dataset besides the image file."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, idx):
        instances = self.dataset.instances(idx)
        vertices = sum(len(s[1]) for s in instances.segms if s[0] == "polygons")
        return np.array([len(instances), float(instances.boxes.sum()), vertices], np.float32)


def _private_mb(process):
    """Unique (private) resident memory of a process, MB."""
    return process.memory_full_info().uss / 2 ** 20


def measure_worker_memory(root, num_items=4000, num_workers=4, batch_size=8, checkpoints=(500, 4000)):
    """Stream ``num_items`` images' annotations of ``root``'s train2017 through ``num_workers``
    DataLoader workers; returns {items read: (main's private MB, workers' summed private MB)}."""
    import mxnet as mx
    import psutil

    from ..data.coco import COCOInstances

    dataset = COCOInstances(root, "train2017", skip_empty=True)
    loader = mx.gluon.data.DataLoader(_AnnotationView(dataset), batch_size=batch_size, shuffle=True,
                                      num_workers=num_workers, last_batch="discard")
    main, readings, seen = psutil.Process(), {}, 0
    for batch in loader:
        seen += batch.shape[0]
        if any(seen - batch.shape[0] < mark <= seen for mark in checkpoints):
            workers = main.children(recursive=True)
            readings[seen] = (_private_mb(main), sum(_private_mb(w) for w in workers))
        if seen >= num_items:
            break
    return readings


def run_coco_scale_benchmark(root=None, num_images=COCO_TRAIN_IMAGES, num_annotations=COCO_TRAIN_ANNOTATIONS,
                             worker_items=4000, seed=0):
    """The load table, then the DataLoader workers' private memory while streaming; returns
    ``{"loaders": [...], "worker_memory": [...]}``, one record per loader and per reading."""
    root = root or tempfile.mkdtemp(prefix="coco-scale-")
    rows = run_load_benchmark(root, num_images, num_annotations, seed=seed)
    marks = (min(500, worker_items), worker_items)
    readings = measure_worker_memory(root, worker_items, checkpoints=marks)
    print("\n4 DataLoader workers streaming annotations: private memory (USS)")
    print("%-14s %12s %18s" % ("images read", "main (MB)", "workers, sum (MB)"))
    for seen, (main, workers) in sorted(readings.items()):
        print("%-14d %12.0f %18.0f" % (seen, main, workers))
    loaders = [dict(loader=name, seconds=r[0], peak_rss_mb=r[1], child_peak_rss_mb=r[2], images=r[3])
               for name, r in rows.items() if r is not None]
    workers = [dict(images_read=seen, main_private_mb=main, workers_private_mb=summed)
               for seen, (main, summed) in sorted(readings.items())]
    return dict(loaders=loaders, worker_memory=workers)


COCO_VAL_IMAGES = 5000
COCO_VAL_ANNOTATIONS = 36781


def _fake_outputs(rng, width, height, num_classes, count, instances):
    """One image's network outputs (ids, scores, boxes, 28x28 mask probabilities) at scale 1:
    the image's objects with jittered boxes first (so the figures are not zero), then random
    boxes, ``count`` in all, with blob-like masks."""
    xy = rng.uniform(0, 1, (count, 2)) * [width * 0.8, height * 0.8]
    wh = rng.uniform(8, 0.5 * min(width, height), (count, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    found = min(len(instances), count)
    boxes[:found] = instances.boxes[:found] + rng.normal(0, 2, (found, 4))
    grid = np.linspace(-1, 1, 28, dtype=np.float32)
    radius = np.sqrt(grid[None, :, None] ** 2 + grid[None, None, :] ** 2)  # (1, 28, 28)
    masks = 1 / (1 + np.exp(8 * (radius - rng.uniform(0.5, 1.0, (count, 1, 1)))))
    ids = rng.integers(0, num_classes, count).astype(np.float32)
    ids[:found] = instances.labels[:found]
    scores = np.sort(rng.uniform(0.05, 1, count))[::-1].astype(np.float32)
    return ids, scores, boxes, masks.astype(np.float32)


def _full_paste_results(outputs, meta, category_ids):
    """COCO results of one image the way evaluation made them before masks were encoded from
    their boxes: every mask pasted into a full H x W array, then ``pycocotools.mask.encode``."""
    from pycocotools import mask as mask_utils

    from ..inference import detections_to_original

    det = detections_to_original(*outputs, 1.0, meta["height"], meta["width"], mask_format="full")
    results = []
    for box, label, score, mask in zip(det["boxes"], det["labels"], det["scores"], det["masks"]):
        rle = mask_utils.encode(np.asfortranarray(mask))
        results.append({"image_id": meta["id"], "category_id": category_ids[label],
                        "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                        "score": float(score),
                        "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode()}})
    return results


def _encode_all(images, encode, threads):
    """[results of each image] with ``encode(outputs, meta)``, in ``threads`` threads."""
    import concurrent.futures

    if threads <= 1:
        return [encode(outputs, meta) for outputs, meta in images]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda item: encode(*item), images))


def run_eval_benchmark(root=None, num_images=COCO_VAL_IMAGES, num_annotations=COCO_VAL_ANNOTATIONS,
                       detections=100, seed=0, threads=1, before=True):
    """Time scoring ``num_images`` images with ``detections`` each (boxes and masks) as our
    evaluation does: masks pasted and RLE-encoded, before (full H x W paste, then
    ``pycocotools.mask.encode``; one thread, as evaluation ran it) and now (encoded from each
    box, in ``threads`` threads, as ``predict_dataset`` runs it), the two checked equal; then
    COCOeval (bbox and segm) with pycocotools and with faster-coco-eval when installed. Prints
    and returns the times and the figures of each evaluator."""
    from ..data.coco import COCOInstances
    from ..engine.evaluation import coco_evaluate, image_results

    root = root or tempfile.mkdtemp(prefix="coco-val-scale-")
    path = os.path.join(root, "annotations", "instances_val2017.json")
    if not os.path.exists(path):
        write_coco_scale_annotations(path, num_images, num_annotations, seed + 1)
    dataset = COCOInstances(root, "val2017", skip_empty=False)
    rng = np.random.default_rng(seed)
    images = [(_fake_outputs(rng, meta["width"], meta["height"], len(dataset.classes), detections,
                             dataset.instances(i)), meta) for i, meta in enumerate(dataset.images)]
    report = {}
    start = time.perf_counter()
    now = _encode_all(images, lambda outputs, meta: image_results(outputs, 1.0, meta, dataset.category_ids), threads)
    report["paste_and_encode"] = time.perf_counter() - start
    print("%d images x %d detections: masks encoded from their boxes, %d threads: %.1f s"
          % (len(dataset), detections, threads, report["paste_and_encode"]))
    if before:
        start = time.perf_counter()
        old = _encode_all(images, lambda outputs, meta: _full_paste_results(outputs, meta, dataset.category_ids), 1)
        report["paste_and_encode_before"] = time.perf_counter() - start
        same = all(a == b for old_image, new_image in zip(old, now) for a, b in zip(old_image, new_image)) and \
            [len(r) for r in old] == [len(r) for r in now]
        report["identical"] = bool(same)
        print("before (full paste, pycocotools encode, 1 thread): %.1f s; results identical: %s (%.1fx)"
              % (report["paste_and_encode_before"], same, report["paste_and_encode_before"] / report["paste_and_encode"]))
    results = sum(now, [])

    for evaluator in ("pycocotools", "faster-coco-eval"):
        start = time.perf_counter()
        try:
            metrics = coco_evaluate(path, results, evaluator=evaluator)
        except Exception as err:  # the optional package missing
            print("%-17s not run: %s" % (evaluator, err))
            continue
        seconds = time.perf_counter() - start
        report[evaluator] = (seconds, metrics)
        print("%-17s COCOeval bbox + segm %.1f s; segm AP %.4f, bbox AP %.4f"
              % (evaluator, seconds, metrics["segm"]["AP"], metrics["bbox"]["AP"]))
    return report
