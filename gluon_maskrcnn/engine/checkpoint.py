"""Checkpoints written atomically and verified before they are trusted.

A checkpoint ``PREFIX-NAME`` is three files: ``.params``, ``.states`` (the optimizer's arrays:
an MXNet NDArray file of momentum per parameter) and ``.json`` (the run state: epoch,
iteration, position in the epoch, RNG states, arguments, the optimizer's update counts, the
format version). Nothing in a checkpoint is pickled, so loading one that someone else made
runs no code of theirs: MXNet's ``Trainer.save_states`` pickles, and a checkpoint in that
older format is refused with the command that converts it (``scripts/convert_checkpoint.py``,
which unpickles it once, for a user who trusts the file). Each file goes
to a temporary name first and is renamed into place; the JSON is written last and records the
size and SHA-256 of the other two, so a checkpoint whose JSON is missing, or whose files do not
match it (truncated, overwritten half-way, corrupted), is detected and never loaded.

Training writes each iteration checkpoint once, as ``PREFIX-iterNNNNNNN``, and then points
``PREFIX-last`` at the same files with hard links (a copy where the file system has none), so
that a crash at any moment leaves at least one complete checkpoint. ``--keep-checkpoints K``
keeps the K newest numbered ones.
"""
import errno
import glob
import hashlib
import json
import logging
import os
import re
import shutil

import mxnet as mx

from ..errors import UserError
from ..files import atomic_write
from ..internals import optimizer_update_counts, set_optimizer_update_counts, trainer_updaters
from ..version import VERSION

__all__ = ["FORMAT", "check_format", "convert_pickled_checkpoint", "save_checkpoint", "load_checkpoint", "checkpoint_args", "checkpoint_classes", "verify_checkpoint", "CheckpointError",
           "link_checkpoint", "iteration_checkpoint_name", "prune_checkpoints", "find_latest_checkpoint"]

logger = logging.getLogger(__name__)

DATA_SUFFIXES = (".params", ".states")
# 1: .states pickled by MXNet's Trainer.save_states (no "format" in the JSON); 2: .states an
# NDArray file, the optimizer's scalars in the JSON
FORMAT = 2
_HASH_CHUNK = 1 << 22


class CheckpointError(UserError):
    """A checkpoint that cannot be written or trusted; the message names the file."""


def _file_digest(path):
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            sha.update(chunk)
    return {"size": os.path.getsize(path), "sha256": sha.hexdigest()}


def _write(path, write):
    """``atomic_write`` whose failure (disk full, read-only, missing folder) names the path; the
    file already at ``path`` is left as it was."""
    try:
        atomic_write(path, write)
    except OSError as err:
        reason = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
        raise CheckpointError("cannot write checkpoint file %s: %s; the previous checkpoint is "
                              "unchanged" % (path, reason)) from err


def save_checkpoint(prefix, net, trainer, state):
    """Write ``prefix.params``, ``prefix.states`` (optimizer) and ``prefix.json`` (``state`` plus
    the files' sizes and checksums). Raises :class:`CheckpointError` naming the file that could
    not be written."""
    _write(prefix + ".params", net.save_parameters)
    suffixes = [".params"]
    record = dict(state, format=FORMAT, package_version=VERSION)
    if trainer is not None:
        arrays, record["optimizer"] = optimizer_state(trainer)
        _write(prefix + ".states", lambda tmp: mx.nd.save(tmp, arrays))
        suffixes.append(".states")
    record["files"] = {s: _file_digest(prefix + s) for s in suffixes}
    _write(prefix + ".json", lambda tmp: _dump_json(record, tmp))
    return prefix


def _dump_json(record, path):
    with open(path, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)


def _read_state(prefix):
    with open(prefix + ".json") as f:
        return json.load(f)


