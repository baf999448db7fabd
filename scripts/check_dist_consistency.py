"""Repeat a two-worker dist_sync training on loopback and count the runs that end with
identical parameters on every worker:

    python scripts/check_dist_consistency.py -n 40
"""
import argparse
import sys

from gluon_maskrcnn.engine.consistency import repeat_dist_sync


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--runs", type=int, default=40)
    parser.add_argument("-w", "--workers", type=int, default=2)
    parser.add_argument("--workdir", default=None, help="logs and checkpoints (default: a new temporary folder)")
    return parser


def main():
    args = build_parser().parse_args()
    results = repeat_dist_sync(args.runs, args.workers, args.workdir)
    identical = sum(ok for _, ok, _ in results)
    print("%d of %d runs ended with identical parameters on all %d workers" % (identical, len(results), args.workers))
    sys.exit(0 if identical == len(results) else 1)


if __name__ == "__main__":
    main()
