"""COCO bbox and segm AP of a model on any COCO-format split.

    python scripts/eval_mask_rcnn.py --model runs/mask_rcnn-best --dataset-root data/synthetic --split val
    python scripts/eval_mask_rcnn.py --model mask_rcnn_fpn_resnet50_v1b_coco --dataset-root ~/coco --split val2017
"""
import argparse
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))

from gluon_maskrcnn.data.coco import COCOInstances  # noqa: E402
from gluon_maskrcnn.engine.cli import add_device_flag, inference_context  # noqa: E402
from gluon_maskrcnn.engine.evaluation import (EvaluationTimes, evaluate, format_metrics, format_per_class,  # noqa: E402
                                              write_per_class_csv)
from gluon_maskrcnn.engine.loading import load_model  # noqa: E402
from gluon_maskrcnn.errors import run_main  # noqa: E402


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="zoo name or checkpoint prefix")
    p.add_argument("--params", default=None, help=".params file for a zoo name")
    p.add_argument("--dataset-root", required=True)
    p.add_argument("--split", default="val2017")
    p.add_argument("--results", default="results/%s_results.json")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--per-class", action="store_true",
                   help="also write per-class bbox and segm AP as CSV beside the results (RESULTS_per_class.csv)")
    p.add_argument("--coco-evaluator", default="pycocotools", choices=["pycocotools", "faster-coco-eval"],
                   help="COCOeval implementation (faster-coco-eval: same figures, faster)")
    add_device_flag(p)
    return p


def main():
    args = build_parser().parse_args()
    ctx = inference_context(args.gpus)
    net = load_model(args.model, args.params, ctx=ctx)
    net.hybridize(static_alloc=True, static_shape=True)
    dataset = COCOInstances(args.dataset_root, args.split, skip_empty=False)
    results = args.results % args.split if "%s" in args.results else args.results
    times = EvaluationTimes()
    metrics = evaluate(net, dataset, ctx=[ctx], num_workers=args.num_workers, results_file=results,
                       evaluator=args.coco_evaluator, times=times)
    print(format_metrics(metrics))
    print("per class (AP)\n%s" % format_per_class(metrics))
    print("%d images: %s" % (len(dataset), times))
    print("results written to %s" % results)
    if args.per_class:
        table = os.path.splitext(results)[0] + "_per_class.csv"
        write_per_class_csv(metrics, table)
        print("per-class AP written to %s" % table)


if __name__ == "__main__":
    sys.exit(run_main(main))
