"""The ``l0emu`` command line, the Python API and library hygiene.

Every verb's ``--help`` must work without importing TensorFlow (checked in a fresh
interpreter through ``sys.modules``, never by timing), errors end in the CLI's one handler
(exit code 2, ``l0emu VERB: error: ...``, no traceback), ``import l0emu`` stays light, and
the README's notebook example runs as written.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import l0emu
from l0emu.cli.dispatch import VERBS, benchmarks, description, main

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "tf_keras", "qkeras", "hls4ml", "da4ml")
TF_NOISE = ("I0000", "absl::InitializeLog", "oneDNN custom operations", "cudart_stub")


def _python(code: str, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter of this environment, from ``cwd``."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


def _every_command() -> list[list[str]]:
    return [[verb] for verb in VERBS] + [["bench"]] + [["bench", name] for name in benchmarks()] + [["grid", "train"], ["grid", "evaluate"], ["grid", "kd-study"]]


# ---------------------------------------------------------------- the top level


def test_help_introduces_the_tool_and_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "neural-network Level-0 muon trigger" in out and "console script" not in out
    listed = re.findall(r"^    ([\w-]+)\s", out, flags=re.M)
    assert listed == [*VERBS, "bench"]
    for verb in ("grid", "acceptance", "bench"):
        assert verb in listed
    flat = " ".join(out.split())  # argparse wraps long help lines
    for verb, module in VERBS.items():
        assert description(module) in flat, verb


def test_no_verb_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: l0emu" in capsys.readouterr().out


def test_version_is_the_package_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"l0emu {l0emu.__version__}"
    assert version("l0emu") == l0emu.__version__


def test_bench_lists_every_benchmark_module(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    names = sorted(p.stem.removeprefix("bench_") for p in (REPO / "validation" / "benchmarks").glob("bench_*.py"))
    assert set(names) >= {"emulator", "rtl", "simulate", "trigger"}
    assert list(benchmarks()) == names
    flat = "".join(out.split())  # argparse wraps the help at spaces and after hyphens
    for name, module in benchmarks().items():
        assert name in out and "".join(description(module).split()) in flat


def test_every_module_help_comes_from_its_description():
    for module in [*VERBS.values(), *benchmarks().values()]:
        text = description(module)
        assert text and "\n" not in text and text == text.strip(), module
        source = Path(__import__("importlib").util.find_spec(module).origin).read_text()
        assert "\nHELP = " not in source, module  # the one source is DESCRIPTION


def test_every_verb_help_works_without_importing_tensorflow(tmp_path):
    """One fresh interpreter runs every --help in turn; a heavy import is caught where it happens."""
    code = (
        "import json, sys\n"
        "from l0emu.cli.dispatch import main\n"
        f"commands, heavy = {json.dumps(_every_command())}, {HEAVY!r}\n"
        "report = []\n"
        "for argv in commands:\n"
        "    try:\n"
        "        main(argv + ['--help'])\n"
        "        code = None\n"
        "    except SystemExit as exit:\n"
        "        code = exit.code\n"
        "    report.append([argv, code, [m for m in heavy if m in sys.modules]])\n"
        "print(json.dumps(report))\n"
    )
    proc = _python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r[0] for r in report] == _every_command()
    for argv, code, heavy in report:
        assert code == 0, argv
        assert heavy == [], f"'l0emu {' '.join(argv)} --help' imported {heavy}"
    assert not any(noise in proc.stderr for noise in TF_NOISE), proc.stderr


def test_help_of_simulate_quotes_the_real_chunk_size(capsys):
    from l0emu.simulation.events_io import DEFAULT_CHUNK_SIZE

    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    assert f"2^{DEFAULT_CHUNK_SIZE.bit_length() - 1}" in capsys.readouterr().out
    assert DEFAULT_CHUNK_SIZE == 1 << (DEFAULT_CHUNK_SIZE.bit_length() - 1)


# ---------------------------------------------------------------- one error handler


def _assert_handled(rc, err, command, *fragments):
    assert rc == 2, err
    assert err.startswith(f"l0emu {command}: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_acceptance_error_goes_through_the_handler(capsys):
    rc = main(["acceptance", "--events", "0", "--models-dir", "nowhere"])
    _assert_handled(rc, capsys.readouterr().err, "acceptance", "--events must be positive")


def test_argument_errors_exit_2_with_usage(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["grid", "train", "--events", "e.root", "--models-dir", str(tmp_path), "--seeds", "0,x"])
    assert exit_info.value.code == 2 and "comma-separated integers" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "nonsense"])
    assert exit_info.value.code == 2 and "invalid choice: 'nonsense'" in capsys.readouterr().err


def test_bench_error_goes_through_the_handler(capsys, tmp_path):
    rc = main(["bench", "rtl", str(tmp_path / "no_project")])
    _assert_handled(rc, capsys.readouterr().err, "bench rtl", "no_project")


def test_missing_extra_is_named(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['tensorflow'] = None  # as if the firmware extra were not installed\n"
        "from l0emu.cli.dispatch import main\n"
        "sys.exit(main(['train', 'events.root', '-o', 'out']))\n"
    )
    proc = _python(code, tmp_path)
    _assert_handled(proc.returncode, proc.stderr, "train", "'tensorflow'", "pip install -e '.[firmware]'")


def test_grid_error_goes_through_the_handler_without_tensorflow_noise(tmp_path):
    """A real grid run in a fresh process: TensorFlow is imported, its start-up log is not shown."""
    # importing TensorFlow here would fix what tf.keras means before keras_env can (a later
    # test of this process would then build QKeras on Keras 3): look it up without importing
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed")
    proc = subprocess.run(
        [sys.executable, "-m", "l0emu.cli", "grid", "evaluate", "--models-dir", "nowhere", "--events", "e.root", "-o", "report"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    _assert_handled(proc.returncode, proc.stderr, "grid", "'nowhere' does not exist", "l0emu grid train")
    assert not any(noise in proc.stderr for noise in TF_NOISE), proc.stderr
    assert not (tmp_path / "report").exists()


# ---------------------------------------------------------------- one import name, a light import


def test_only_l0emu_is_importable_outside_the_checkout(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for name in ("simulation", "firmware", "validation"):
        proc = _python(f"import {name}", tmp_path, env=env)
        assert proc.returncode != 0 and f"No module named '{name}'" in proc.stderr, name
    code = (
        "import sys\n"
        "import l0emu.simulation, l0emu.firmware, l0emu.validation\n"
        "assert not [m for m in ('numba', 'uproot', 'tensorflow', 'matplotlib') if m in sys.modules], sorted(sys.modules)\n"
        "import l0emu\n"
        "assert callable(l0emu.turn_on_curve) and callable(l0emu.run_trigger) and 'numba' not in sys.modules\n"
        "print(l0emu.__file__)\n"
    )
    proc = _python(code, tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).parent == REPO / "l0emu"


def test_api_names_resolve_to_their_modules():
    from l0emu.results import metrics
    from l0emu.trigger import job

    for name in l0emu.__all__:
        assert getattr(l0emu, name) is not None, name
        assert name in dir(l0emu)
    assert l0emu.turn_on_curve is metrics.turn_on_curve
    assert l0emu.run_trigger.__doc__ and job.run_job.__name__ in l0emu.run_trigger.__doc__
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        l0emu.nonsense  # noqa: B018


# ---------------------------------------------------------------- the README example


def _readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_example_runs_as_written(tmp_path):
    code = _readme_example()
    assert "simulate(" in code and "run_trigger(" in code and "uproot.open" in code and "turn_on_curve(" in code
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = _python(code, tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    for name in ("events.root", "l0.root", "l0_rates.csv", "l0_rates.json", "turn_on.png"):
        assert (tmp_path / name).is_file(), name
    assert "plateau_efficiency" in proc.stdout


# ---------------------------------------------------------------- the design document


def test_every_design_document_the_code_cites_exists():
    cited = {}
    for folder in ("l0emu", "simulation", "firmware", "validation", "tests"):
        for path in (REPO / folder).rglob("*.py"):
            if path.name == "test_cli.py":
                continue  # this test names the old file on purpose
            text = path.read_text()
            assert "DESIGN.md" not in text, f"{path} cites DESIGN.md; the design is docs/design.md"
            for doc in re.findall(r"docs/[\w/.-]+\.md", text):
                cited.setdefault(doc, path)
    assert "docs/design.md" in cited
    for doc, path in cited.items():
        assert (REPO / doc).is_file(), f"{path} cites {doc}, which is not in the repository"


# ---------------------------------------------------------------- library hygiene (firmware extra)


def test_training_choices_shown_in_help_match_the_training_code():
    pytest.importorskip("l0emu.firmware.keras_env")
    from l0emu.firmware import options, train

    assert options.PRESET_NAMES == tuple(train.PRESETS)
    assert options.ARCHITECTURE_NAMES == tuple(train.ARCHITECTURES)


def test_numpy_product_alias_lives_only_inside_its_block():
    pytest.importorskip("l0emu.firmware.keras_env")
    import numpy as np

    from l0emu.firmware.keras_env import numpy_product_alias

    assert not hasattr(np, "product")  # numpy 2 removed it; hls4ml 1.3.0 still calls it
    with numpy_product_alias():
        assert np.product([2, 3, 4]) == 24
    assert not hasattr(np, "product")
    with pytest.raises(RuntimeError), numpy_product_alias():
        raise RuntimeError
    assert not hasattr(np, "product")
