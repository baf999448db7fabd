"""Checkpoints written atomically: parameters, trainer state, and a JSON of the run state.

A checkpoint ``PREFIX-NAME`` is three files: ``.params``, ``.states`` and ``.json``; the JSON is
written last, so a checkpoint whose JSON exists is complete. Each file goes to a temporary
name first and is renamed into place.
"""
import json
import os

from ..files import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_args"]


def save_checkpoint(prefix, net, trainer, state):
    """Write ``prefix.params``, ``prefix.states`` (optimizer) and ``prefix.json`` (``state``)."""
    atomic_write(prefix + ".params", net.save_parameters)
    if trainer is not None:
        atomic_write(prefix + ".states", trainer.save_states)

    def write_json(tmp):
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1, sort_keys=True)

    atomic_write(prefix + ".json", write_json)
    return prefix


def checkpoint_args(prefix):
    """The arguments the training checkpoint ``prefix`` was written with, or None if ``prefix``
    (a string, or anything else a flag may hold) names no complete checkpoint."""
    if not isinstance(prefix, str) or not prefix or not os.path.exists(prefix + ".json"):
        return None
    with open(prefix + ".json") as f:
        return json.load(f)["args"]


def load_checkpoint(prefix, net, trainer=None, ctx=None):
    """Restore a checkpoint into ``net`` (and ``trainer``); returns the saved state dict."""
    if not os.path.exists(prefix + ".json"):
        raise FileNotFoundError("checkpoint %s.json does not exist (incomplete or missing checkpoint)" % prefix)
    with open(prefix + ".json") as f:
        state = json.load(f)
    net.load_parameters(prefix + ".params", ctx=ctx)
    if trainer is not None and os.path.exists(prefix + ".states"):
        trainer.load_states(prefix + ".states")
    return state
