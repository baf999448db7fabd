"""Times torchvision's Mask R-CNN for the benchmarks, beside ours and GluonCV's.

It runs as a file in a Python that has ``torch`` and ``torchvision`` (often another venv: the
benchmarks take ``--torch-python``), and imports neither MXNet nor ``gluon_maskrcnn``::

    python gluon_maskrcnn/benchmarks/torchvision_worker.py infer out.json 800 1216 2 3
    python gluon_maskrcnn/benchmarks/torchvision_worker.py train out.json sample.npz 2 3

It writes ``{"seconds": median, "rss": peak GB, ...}`` to the JSON file. The timing helpers
come from ``timing.py`` beside it, which needs nothing but the standard library.
"""
import json
import os
import sys

from timing import median_seconds, peak_rss_gb  # run as a file: its folder is on sys.path


def build_model(short, max_size, trainable_layers):
    """maskrcnn_resnet50_fpn as torchvision trains it from ImageNet weights: frozen BN, the last
    ``trainable_layers`` stages trainable; random weights. No score threshold, so inference always
    computes 100 masks, as ours and GluonCV's do with random weights."""
    import torch
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops import FrozenBatchNorm2d

    torch.manual_seed(0)
    backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d,
                                   trainable_layers=trainable_layers)
    return MaskRCNN(backbone, num_classes=91, min_size=short, max_size=max_size,
                    box_score_thresh=0.0, box_detections_per_img=100)


def time_inference(height, width, warmup, runs):
    import torch

    net = build_model(height, max(height, width), trainable_layers=3).eval()
    image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(7))

    def run():
        with torch.no_grad():
            return net([image])[0]

    seconds = median_seconds(run, warmup, runs)
    return dict(seconds=seconds, rss=peak_rss_gb(), detections=int(run()["masks"].shape[0]))


def time_training(sample_path, warmup, runs):
    """One SGD step on one image whose boxes, labels and masks the parent wrote (.npz)."""
    import numpy as np
    import torch

    sample = np.load(sample_path)
    image = torch.from_numpy(sample["image"]).float()  # (3, H, W), already resized
    target = dict(boxes=torch.from_numpy(sample["boxes"]).float(),
                  labels=torch.from_numpy(sample["labels"]).long(),
                  masks=torch.from_numpy(sample["masks"]).to(torch.uint8))
    height, width = image.shape[1:]
    net = build_model(min(height, width), max(height, width), trainable_layers=3).train()
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    losses = {}

    def step():
        optimizer.zero_grad()
        losses.update(net([image], [target]))
        sum(losses.values()).backward()
        optimizer.step()

    seconds = median_seconds(step, warmup, runs)
    return dict(seconds=seconds, rss=peak_rss_gb(), loss=float(sum(losses.values())))


def main(argv):
    import torch
    import torchvision

    threads = int(os.environ.get("OMP_NUM_THREADS", "0"))
    if threads:
        torch.set_num_threads(threads)
    mode, out = argv[:2]
    if mode == "infer":
        height, width, warmup, runs = argv[2:6]
        result = time_inference(int(height), int(width), int(warmup), int(runs))
    else:
        sample, warmup, runs = argv[2:5]
        result = time_training(sample, int(warmup), int(runs))
    result.update(torch=torch.__version__, torchvision=torchvision.__version__, threads=torch.get_num_threads())
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1:])
