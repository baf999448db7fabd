"""Run as a file by ``test_amp.py``: trace the inference and training graphs under
``amp.init()`` (which patches MXNet for the whole process, hence a process of its own) and
print the output types that ``infer_type`` gives for float32 inputs, one JSON line per graph."""
import json
import sys

import mxnet as mx
import numpy as np
from mxnet import autograd

from gluon_maskrcnn.engine.amp import init_amp

if __name__ == "__main__":
    if sys.argv[1:] == ["amp"]:
        init_amp()
    import gluon_maskrcnn as gm  # noqa: E402  (after amp.init, as the trainer builds)
    from helpers import TINY, TINY_CLASSES  # noqa: E402

    for name in ("mask_rcnn_fpn_resnet18_v1b_coco", "mask_rcnn_resnet18_v1b_coco"):
        net = gm.get_model(name, pretrained_base=False, classes=TINY_CLASSES, **TINY)
        data = mx.sym.var("data")
        graphs = {"inference": net(data)}
        with autograd.train_mode():
            targets = {n: mx.sym.var(n) for n in ("gt_boxes", "gt_labels", "rpn_anchor_ids", "roi_keys",
                                                  "gt_masks", "rpn_cls", "rpn_box", "rpn_mask")}
            out = net(data, targets["gt_boxes"], targets["gt_labels"], targets["rpn_anchor_ids"], targets["roi_keys"])
            graphs["training"] = out
            fg = lambda t: net.sampler.foreground(mx.sym, t)  # noqa: E731
            mask_targets, mask_weights = net.mask_target(fg(out.rois), targets["gt_masks"], fg(out.matches),
                                                         fg(out.cls_targets))
            graphs["losses"] = net.loss(out.raw_rpn_score, out.raw_rpn_box, targets["rpn_cls"], targets["rpn_box"],
                                        targets["rpn_mask"], out.cls_pred, out.cls_targets, out.box_pred,
                                        out.box_targets, out.box_masks, out.mask_pred, mask_targets, mask_weights)
        for graph, outputs in graphs.items():
            group = mx.sym.Group(list(outputs))
            inputs = {n: "float32" for n in group.list_arguments() if n == "data" or n in targets}
            try:
                _, types, _ = group.infer_type(**inputs)
                result = {"graph": graph, "name": name, "types": [str(np.dtype(t)) for t in types],
                          "casts": sum(1 for n in json.loads(group.tojson(remove_amp_cast=False))["nodes"] if n["op"].startswith("amp_"))}
            except mx.base.MXNetError as err:
                result = {"graph": graph, "name": name, "error": str(err).splitlines()[-1][:300]}
            print(json.dumps(result), flush=True)
