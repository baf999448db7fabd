"""Importing without MXNet names the install extra."""
import subprocess
import sys


def test_import_without_mxnet_names_the_extra():
    code = "import sys; sys.modules['mxnet'] = None; import gluon_maskrcnn"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "gluon-maskrcnn[cpu]" in proc.stderr and "[cu112]" in proc.stderr