def verify_checkpoint(prefix):
    """The state of checkpoint ``prefix``, after checking that its files match their sizes and
    checksums; :class:`CheckpointError` saying what is wrong otherwise. Checkpoints written
    before checksums existed are checked for presence only."""
    if not os.path.exists(prefix + ".json"):
        raise CheckpointError("checkpoint %s.json does not exist (incomplete or missing checkpoint)" % prefix)
    try:
        state = _read_state(prefix)
    except (OSError, ValueError) as err:
        raise CheckpointError("checkpoint %s.json is unreadable: %s" % (prefix, err)) from None
    for suffix, want in state.get("files", {".params": None}).items():
        path = prefix + suffix
        if not os.path.exists(path):
            raise CheckpointError("checkpoint file %s is missing" % path)
        if want is not None:
            got = _file_digest(path)
            if got["size"] != want["size"]:
                raise CheckpointError("checkpoint file %s has %d bytes, its checkpoint says %d (truncated?)"
                                      % (path, got["size"], want["size"]))
            if got["sha256"] != want["sha256"]:
                raise CheckpointError("checkpoint file %s does not match its checksum (corrupt)" % path)
    return state


def checkpoint_args(prefix):
    """The arguments the training checkpoint ``prefix`` was written with, or None if ``prefix``
    (a string, or anything else a flag may hold) names no complete checkpoint."""
    if not isinstance(prefix, str) or not prefix or not os.path.exists(prefix + ".json"):
        return None
    return _read_state(prefix)["args"]


def checkpoint_classes(prefix):
    """The class names the training checkpoint ``prefix`` records, or None (checkpoints written
    before they were recorded; their classes are read from the training dataset)."""
    classes = _read_state(prefix).get("classes")
    return list(classes) if classes else None


def load_checkpoint(prefix, net, trainer=None, ctx=None, verified_state=None):
    """Restore a checkpoint into ``net`` (and ``trainer``) after verifying it (unless its
    ``verified_state`` is given); returns the saved state. Reads NDArray files and JSON only;
    a checkpoint of another format is refused (:func:`~gluon_maskrcnn.engine.checkpoint.check_format`)."""
    state = verified_state if verified_state is not None else verify_checkpoint(prefix)
    with_optimizer = trainer is not None and os.path.exists(prefix + ".states")
    if with_optimizer:
        check_format(prefix, state)  # before anything is loaded
    net.load_parameters(prefix + ".params", ctx=ctx)
    if with_optimizer:
        load_optimizer_state(trainer, prefix + ".states", state.get("optimizer", {}))
    return state


def check_format(prefix, state):
    """Refuse a checkpoint whose optimizer file this version must not or cannot read: a pickled
    one (format 1, MXNet's ``Trainer.save_states``), or one of a newer format."""
    found = state.get("format", 1)
    if found == 1:
        raise CheckpointError(
            "checkpoint %s.states is pickled (MXNet's Trainer.save_states), and loading a pickle "
            "runs whatever code it carries; if you trust the file, convert it once with: "
            "python scripts/convert_checkpoint.py %s" % (prefix, prefix))
    if found > FORMAT:
        raise CheckpointError(
            "checkpoint %s is in format %d (written by gluon_maskrcnn %s); this gluon_maskrcnn "
            "(%s) reads formats up to %d: upgrade it"
            % (prefix, found, state.get("package_version", "?"), VERSION, FORMAT))


def optimizer_state(trainer):
    """({array name: NDArray}, JSON scalars) of a trainer's optimizer, from the first device's
    updater (every device applies the same updates): see :func:`state_arrays`."""
    return state_arrays(trainer_updaters(trainer)[0].states, optimizer_update_counts(trainer.optimizer))


def state_arrays(states, update_counts):
    """({array name: NDArray}, JSON scalars) of an updater's ``states`` ({parameter index: an
    NDArray, a tuple of them, or None}): array ``"INDEX:PART"`` for each part (SGD keeps one,
    the momentum), and in the scalars each index's layout (which parts exist; a trailing None
    for a state that is one array, not a tuple) and the update counts."""
    arrays, layout = {}, {}
    for index, value in sorted(states.items()):
        single = not isinstance(value, (tuple, list))
        parts = (value,) if single else tuple(value)
        layout[str(index)] = [part is not None for part in parts] + ([None] if single else [])
        for k, part in enumerate(parts):
            if part is not None:
                arrays["%d:%d" % (index, k)] = part
    return arrays, {"layout": layout, "update_counts": {str(k): int(v) for k, v in update_counts.items()}}


