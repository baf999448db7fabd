"""Checkpoints written atomically and verified before they are trusted.

A checkpoint ``PREFIX-NAME`` is three files: ``.params``, ``.states`` (optimizer) and ``.json``
(the run state: epoch, iteration, position in the epoch, RNG states, arguments). Each file goes
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

from ..errors import UserError
from ..files import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_args", "verify_checkpoint", "CheckpointError",
           "link_checkpoint", "iteration_checkpoint_name", "prune_checkpoints", "find_latest_checkpoint"]

logger = logging.getLogger(__name__)

DATA_SUFFIXES = (".params", ".states")
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
    if trainer is not None:
        _write(prefix + ".states", trainer.save_states)
        suffixes.append(".states")
    record = dict(state, files={s: _file_digest(prefix + s) for s in suffixes})
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


def load_checkpoint(prefix, net, trainer=None, ctx=None, verified_state=None):
    """Restore a checkpoint into ``net`` (and ``trainer``) after verifying it (unless its
    ``verified_state`` is given); returns the saved state."""
    state = verified_state if verified_state is not None else verify_checkpoint(prefix)
    net.load_parameters(prefix + ".params", ctx=ctx)
    if trainer is not None and os.path.exists(prefix + ".states"):
        trainer.load_states(prefix + ".states")
    return state


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
