"""GPU smoke test: the checks no CPU test can make (see gluon_maskrcnn.benchmarks.gpu_smoke).

    python scripts/gpu_smoke.py                       # on gpu(0), and gpu(1) if present
    python scripts/gpu_smoke.py --backbone resnet50_v1b-0ecdba34.params
    python scripts/gpu_smoke.py --devices stand-in    # the same checks on cpu(1), cpu(2)

Prints one line per check (pass, FAIL or skip) and exits 1 if any failed.
"""
import argparse
import sys

from gluon_maskrcnn.benchmarks.gpu_smoke import format_table, run_checks
from gluon_maskrcnn.errors import run_main


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", choices=("gpu", "stand-in"), default="gpu")
    p.add_argument("--backbone", default=None, help="a ResNet-50 v1b ImageNet parameter file (default: "
                   "random weights written to a temporary file)")
    return p


def main():
    args = build_parser().parse_args()
    results = run_checks(args.devices, backbone=args.backbone)
    print(format_table(results))
    return 1 if any(passed is False for _, passed, _ in results) else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
