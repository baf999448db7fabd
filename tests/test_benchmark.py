"""The benchmarks: the torchvision plumbing (which Python runs torchvision, and what it is asked),
and the inference benchmark end to end."""
import argparse
import json
import os
import stat

from gluon_maskrcnn.benchmarks import inference as benchmark


def _fake_python(tmp_path, body):
    """An executable standing in for a Python: a shell script with ``body``."""
    path = tmp_path / "python"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _args(*argv):
    parser = argparse.ArgumentParser()
    benchmark.add_torchvision_arguments(parser)
    return parser.parse_args(list(argv))


def test_no_torchvision_flag_skips_the_probe(tmp_path):
    python = _fake_python(tmp_path, "exit 0")
    assert benchmark.torch_python(_args("--torch-python", python, "--no-torchvision")) is None
    assert benchmark.torch_python(_args("--torch-python", python)) == python


def test_a_python_without_torchvision_is_reported_and_skipped(tmp_path, capsys):
    python = _fake_python(tmp_path, "echo \"ModuleNotFoundError: No module named 'torchvision'\" >&2; exit 1")
    assert benchmark.torch_python(_args("--torch-python", python)) is None
    out = capsys.readouterr().out
    assert "torchvision: not measured" in out and "No module named 'torchvision'" in out and python in out


def test_environment_variable_names_the_python(tmp_path, monkeypatch):
    python = _fake_python(tmp_path, "exit 0")
    monkeypatch.setenv("GLUON_MASKRCNN_TORCH_PYTHON", python)
    assert benchmark.torch_python(_args()) == python


def test_run_torchvision_passes_mode_output_and_arguments(tmp_path):
    # the stand-in records its command line and writes a result where the worker would
    python = _fake_python(tmp_path, 'echo "$@" > %s/argv; echo \'{"seconds": 1.5}\' > "$3"' % tmp_path)
    result = benchmark.run_torchvision(python, "infer", [800, 1216, 2, 3], str(tmp_path), "800x1216")
    assert result == {"seconds": 1.5}
    worker, mode, out, *rest = (tmp_path / "argv").read_text().split()
    assert os.path.basename(worker) == "torchvision_worker.py" and os.path.exists(worker)
    assert mode == "infer" and out == str(tmp_path / "torchvision-infer-800x1216.json")
    assert rest == ["800", "1216", "2", "3"]
    assert json.loads((tmp_path / "torchvision-infer-800x1216.json").read_text()) == result


def test_interleaved_turns_alternate_order_and_drop_the_warmup():
    from gluon_maskrcnn.benchmarks.train import interleaved_seconds

    calls = []

    def stepper(name):
        def step():
            calls.append(name)
            return float(len(calls))  # "seconds": the call's position
        return step

    times = interleaved_seconds({"a": stepper("a"), "b": stepper("b")}, warmup=1, runs=3)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert times == {"a": [4.0, 5.0, 8.0], "b": [3.0, 6.0, 7.0]}


def test_step_worker_protocol(monkeypatch):
    import io
    from gluon_maskrcnn.benchmarks import train as benchmark_train

    losses = iter([2.5, 1.5, 1.5, 1.5, 0.5])
    monkeypatch.setattr("sys.stdin", io.StringIO("step\nprofile\nstep\ndone\n"))
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    benchmark_train.serve(lambda: next(losses))
    replies = [json.loads(line[len(benchmark_train.PROTOCOL_TAG):]) for line in out.getvalue().splitlines()]
    assert replies[0] == {"ready": True}
    assert replies[1]["loss"] == 2.5 and replies[3]["loss"] == 0.5  # the profiled steps ran 1.5
    assert all(replies[i]["seconds"] >= 0 for i in (1, 3))
    assert set(replies[2]) == {"layer_seconds", "other_op_seconds", "layer_share"}
    assert set(replies[4]) == {"rss"} and replies[4]["rss"] > 0


