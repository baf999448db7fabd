"""Print the GluonCV parity comparison for zoo names (the 50/101 ones are too slow for CI):
stage by stage and end to end at inference, and, with --training, one training step (losses,
gradients and the SGD update on the same injected samples).

    OMP_NUM_THREADS=2 python scripts/compare_gluoncv.py mask_rcnn_fpn_resnet50_v1b_coco --training
"""
import argparse
import json

from gluon_maskrcnn.benchmarks import parity
from gluon_maskrcnn.model_zoo import PRESETS, get_model_list


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", default=get_model_list())
    p.add_argument("--size", type=int, nargs=2, default=[384, 512])
    p.add_argument("--training", action="store_true", help="also compare one training step")
    return p


def main():
    args = build_parser().parse_args()
    for name in args.names:
        reference, ours, _ = parity.load_pair(name)
        stages = parity.stage_differences(reference, ours, parity.random_image(256, 320, seed=1))
        x = parity.random_image(*args.size, seed=2)
        match = parity.match_detections(parity.detections_numpy(reference(x)), parity.detections_numpy(ours(x)))
        report = dict(model=name, stage_max_abs_diff=stages, top100=match)
        if args.training:
            reference, ours, _ = parity.load_pair(name)
            batch = parity.training_batch(PRESETS[name])
            report["training"] = parity.training_differences(reference, ours, batch)
        print(json.dumps(report))


if __name__ == "__main__":
    main()
