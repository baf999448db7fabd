"""Export a model to MODEL-symbol.json and MODEL-0000.params for SymbolBlock.imports.

    python scripts/export_mask_rcnn.py --model runs/mask_rcnn-best --out exported/mask_rcnn --size 256 320
"""
import argparse

import mxnet as mx

from gluon_maskrcnn.engine.loading import load_model


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--params", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, nargs=2, default=[800, 1333], help="input height width to trace with")
    args = p.parse_args()
    net = load_model(args.model, args.params)
    net.hybridize(static_alloc=True, static_shape=True)
    net(mx.nd.zeros((1, 3) + tuple(args.size)))
    net.export(args.out)
    print("wrote %s-symbol.json and %s-0000.params" % (args.out, args.out))


if __name__ == "__main__":
    main()
