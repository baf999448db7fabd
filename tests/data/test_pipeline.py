"""Transforms, batching, samplers, the synthetic dataset and worker streaming."""
import json
import os

import cv2
import mxnet as mx
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from gluon_maskrcnn.data.batchify import TrainBatchify, ValBatchify
from gluon_maskrcnn.data.coco import COCOInstances, Instances
from gluon_maskrcnn.data.rpn_targets import RPNTargetGenerator
from gluon_maskrcnn.data.loader import train_loader
from gluon_maskrcnn.data.samplers import AspectRatioBatchSampler
from gluon_maskrcnn.data.synthetic import ensure_synthetic_coco, write_synthetic_coco
from gluon_maskrcnn.data.transforms import TrainTransform, rasterize, resize_scale
from gluon_maskrcnn.model_zoo import PRESETS
from gluon_maskrcnn.viz import draw_instances, save_png


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("syn"))
    write_synthetic_coco(root, num_train=12, num_val=4, height=96, width=128, seed=3)
    return root


def test_resize_scale():
    assert resize_scale(600, 800, 800, 1333) == pytest.approx(800 / 600)
    assert resize_scale(400, 2000, 800, 1333) == pytest.approx(1333 / 2000)


def test_train_transform_resizes_flips_and_rasterizes():
    image = np.zeros((50, 100, 3), np.uint8)
    image[10:20, 0:30] = 255
    square = np.array([[0, 10], [30, 10], [30, 20], [0, 20]], np.float32)
    inst = Instances([[0, 10, 30, 20]], [2], [("polygons", [square])])
    img, boxes, labels, masks = TrainTransform(short=100, max_size=1000, flip_prob=1.0)(image, inst)
    assert img.shape == (3, 100, 200) and masks.shape == (1, 100, 200)
    np.testing.assert_allclose(boxes, [[200 - 60, 20, 200, 40]])  # scaled by 2, then flipped
    assert labels.tolist() == [2.0]
    assert masks[0, 20:40, 140:200].mean() > 0.95 and masks[0, :, :130].sum() == 0
    # normalised: the white stripe is (1 - mean) / std
    np.testing.assert_allclose(img[:, 30, 190], (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]), rtol=1e-5)


def test_rle_rasterize_matches_pycocotools():
    m = np.zeros((20, 30), np.uint8)
    m[4:12, 6:21] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    np.testing.assert_array_equal(rasterize(("rle", rle), (20, 30), (20, 30), 1, 1, False), m)
    np.testing.assert_array_equal(rasterize(("rle", rle), (20, 30), (20, 30), 1, 1, True), m[:, ::-1])


def test_polygon_rasterize_equals_coco_evaluation():
    poly = np.array([[3.5, 2.0], [25.0, 4.0], [14.0, 18.5]], np.float32)
    ours = rasterize(("polygons", [poly]), (20, 30), (20, 30), 1, 1, False)
    theirs = mask_utils.decode(mask_utils.frPyObjects([poly.reshape(-1).tolist()], 20, 30))[:, :, 0]
    np.testing.assert_array_equal(ours, theirs)
    flipped = rasterize(("polygons", [poly]), (20, 30), (20, 30), 1, 1, True)
    mirror = poly * [-1, 1] + [30, 0]
    expected = mask_utils.decode(mask_utils.frPyObjects([mirror.reshape(-1).tolist()], 20, 30))[:, :, 0]
    np.testing.assert_array_equal(flipped, expected)