def load_optimizer_state(trainer, path, scalars):
    """Give every device's updater the states of :func:`optimizer_state` (each its own copy,
    moved to its device by MXNet at its first update) and restore the update counts."""
    arrays = mx.nd.load(path)
    for updater in trainer_updaters(trainer):
        for index, present in scalars.get("layout", {}).items():
            single = present[-1] is None
            parts = tuple(arrays["%s:%d" % (index, k)].copy() if here else None
                          for k, here in enumerate(present[:-1] if single else present))
            updater.states[int(index)] = parts[0] if single else parts
            updater.states_synced[int(index)] = False
    set_optimizer_update_counts(trainer.optimizer, scalars.get("update_counts", {}))


def convert_pickled_checkpoint(prefix):
    """Rewrite checkpoint ``prefix`` of format 1 (a pickled ``.states``) in this format: the
    ``.states`` is unpickled once, here, deliberately, and written as an NDArray file; the JSON
    gets the format, the layout and new checksums. Returns False if it needed no conversion.

    Unpickling runs whatever code the file carries: call it only on checkpoints you trust.
    """
    import pickle

    state = verify_checkpoint(prefix)
    if state.get("format", 1) >= 2:
        return False
    with open(prefix + ".states", "rb") as f:
        pickled = pickle.load(f)  # the one deliberate unpickling (see the docstring)
    states = pickled[0] if isinstance(pickled, tuple) and len(pickled) == 2 else pickled  # (states, optimizer)

    # format 1 did not keep the update counts; every parameter updated at every iteration
    arrays, scalars = state_arrays(states, {index: int(state.get("iteration", 0)) for index in states})
    _write(prefix + ".states", lambda tmp: mx.nd.save(tmp, arrays))
    record = dict(state, format=FORMAT, package_version=VERSION, optimizer=scalars)
    record["files"] = {s: _file_digest(prefix + s) for s in (".params", ".states")}
    _write(prefix + ".json", lambda tmp: _dump_json(record, tmp))
    return True


def link_checkpoint(source, target):
    """Make checkpoint ``target`` the same files as the complete checkpoint ``source``: hard links
    (a copy where the file system has none), each renamed into place, the JSON last."""
    for suffix in DATA_SUFFIXES + (".json",):
        if os.path.exists(source + suffix):
            _write(target + suffix, lambda tmp, src=source + suffix: _link_or_copy(src, tmp))


def _link_or_copy(source, path):
    try:
        os.link(source, path)
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        shutil.copyfile(source, path)


def iteration_checkpoint_name(iteration):
    """The numbered checkpoint of an iteration: ``iter0001234``."""
    return "iter%07d" % iteration


_NUMBERED = re.compile(r"-iter(\d{7,})\.json$")


def _numbered(save_prefix):
    """[(iteration, checkpoint prefix)] of ``save_prefix``'s numbered checkpoints, oldest first."""
    found = []
    for path in glob.glob(glob.escape(save_prefix) + "-iter*.json"):
        match = _NUMBERED.search(path)
        if match:
            found.append((int(match.group(1)), path[:-len(".json")]))
    return sorted(found)


def _remove(prefix):
    for suffix in (".json",) + DATA_SUFFIXES:  # the JSON first: an incomplete rest is never trusted
        if os.path.exists(prefix + suffix):
            os.remove(prefix + suffix)


def prune_checkpoints(save_prefix, keep):
    """Delete all but the ``keep`` newest numbered checkpoints of ``save_prefix``."""
    numbered = _numbered(save_prefix)
    for _, prefix in numbered[:max(0, len(numbered) - keep)]:
        _remove(prefix)


def find_latest_checkpoint(save_prefix):
    """(prefix, state) of the newest complete checkpoint of a run (``-last`` or a numbered one,
    by iteration), or (None, None). A checkpoint that fails verification is named in a warning
    and skipped for the next newest (only the newest are read in full)."""
    candidates = _numbered(save_prefix)
    last = save_prefix + "-last"
    if any(os.path.exists(last + suffix) for suffix in (".json",) + DATA_SUFFIXES):
        try:
            candidates.append((_read_state(last).get("iteration", 0), last))
        except (OSError, ValueError):
            candidates.append((-1, last))  # verification below names what is wrong
    for _, prefix in sorted(candidates, key=lambda c: (c[0], c[1] != last), reverse=True):
        try:
            return prefix, verify_checkpoint(prefix)
        except CheckpointError as err:
            logger.warning("skipping checkpoint %s: %s", prefix, err)
    return None, None
