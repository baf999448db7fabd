"""The README and the user guide say what the code does: the quick start runs as written, every
command parses with its script's parser, and the guide's flag table and command-line reference
cover every flag and script."""
import os
import re
import runpy
import shlex

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
SCRIPTS = os.path.join(ROOT, "scripts")


def _readme():
    with open(README) as f:
        return f.read()


def _fenced_blocks(text, language):
    return re.findall(r"```%s\n(.*?)```" % language, text, flags=re.S)


def _parser_of(script):
    return runpy.run_path(os.path.join(SCRIPTS, script), run_name="parser_only")["build_parser"]()


def test_readme_is_one_page_without_dated_history():
    text = _readme()
    assert len(text.splitlines()) <= 155
    assert not re.findall(r"\b20\d\d-\d\d-\d\d\b", text), "dated measurements belong in the changelog page"
    for marker in ("run-pictures", "/run-pictures", "quick-start", "test-command", "docs-command", "horovod-command"):
        assert "<!-- %s -->" % marker in text


def _script_commands(text):
    """(script, argv) of every ``python scripts/NAME.py ...`` line of the README's bash blocks."""
    for block in _fenced_blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for match in re.finditer(r"python (scripts/\w+\.py)((?:\s+[^&|;]+)?)", line):
                yield os.path.basename(match.group(1)), shlex.split(match.group(2))


def test_every_readme_command_parses_with_its_scripts_parser():
    commands = list(_script_commands(_readme()))
    assert {script for script, _ in commands} >= {"train_mask_rcnn.py", "eval_mask_rcnn.py", "export_mask_rcnn.py"}
    for script, argv in commands:
        if "--" in argv and script == "launch.py":
            argv = argv[:argv.index("--")] + ["--", "python"]
        _parser_of(script).parse_args(argv)  # an unknown or malformed flag exits here


def test_readme_quick_start_runs_as_written(tmp_path, monkeypatch, capsys):
    import cv2

    from gluon_maskrcnn import store
    from helpers import write_published_params

    code = _readme().split("<!-- quick-start -->", 1)[1]
    code = _fenced_blocks(code, "python")[0]
    name = re.search(r'get_model\("(\w+)"', code).group(1)
    # the published file is not reachable offline: the test puts a file of the same layout in the
    # model store and gives the store its sha1, so pretrained=True loads it as it would GluonCV's
    _, sha1 = write_published_params(name, str(tmp_path))
    monkeypatch.setenv("MXNET_HOME", str(tmp_path))
    monkeypatch.setattr(store, "sha1_table", lambda: {name: sha1})
    monkeypatch.chdir(tmp_path)
    image = np.random.RandomState(0).randint(0, 255, (240, 320, 3)).astype(np.uint8)
    cv2.imwrite("street.jpg", image)
    namespace = {}
    exec(compile(code, "README.md quick start", "exec"), namespace)
    result = namespace["result"]
    count = len(result["scores"])
    assert result["boxes"].shape == (count, 4) and result["masks"].shape == (count, 240, 320)
    assert capsys.readouterr().out.strip()  # it printed what it found


def _option_strings(parser):
    """Every option of ``parser`` and of its sub-commands."""
    for action in parser._actions:
        yield from action.option_strings
        if isinstance(action.choices, dict):  # a sub-command's parsers
            for sub in action.choices.values():
                yield from _option_strings(sub)


def test_training_guide_names_every_flag_of_the_training_script():
    from gluon_maskrcnn.engine.cli import build_parser

    with open(os.path.join(ROOT, "docs", "guide", "training.md")) as f:
        guide = f.read()
    flags = {flag for flag in _option_strings(build_parser()) if flag.startswith("--") and flag != "--help"}
    assert len(flags) > 90
    missing = sorted(flag for flag in flags if not re.search(re.escape(flag) + r"(?![\w-])", guide))
    assert not missing, "docs/guide/training.md does not describe %s" % missing


@pytest.mark.parametrize("script", sorted(f for f in os.listdir(SCRIPTS) if f.endswith(".py")))
def test_cli_reference_covers_every_script_from_its_parser(script):
    with open(os.path.join(ROOT, "docs", "reference", "cli.rst")) as f:
        reference = f.read()
    assert ":filename: ../scripts/%s" % script in reference
    parser = _parser_of(script)  # sphinx-argparse calls the same function
    assert parser.format_help().strip()
