"""train_once reuses a finished run keyed by its recipe; require_segm_ap; a run's pictures."""
import os

import pytest

from gluon_maskrcnn.engine import trainer
from gluon_maskrcnn.engine.cached import ModelQualityError, recipe_key, require_segm_ap, train_once
from gluon_maskrcnn.engine.metrics import best_evaluation
from gluon_maskrcnn.engine.pictures import (pictures_markdown, replace_marked_block, save_run_pictures,
                                            update_marked_block)
from gluon_maskrcnn.errors import UserError

from train_helpers import make_args, script_segm_ap


def _metrics(segm, bbox):
    return {"segm": {"AP": segm}, "bbox": {"AP": bbox}}


def test_recipe_key_ignores_where_a_run_writes_and_follows_what_it_learns(tiny_root):
    a = make_args(tiny_root, "runs/a")
    b = make_args(tiny_root, "elsewhere/b", "--num-workers", "2", "--keep-checkpoints", "3")
    assert recipe_key(a) == recipe_key(b)
    assert recipe_key(make_args(tiny_root, "runs/a", "--lr", "0.02")) != recipe_key(a)
    assert recipe_key(make_args(tiny_root, "runs/a", "--seed", "1")) != recipe_key(a)
    assert len(recipe_key(a)) == 12


def test_require_segm_ap_names_the_model_and_its_score():
    assert require_segm_ap(_metrics(0.61, 0.7), 0.5, "m") == pytest.approx(0.61)
    with pytest.raises(ModelQualityError, match=r"the docs model reaches segm AP 0\.420, below the 0\.50"):
        require_segm_ap(_metrics(0.42, 0.45), 0.5, "the docs model")
    with pytest.raises(ModelQualityError, match="m has no evaluation"):
        require_segm_ap(None, 0.5, "m")
    assert issubclass(ModelQualityError, UserError)


def test_train_once_trains_then_reuses_the_finished_run(tiny_root, tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    args = make_args(tiny_root, "ignored/prefix", "--epochs", "2", "--val-interval", "1")
    with monkeypatch.context() as scripted:
        script_segm_ap(scripted, [0.6, 0.2])  # the first evaluation is the best
        first = train_once(args, cache)
    assert first["trained"]
    assert first["prefix"] == os.path.join(cache, recipe_key(args), "mask_rcnn")
    assert os.path.exists(first["prefix"] + "-best.params")
    best = best_evaluation(first["prefix"])
    assert best["epoch"] == 1 and first["metrics"] == best["metrics"] and first["metrics"]["segm"]["AP"] == 0.6

    def no_training(args):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(trainer, "fit", no_training)
    again = train_once(make_args(tiny_root, "other/prefix", "--epochs", "2", "--val-interval", "1"), cache)
    assert not again["trained"] and again["prefix"] == first["prefix"] and again["metrics"] == first["metrics"]

    # a longer schedule is another recipe: not finished, so it would train
    with pytest.raises(AssertionError, match="trained again"):
        train_once(make_args(tiny_root, "p", "--epochs", "3", "--val-interval", "1"), cache)

    pictures = save_run_pictures(first["prefix"], str(tmp_path / "pictures"), count=2)
    for key in ("predictions", "curves"):
        assert os.path.getsize(pictures[key]) > 1000
    markdown = pictures_markdown(pictures, str(tmp_path))
    assert "(pictures/predictions.png)" in markdown and "(pictures/curves.png)" in markdown
    assert "segm AP %.2f, bbox AP %.2f on the 2 val images" % (best["segm_AP"], best["bbox_AP"]) in markdown


def test_a_run_without_evaluation_cannot_be_pictured(tmp_path):
    with pytest.raises(UserError, match="has no evaluation"):
        best_evaluation(str(tmp_path / "nothing"))


def test_replace_marked_block_keeps_the_rest_and_names_missing_markers():
    text = "intro\n<!-- run-pictures -->\nold\n<!-- /run-pictures -->\nend\n"
    assert replace_marked_block(text, "new\n", "run-pictures") == \
        "intro\n<!-- run-pictures -->\nnew\n<!-- /run-pictures -->\nend\n"
    with pytest.raises(UserError, match="no '<!-- other -->'"):
        replace_marked_block(text, "x", "other")


def test_update_marked_block_rewrites_the_file_and_names_it_when_the_markers_are_missing(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- run-pictures -->\nold\n<!-- /run-pictures -->\n")
    update_marked_block(str(readme), "new\n", "run-pictures")
    assert readme.read_text() == "a\n<!-- run-pictures -->\nnew\n<!-- /run-pictures -->\n"
    with pytest.raises(UserError, match=r"README\.md: no '<!-- other -->'"):
        update_marked_block(str(readme), "x", "other")
    assert "new" in readme.read_text()  # unchanged by the refused call
