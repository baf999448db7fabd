"""How the scripts end: a user error is one line and exit status 2; a programming error keeps its
traceback; a signal during training is handled once, and a second one stops the process at once."""
import os
import signal
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))


def test_a_user_error_is_one_line_and_a_programming_error_keeps_its_traceback():
    script = """
        import sys
        from gluon_maskrcnn.errors import UserError, run_main

        def main(kind):
            if kind == "user":
                raise UserError("--dataset-root /nowhere: no such folder")
            raise ValueError("a bug")

        sys.exit(run_main(main, %r))
    """
    user = _python(script % "user")
    assert user.returncode == 2 and user.stderr == "error: --dataset-root /nowhere: no such folder\n"
    bug = _python(script % "bug")
    assert bug.returncode == 1
    assert "Traceback (most recent call last)" in bug.stderr and bug.stderr.rstrip().endswith("ValueError: a bug")


def test_the_first_signal_sets_the_flag_and_a_second_stops_the_process_at_once():
    for name in ("SIGINT", "SIGTERM"):
        done = _python("""
            import os, signal
            from gluon_maskrcnn.engine.preemption import StopSignals

            with StopSignals() as stop:
                os.kill(os.getpid(), signal.%s)
                print("requested", stop.requested, flush=True)
                os.kill(os.getpid(), signal.%s)  # the default action: the process ends here
                print("still running", flush=True)
        """ % (name, name))
        assert done.stdout == "requested %s\n" % name, done.stderr
        assert done.returncode == -getattr(signal, name)
