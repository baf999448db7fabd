"""Arguments of a small, fast training run (every width given: the tests' hand-picked limits,
such as a clipping norm between two steps' gradient norms, must not follow the recipes)."""
from gluon_maskrcnn.engine.cli import build_parser, apply_recipe

SMALL = ["--network", "resnet18_v1b", "--use-fpn", "--gpus", "", "--no-pretrained-base", "--train-all",
         "--short", "96", "--max-size", "128", "--rpn-channels", "64", "--fpn-channels", "128",
         "--mask-channels", "128", "--box-hidden", "512", "--num-sample", "64",
         "--rpn-train-pre-nms", "500", "--rpn-train-post-nms", "128", "--rpn-test-pre-nms", "300",
         "--rpn-test-post-nms", "64", "--max-dets", "20", "--num-workers", "0", "--lr-warmup", "5",
         "--val-interval", "0", "--quiet", "--dataset", "synthetic", "--log-interval", "1", "--no-hybridize",
         "--batch-size", "1"]


def make_argv(root, prefix, *extra):
    return SMALL + ["--dataset-root", root, "--save-prefix", prefix] + list(extra)


def make_args(root, prefix, *extra):
    return apply_recipe(build_parser().parse_args(make_argv(root, prefix, *extra)))


def script_segm_ap(monkeypatch, values):
    """Make the trainer's evaluations report segm AP ``values`` in turn (the rest of each
    evaluation is real), so that a test knows which evaluation is the best."""
    from gluon_maskrcnn.engine import trainer

    evaluate, remaining = trainer.evaluate, list(values)

    def scripted(*args, **kwargs):
        metrics = evaluate(*args, **kwargs)
        metrics["segm"]["AP"] = remaining.pop(0)
        return metrics

    monkeypatch.setattr(trainer, "evaluate", scripted)
