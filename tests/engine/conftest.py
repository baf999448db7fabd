import pytest

from gluon_maskrcnn.data.synthetic import write_synthetic_coco


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tiny"))
    write_synthetic_coco(root, num_train=4, num_val=2, height=96, width=128, seed=5, max_objects=2)
    return root
