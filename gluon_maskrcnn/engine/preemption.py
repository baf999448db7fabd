"""Stopping a run cleanly on SIGTERM or SIGINT (schedulers, spot instances, Ctrl-C).

The first signal only raises a flag: the trainer finishes the step in progress, writes a
checkpoint, logs where it stopped and exits with ``PREEMPTED_EXIT_CODE``, and
``--resume auto`` continues from there. A second signal stops the process at once.
"""
import logging
import os
import signal
import threading

__all__ = ["PREEMPTED_EXIT_CODE", "StopSignals", "TrainingStopped"]

logger = logging.getLogger(__name__)

# EX_TEMPFAIL of sysexits.h: "try again later", which is what a scheduler should do on it
PREEMPTED_EXIT_CODE = 75
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingStopped(Exception):
    """The run stopped on a signal after writing the checkpoint ``checkpoint``."""

    def __init__(self, message, checkpoint):
        super().__init__(message)
        self.checkpoint = checkpoint


class StopSignals:
    """Context manager: while active, SIGTERM and SIGINT set ``requested`` (the name of the
    first signal) instead of stopping the process; a second signal stops it at once with the
    signal's default action. Processes forked meanwhile (DataLoader workers) inherit the
    handler, so a signal sent to the whole process group does not kill them mid-epoch; end
    them by closing their pool (``internals.close_dataloader_workers``), not by one SIGTERM.
    Outside the main thread, where Python cannot handle signals, it does nothing."""

    def __init__(self):
        self.requested = None
        self._previous = {}

    def _handle(self, signum, frame):
        self.requested = signal.Signals(signum).name
        for other in SIGNALS:  # the next signal takes the default action, even inside C code
            signal.signal(other, signal.SIG_DFL)
        if os.getpid() == self._pid:  # not in a forked DataLoader worker, which keeps serving
            logger.warning("%s received: stopping after this step with a checkpoint (send it "
                           "again to stop at once)", self.requested)

    def __enter__(self):
        self._pid = os.getpid()
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        return False
