"""Launch MXNet ``dist_sync`` training on this machine (ps-lite over loopback).

MXNet's own ``tools/launch.py`` fails on Python 3.11 (``Thread.isAlive``). This one starts a
scheduler, ``num_servers`` servers and ``num_workers`` workers as child processes with the
DMLC environment and streams their output with a role prefix.

No job is left hanging: when a worker exits non-zero, or the scheduler or a server exits while
workers still run 15 s later, it names that process and its exit code, stops the others
(SIGTERM, then SIGKILL after 10 s: a worker blocked on a dead peer cannot finish its step) and
returns that code.
SIGTERM or SIGINT to the launcher is passed on to the workers, which finish their step, write a
checkpoint and exit with the preemption code; the launcher waits for them (``grace`` seconds at
most) and returns their code.
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

__all__ = ["launch_local", "free_port", "describe_exit"]


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _env(role, num_workers, num_servers, port, host, extra):
    env = dict(os.environ)
    env.update(DMLC_ROLE=role, DMLC_PS_ROOT_URI=host, DMLC_PS_ROOT_PORT=str(port),
               DMLC_NUM_WORKER=str(num_workers), DMLC_NUM_SERVER=str(num_servers),
               DMLC_NODE_HOST=host, DMLC_INTERFACE="lo", PS_VERBOSE=env.get("PS_VERBOSE", "0"))
    env.update(extra or {})
    return env


def _pump(stream, prefix, sink):
    for line in iter(stream.readline, b""):
        sink.write(prefix + line.decode(errors="replace"))
        sink.flush()


def _start(cmd, env, prefix, sink):
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc.pump = threading.Thread(target=_pump, args=(proc.stdout, prefix, sink), daemon=True)
    proc.pump.start()
    return proc


def describe_exit(code):
    """``exit code 3``, or ``killed by SIGKILL`` for a negative Popen return code."""
    if code is not None and code < 0:
        try:
            return "killed by %s" % signal.Signals(-code).name
        except ValueError:
            return "killed by signal %d" % -code
    return "exit code %s" % code


def _stop(procs, timeout=10):
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.time() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pass
        _kill_group(proc.pid)  # and whatever the process left behind (DataLoader workers)


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # the group has ended
        pass


class _Forwarded:
    """While active (main thread only), SIGTERM / SIGINT to this process are recorded instead
    of stopping it, so that the launcher can pass them on and wait."""

    def __init__(self):
        self.signal, self._previous = None, {}

    def _record(self, signum, frame):
        self.signal = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._record)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False


def _first_failure(workers, helpers, helper_grace=15):
    """(description, exit code) of the first process whose end stops the job, or None.

    The scheduler and servers end when the workers finalise, a moment before the worker
    processes exit: one that ended is a failure only if workers still run ``helper_grace``
    seconds later."""
    for proc in workers:
        if proc.poll() not in (None, 0):
            return proc.name, proc.returncode
    if any(w.poll() is None for w in workers):
        now = time.time()
        for proc in helpers:
            if proc.poll() is not None:
                proc.ended = getattr(proc, "ended", None) or now
                if now - proc.ended > helper_grace:
                    return proc.name, proc.returncode or 1
    return None


def _wait_after_signal(workers, grace, say):
    """Pass the signal to the workers and wait up to ``grace`` seconds for them to checkpoint
    and exit; returns their exit code (the first non-zero one)."""
    say("stopping: SIGTERM to the workers, waiting up to %d s for their checkpoint" % grace)
    for proc in workers:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.time() + grace
    while any(w.poll() is None for w in workers) and time.time() < deadline:
        time.sleep(0.2)
    codes = [w.poll() for w in workers]
    return next((c for c in codes if c), 0) if None not in codes else 124


def launch_local(command, num_workers, num_servers=1, host="127.0.0.1", env=None, timeout=None,
                 sink=sys.stdout, grace=120):
    """Run ``command`` (a list) as ``num_workers`` dist_sync workers; returns the exit code."""
    port = free_port(host)

    def say(message):
        sink.write("[launcher] %s\n" % message)
        sink.flush()

    idle = [sys.executable, "-c", "import mxnet"]  # scheduler/server loop runs at import
    helpers = [_start(idle, _env("scheduler", num_workers, num_servers, port, host, env), "[scheduler] ", sink)]
    helpers[0].name = "the scheduler"
    for i in range(num_servers):
        helpers.append(_start(idle, _env("server", num_workers, num_servers, port, host, env),
                              "[server %d] " % i, sink))
        helpers[-1].name = "server %d" % i
    workers = []
    for i in range(num_workers):
        workers.append(_start(command, _env("worker", num_workers, num_servers, port, host,
                                            dict(env or {}, GLUON_MASKRCNN_WORKER_INDEX=str(i))),
                              "[worker %d] " % i, sink))
        workers[-1].name = "worker %d" % i
    start, code = time.time(), 0
    try:
        with _Forwarded() as received:
            while any(w.poll() is None for w in workers):
                failure = _first_failure(workers, helpers)
                if failure:
                    name, code = failure
                    say("%s ended (%s); stopping the others" % (name, describe_exit(code)))
                    break
                if received.signal is not None:
                    code = _wait_after_signal(workers, grace, say)
                    break
                if timeout and time.time() - start > timeout:
                    say("timeout after %d s; stopping every process" % timeout)
                    code = 124
                    break
                time.sleep(0.2)
            else:
                failed = [w for w in workers if w.returncode]
                if failed:
                    code = failed[0].returncode
                    say("%s ended (%s)" % (failed[0].name, describe_exit(code)))
    finally:
        _stop(workers)
        for helper in helpers if code == 0 else ():  # finalising after the workers' last barrier
            try:
                helper.wait(15)
            except subprocess.TimeoutExpired:
                pass
        _stop(helpers)
        for proc in workers + helpers:  # the last lines a process printed reach the sink too
            proc.pump.join(timeout=5)
    return code if code >= 0 else 128 - code
