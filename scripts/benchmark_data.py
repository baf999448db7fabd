"""Data pipeline speed: our train transform + RPN targets + batching vs GluonCV's, same images.

    OMP_NUM_THREADS=2 python scripts/benchmark_data.py

With --coco-scale: an annotation file with COCO train2017's counts (118,287 images, 860,001
annotations; written once into --root from --seed), loaded by ours, pycocotools and GluonCV,
each in a fresh process (time, peak memory), then the private memory of 4 DataLoader workers
streaming its annotations:

    python scripts/benchmark_data.py --coco-scale --root /tmp/coco-scale

With --coco-eval: 5,000 images with 100 detections each (boxes and masks) scored as our
evaluation does, with pycocotools and with faster-coco-eval:

    python scripts/benchmark_data.py --coco-eval --root /tmp/coco-val-scale

--json OUT also writes the results as JSON (the docs' benchmarks page plots them).
"""
import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))

from gluon_maskrcnn.benchmarks.coco_scale import (COCO_TRAIN_ANNOTATIONS, COCO_TRAIN_IMAGES,  # noqa: E402
                                                   COCO_VAL_ANNOTATIONS, COCO_VAL_IMAGES, run_coco_scale_benchmark,
                                                   run_eval_benchmark)
from gluon_maskrcnn.benchmarks.data import run_data_benchmark  # noqa: E402
from gluon_maskrcnn.benchmarks.report import add_json_argument, write_results  # noqa: E402


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mask_rcnn_fpn_resnet50_v1b_coco")
    p.add_argument("--num-images", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--coco-scale", action="store_true", help="load time and memory at COCO train's size")
    p.add_argument("--root", default=None, help="--coco-scale: folder of the file (reused if present)")
    p.add_argument("--coco-images", type=int, default=COCO_TRAIN_IMAGES)
    p.add_argument("--coco-annotations", type=int, default=COCO_TRAIN_ANNOTATIONS)
    p.add_argument("--worker-items", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--coco-eval", action="store_true",
                   help="time scoring 5,000 images x 100 detections (paste, RLE, COCOeval) with pycocotools "
                   "and faster-coco-eval")
    p.add_argument("--eval-images", type=int, default=5000, help="--coco-eval: images (COCO val: 5,000)")
    p.add_argument("--eval-threads", type=int, default=1, help="--coco-eval: threads encoding masks")
    p.add_argument("--skip-before", action="store_true",
                   help="--coco-eval: do not time the former full-image paste for comparison")
    add_json_argument(p)
    return p


def main():
    args = build_parser().parse_args()
    if args.coco_eval:
        benchmark, results = "data --coco-eval", run_eval_benchmark(args.root, num_images=args.eval_images,
                           num_annotations=round(args.eval_images * COCO_VAL_ANNOTATIONS / COCO_VAL_IMAGES),
                           seed=args.seed, threads=args.eval_threads, before=not args.skip_before)
    elif args.coco_scale:
        benchmark, results = "data --coco-scale", run_coco_scale_benchmark(args.root, args.coco_images, args.coco_annotations, args.worker_items, args.seed)
    else:
        benchmark, results = "data", run_data_benchmark(args.model, args.num_images, batch_size=args.batch_size)
    write_results(args.json, benchmark, results, args)


if __name__ == "__main__":
    main()
