"""Launch MXNet ``dist_sync`` training on this machine (ps-lite over loopback).

MXNet's own ``tools/launch.py`` fails on Python 3.11 (``Thread.isAlive``). This one starts a
scheduler, ``num_servers`` servers and ``num_workers`` workers as child processes with the
DMLC environment, streams their output with a role prefix, and returns the first non-zero
worker exit code (stopping the others).
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

__all__ = ["launch_local", "free_port"]


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


def _stop(procs, timeout=10):
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.time() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def launch_local(command, num_workers, num_servers=1, host="127.0.0.1", env=None, timeout=None,
                 sink=sys.stdout):
    """Run ``command`` (a list) as ``num_workers`` dist_sync workers; returns the exit code."""
    port = free_port(host)
    idle = [sys.executable, "-c", "import mxnet"]  # scheduler/server loop runs at import
    helpers = [_start(idle, _env("scheduler", num_workers, num_servers, port, host, env), "[scheduler] ", sink)]
    helpers += [_start(idle, _env("server", num_workers, num_servers, port, host, env), "[server %d] " % i, sink)
                for i in range(num_servers)]
    workers = [_start(command, _env("worker", num_workers, num_servers, port, host,
                                    dict(env or {}, GLUON_MASKRCNN_WORKER_INDEX=str(i))), "[worker %d] " % i, sink)
               for i in range(num_workers)]
    start, code = time.time(), 0
    try:
        while any(w.poll() is None for w in workers):
            failed = [w.returncode for w in workers if w.poll() not in (None, 0)]
            if failed or (timeout and time.time() - start > timeout):
                code = failed[0] if failed else 124
                break
            time.sleep(0.2)
        else:
            code = next((w.returncode for w in workers if w.returncode), 0)
    finally:
        _stop(workers)
        for helper in helpers:
            try:
                helper.wait(15)
            except subprocess.TimeoutExpired:
                pass
        _stop(helpers)
        for proc in workers + helpers:  # the last lines a process printed reach the sink too
            proc.pump.join(timeout=5)
    return code
