"""Launch dist_sync training on this machine over loopback:

    python scripts/launch.py -n 2 -s 1 -- python scripts/train_mask_rcnn.py --kv-store dist_sync ...
"""
import argparse
import sys

from gluon_maskrcnn.engine.launcher import launch_local


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--num-workers", type=int, required=True)
    parser.add_argument("-s", "--num-servers", type=int, default=1)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--grace", type=int, default=120,
                        help="after SIGTERM, seconds to wait for the workers' checkpoint")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    return parser


def main():
    parser = build_parser()
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the worker command after --")
    sys.exit(launch_local(command, args.num_workers, args.num_servers, args.host, grace=args.grace))


if __name__ == "__main__":
    main()