def test_train_batchify_pads_and_computes_rpn_targets():
    gen = RPNTargetGenerator.from_preset(PRESETS["mask_rcnn_fpn_resnet18_v1b_coco"])
    samples = [(np.ones((3, 64, 80), np.float32), np.array([[5, 5, 40, 40]], np.float32), np.array([1.0]),
                np.ones((1, 64, 80), np.uint8)),
               (np.ones((3, 70, 60), np.float32), np.zeros((0, 4), np.float32), np.zeros((0,)), np.zeros((0, 70, 60), np.uint8))]
    images, boxes, labels, masks, cls_t, box_t, box_m = TrainBatchify(gen, size_multiple=32, seed=0)(samples)
    assert images.shape == (2, 3, 96, 96) and masks.shape == (2, 1, 96, 96)
    assert images[1, :, 70:, :].sum().asscalar() == 0 and images[1, :, :70, :60].min().asscalar() == 1
    np.testing.assert_array_equal(boxes.asnumpy()[1], [[-1, -1, -1, -1]])
    np.testing.assert_array_equal(labels.asnumpy()[:, 0, 0], [1, -1])
    assert cls_t.shape == (2, len(gen.anchors(96, 96)))
    assert (cls_t[0] == 1).sum().asscalar() > 0 and (cls_t[1] == 1).sum().asscalar() == 0


def test_global_batches_hold_the_same_images_however_they_are_split():
    ratios = np.random.RandomState(4).uniform(0.5, 2.0, size=23)
    whole = list(AspectRatioBatchSampler(ratios, batch_size=4, seed=3, last_batch="discard"))
    for shards, per_shard in ((2, 2), (4, 1)):
        parts = [list(AspectRatioBatchSampler(ratios, per_shard, seed=3, num_shards=shards, shard_index=k,
                                              last_batch="discard")) for k in range(shards)]
        assert all(len(p) == len(whole) for p in parts)
        for step, batch in enumerate(whole):  # step i of every shard is a slice of global batch i
            assert sum((p[step] for p in parts), []) == batch


def test_an_images_random_choices_do_not_depend_on_its_batch_partners():
    """Anchor subsampling and ROI-sampling keys come from the image's own seed."""
    gen = RPNTargetGenerator.from_preset(PRESETS["mask_rcnn_fpn_resnet18_v1b_coco"])
    rng = np.random.RandomState(0)

    def sample(seed):
        boxes = np.array([[5, 5, 40, 40], [20, 10, 60, 50]], np.float32)
        return (rng.rand(3, 64, 64).astype(np.float32), boxes, np.array([0.0, 1.0]),
                np.ones((2, 64, 64), np.uint8), seed)

    a, b = sample(11), sample(12)
    batchify = TrainBatchify(gen, sampled_rpn=True, roi_key_count=50)
    together, alone = batchify([a, b]), batchify([a])
    assert len(together) == 9 and together[-1].shape == (2, 50)
    for both, single in zip(together[4:], alone[4:]):  # RPN targets, anchor ids and ROI keys
        np.testing.assert_array_equal(both.asnumpy()[0], single.asnumpy()[0])
    assert not np.array_equal(together[-1].asnumpy()[0], together[-1].asnumpy()[1])
    assert 0 <= together[-1].asnumpy().min() and together[-1].asnumpy().max() < 1


def test_val_batchify():
    images, infos = ValBatchify()([(np.ones((3, 10, 12), np.float32), np.array([10, 12, 0.5], np.float32)),
                                   (np.ones((3, 12, 8), np.float32), np.array([12, 8, 0.5], np.float32))])
    assert images.shape == (2, 3, 12, 12) and infos.shape == (2, 3)