def test_operator_seconds_splits_layers_from_the_rest():
    from gluon_maskrcnn.benchmarks.train import operator_seconds

    stats = """Profile Statistics:
\tNote the difference in units for different entries.
Device Storage
=================
Name                          Total Count    Min Use  (kB)    Max Use  (kB)    Avg Use  (kB)
----                          -----------    -------------    -------------    -------------
Memory: cpu/0                         736           0.0000      110542.8516       55271.4258

MXNET_C_API
=================
Name                          Total Count        Time (ms)    Min Time (ms)    Max Time (ms)    Avg Time (ms)
----                          -----------        ---------    -------------    -------------    -------------
MXNDArrayWaitAll                        2       11372.3213        5500.7202        5871.6011        5686.1606

operator
=================
Name                          Total Count        Time (ms)    Min Time (ms)    Max Time (ms)    Avg Time (ms)
----                          -----------        ---------    -------------    -------------    -------------
_backward_Convolution                  86        5500.0000           3.3810         368.4740          64.0668
Convolution                           114        2500.0000           1.1240         175.5630          25.7355
_backward_Deconvolution                 2         100.0000          77.8900          93.3670          85.6285
FullyConnected                         10          50.0000           0.1780          38.7210           8.0790
add_n                                  40         400.0000           0.0210         103.9130          10.4963
_backward_gm_multi_roi_align            2         250.0000         256.5760         297.7360         277.1560
"""
    got = operator_seconds(stats)
    assert abs(got["layer_seconds"] - 8.15) < 1e-9  # the C API's WaitAll is not an operator
    assert abs(got["other_op_seconds"] - 0.65) < 1e-9


def test_a_worker_that_dies_is_reported_with_its_model_and_parameters(tmp_path):
    import pytest
    from gluon_maskrcnn.benchmarks.train import StepServer

    missing = str(tmp_path / "missing.params")
    with pytest.raises(RuntimeError) as err:
        StepServer("ours", "mask_rcnn_resnet50_v1b_coco", missing, 600, 1000)
    message = str(err.value)
    assert "ours benchmark worker for mask_rcnn_resnet50_v1b_coco" in message
    assert missing in message and "exited with code 1" in message


def test_the_inference_benchmark_runs_ours_onnx_and_int8_end_to_end(capsys):
    """scripts/benchmark_inference.py's whole path, small: every variant's subprocess runs, and
    the rows carry times, memory and agreement with imperative GluonCV. About a minute on 2
    cores (six processes), so it runs with GLUON_MASKRCNN_SLOW=1."""
    import pytest

    if os.environ.get("GLUON_MASKRCNN_SLOW") != "1":
        pytest.skip("set GLUON_MASKRCNN_SLOW=1")

    pytest.importorskip("onnxruntime")
    rows = benchmark.run_inference_benchmark(["mask_rcnn_fpn_resnet18_v1b_coco"], [(128, 160)], warmup=0, runs=1,
                                             variants=("ours", "onnx", "int8"))
    assert [r["impl"] for r in rows] == ["ours", "onnx", "int8"]
    for row in rows:
        assert row["seconds"] > 0 and row["peak_rss_gb"] > 0 and 0.0 <= row["top100_vs_gluoncv_imperative"] <= 1.0
    assert rows[0]["speedup_of_ours"] == 1.0
    assert '"impl": "onnx"' in capsys.readouterr().out


def test_json_results_carry_the_flags_the_machine_and_numpy_values(tmp_path):
    import numpy as np

    from gluon_maskrcnn.benchmarks import report

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    report.add_json_argument(parser)
    out = tmp_path / "sub" / "inference.json"
    args = parser.parse_args(["--json", str(out)])
    rows = [dict(model="m", seconds=np.float32(1.5), top100=np.array([1.0, 0.5]))]
    report.write_results(args.json, "inference", rows, args)
    record = json.loads(out.read_text())
    assert record["benchmark"] == "inference"
    assert record["settings"] == {"runs": 3}  # --json itself is not a setting
    assert record["results"] == [dict(model="m", seconds=1.5, top100=[1.0, 0.5])]
    assert record["machine"]["int8"] in ("AMX-INT8", "AVX512-VNNI", "AVX-VNNI", "none")
    assert record["machine"]["mxnet"] == "1.9.1"
    assert not [p for p in os.listdir(out.parent) if p != "inference.json"]  # no temporary left
    report.write_results(None, "inference", rows, args)  # no --json: nothing written, no error


def test_int8_instruction_set_reads_the_best_flag(monkeypatch):
    from gluon_maskrcnn.benchmarks import report

    def flags(line):
        monkeypatch.setattr(report, "_cpu_field", lambda name: line if name == "flags" else "")
        return report.int8_instruction_set()

    assert flags("fpu avx2 avx512f avx512_vnni amx_int8") == "AMX-INT8"
    assert flags("fpu avx2 avx512f avx512_vnni avx512_bf16") == "AVX512-VNNI"
    assert flags("fpu avx2 avx_vnni") == "AVX-VNNI"
    assert flags("fpu avx2") == "none"
