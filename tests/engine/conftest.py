import pytest

from gluon_maskrcnn.data.synthetic import write_synthetic_coco
from gluon_maskrcnn.engine.cli import build_parser, prepare_dataset

SMALL = ["--network", "resnet18_v1b", "--use-fpn", "--gpus", "", "--no-pretrained-base", "--train-all",
         "--short", "96", "--max-size", "128", "--rpn-channels", "64", "--num-sample", "64",
         "--rpn-train-pre-nms", "500", "--rpn-train-post-nms", "128", "--rpn-test-pre-nms", "300",
         "--rpn-test-post-nms", "64", "--max-dets", "20", "--num-workers", "0", "--lr-warmup", "5",
         "--val-interval", "0", "--quiet", "--dataset", "synthetic", "--log-interval", "1"]


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tiny"))
    write_synthetic_coco(root, num_train=4, num_val=2, height=96, width=128, seed=5, max_objects=2)
    return root


def make_args(root, prefix, *extra):
    return prepare_dataset(build_parser().parse_args(SMALL + ["--dataset-root", root, "--save-prefix", prefix]
                                                     + list(extra)))
