"""Machine-readable benchmark results: ``--json OUT`` of every ``scripts/benchmark_*.py``.

A results file is one JSON object: ``benchmark`` (which script and mode), ``date``,
``machine`` (CPU model, int8 instruction set, cores, threads, library versions), ``settings``
(the script's parsed flags) and ``results`` (what the benchmark function returned). The docs'
benchmarks page draws its plots from the files committed in ``docs/benchmarks/``.
"""
import datetime
import json
import os
import platform

from ..files import atomic_write

__all__ = ["add_json_argument", "cpu_model", "int8_instruction_set", "machine", "write_results"]

# Best first: the instruction set oneDNN's int8 kernels use on this CPU.
INT8_FLAGS = (("amx_int8", "AMX-INT8"), ("avx512_vnni", "AVX512-VNNI"), ("avx_vnni", "AVX-VNNI"))


def _cpu_field(name):
    """The first ``name : value`` line of /proc/cpuinfo ('' where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ""


def cpu_model():
    """The CPU's model name, or the platform's processor string."""
    return _cpu_field("model name") or platform.processor() or "unknown"


def int8_instruction_set():
    """'AMX-INT8', 'AVX512-VNNI', 'AVX-VNNI' or 'none': the best int8 dot-product instructions
    this CPU offers (read from /proc/cpuinfo's flags)."""
    flags = set(_cpu_field("flags").split())
    return next((label for flag, label in INT8_FLAGS if flag in flags), "none")


def _version(module):
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def machine():
    """What a figure depends on: CPU, instruction set, cores, threads and versions."""
    flags = set(_cpu_field("flags").split())
    return dict(cpu=cpu_model(), int8=int8_instruction_set(), avx512="avx512f" in flags,
                logical_cores=os.cpu_count(), omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
                python=platform.python_version(), mxnet=_version("mxnet"), gluoncv=_version("gluoncv"),
                numpy=_version("numpy"))


def add_json_argument(parser):
    parser.add_argument("--json", metavar="OUT", default=None,
                        help="also write the results, the flags and the machine to OUT as JSON "
                             "(the docs' benchmarks page plots these files)")


def _plain(value):
    """JSON's fallback for NumPy scalars and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError("cannot write %r to JSON" % type(value))


def write_results(path, benchmark, results, settings):
    """Write ``results`` of ``benchmark`` with ``settings`` (a dict or an argparse namespace) and
    :func:`machine` to ``path``, atomically."""
    if path is None:
        return
    settings = dict(vars(settings)) if hasattr(settings, "__dict__") else dict(settings)
    settings.pop("json", None)
    record = dict(benchmark=benchmark, date=datetime.date.today().isoformat(), machine=machine(),
                  settings=settings, results=results)

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(record, f, indent=1, default=_plain)
            f.write("\n")

    atomic_write(path, write)
    print("wrote %s" % path)