def test_aspect_ratio_sampler_groups_and_shards():
    ratios = np.array([1.5, 0.5, 1.2, 0.7, 1.3, 0.6, 2.0, 0.8])
    sampler = AspectRatioBatchSampler(ratios, batch_size=2, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(8))
    for batch in batches:
        assert len({bool(ratios[i] >= 1) for i in batch}) == 1
    shards = [list(AspectRatioBatchSampler(ratios, 2, seed=1, num_shards=2, shard_index=k)) for k in range(2)]
    assert len(shards[0]) == len(shards[1]) == 2
    assert not set(map(tuple, shards[0])) & set(map(tuple, shards[1]))
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_synthetic_is_valid_coco_and_reproducible(synthetic, tmp_path):
    coco = COCO(os.path.join(synthetic, "annotations", "instances_train.json"))
    assert len(coco.getImgIds()) == 12 and sorted(coco.getCatIds()) == [1, 3, 5, 7]
    kinds = set()
    for ann in coco.loadAnns(coco.getAnnIds()):
        mask = coco.annToMask(ann)
        assert mask.sum() == ann["area"]
        kinds.add("polygon" if isinstance(ann["segmentation"], list) else "rle")
    assert kinds == {"polygon", "rle"}
    again = str(tmp_path / "again")
    write_synthetic_coco(again, num_train=12, num_val=4, height=96, width=128, seed=3)
    for split in ("train", "val"):
        a = json.load(open(os.path.join(synthetic, "annotations", "instances_%s.json" % split)))
        b = json.load(open(os.path.join(again, "annotations", "instances_%s.json" % split)))
        assert a == b


def test_synthetic_dataset_is_rewritten_when_its_size_changes(tmp_path):
    root = str(tmp_path / "synthetic")
    small = dict(height=64, width=80, seed=2)
    assert ensure_synthetic_coco(root, 5, 2, **small)
    assert not ensure_synthetic_coco(root, 5, 2, **small)  # same arguments: kept as it is
    assert ensure_synthetic_coco(root, 3, 1, **small)  # another size: written again
    assert len(os.listdir(os.path.join(root, "train"))) == 3  # no images left from the larger set
    assert len(COCO(os.path.join(root, "annotations", "instances_val.json")).getImgIds()) == 1
    os.remove(os.path.join(root, "synthetic_spec.json"))  # a set of unknown origin is rewritten
    assert ensure_synthetic_coco(root, 3, 1, **small)


def test_two_dataloader_workers_give_the_batches_of_one_process(synthetic):
    """The training loader (per-sample seeds) gives the same arrays, all nine of them, whichever
    process builds a batch: two worker processes or the main one."""
    ds = COCOInstances(synthetic, "train")
    gen = RPNTargetGenerator.from_preset(PRESETS["mask_rcnn_fpn_resnet18_v1b_coco"])

    def batches(num_workers):
        loader, sampler = train_loader(ds, TrainTransform(short=96, max_size=160), gen, 2, num_workers,
                                       seed=5, roi_key_count=40)
        sampler.set_epoch(1)
        return [[a.asnumpy() for a in batch] for batch in loader]

    workers, main = batches(2), batches(0)
    assert len(workers) == len(main) == len(ds) // 2
    for batch, expected in zip(workers, main):
        assert len(batch) == 9 and batch[0].shape[0] == 2
        for got, want in zip(batch, expected):
            np.testing.assert_array_equal(got, want)


def test_worker_failure_names_the_image(synthetic):
    ds = COCOInstances(synthetic, "train")
    broken = ds.image_path(3)
    with open(broken, "wb") as f:
        f.write(b"garbage")
    loader = mx.gluon.data.DataLoader(ds.transform(TrainTransform(short=96, max_size=160)), batch_size=2,
                                      batchify_fn=TrainBatchify(RPNTargetGenerator((16,), ((32,),), (1,))),
                                      num_workers=2)
    with pytest.raises(Exception) as err:
        for _ in loader:
            pass
    assert os.path.basename(broken) in str(err.value)


def test_draw_and_save_png(tmp_path):
    image = np.zeros((40, 50, 3), np.uint8)
    mask = np.zeros((1, 40, 50))
    mask[0, 5:20, 5:25] = 1
    drawn = draw_instances(image, [[5, 5, 25, 20]], [1], [0.9], mask, ["a", "b"])
    assert drawn[10, 10].sum() > 0 and image.sum() == 0
    path = save_png(str(tmp_path / "out" / "x.png"), drawn)
    back = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, drawn)  # lossless, in RGB order
