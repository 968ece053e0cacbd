"""The ``l0emu`` console script.

Each sub-command lives in its own module (``<package>/cli_<command>.py``) exposing
``HELP``, ``add_arguments(parser)`` and ``main(args) -> int``. Modules are imported
only when their command runs, so ``l0emu run`` never imports TensorFlow or hls4ml and
works with only the runtime floor installed.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import L0emuError

__all__ = ["COMMANDS", "main"]

# command -> (module, one-line help); the help is repeated here so `l0emu --help`
# does not import the heavy modules.
COMMANDS = {
    "simulate": ("l0emu.simulation.cli_simulate", "generate toy RPC events into a ROOT file"),
    "train": ("l0emu.firmware.cli_train", "train teacher/student networks (QKeras, distillation)"),
    "convert": ("l0emu.firmware.cli_convert", "Keras/QKeras model -> hls4ml project + spec.json"),
    "validate": ("l0emu.validation.cli_validate", "emulator vs hls4ml C-simulation, bit by bit"),
    "run": ("l0emu.cli_run", "the trigger job: events.root -> L0 decisions, l0.root, tables"),
    "rtl": ("l0emu.firmware.cli_rtl", "spec -> Verilog via da4ml, checked in Verilator"),
}

EXTRA_OF_PACKAGE = {"firmware": "firmware", "validation": "firmware"}


def _load(command: str):
    module_name = COMMANDS[command][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        package = module_name.split(".")[0]
        if err.name and err.name.split(".")[0] in (package, "l0emu"):
            raise
        extra = EXTRA_OF_PACKAGE.get(package, package)
        msg = (
            f"'l0emu {command}' needs {err.name!r}, which is not installed; "
            f"install the extra: pip install -e '.[{extra}]'"
        )
        raise L0emuError(msg) from err


def _parser(argv) -> tuple[argparse.ArgumentParser, str | None]:
    parser = argparse.ArgumentParser(prog="l0emu", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _load(name).add_arguments(p)
    return parser, chosen


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser, chosen = _parser(argv)
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(_load(args.command).main(args) or 0)
    except L0emuError as err:
        print(f"l0emu {chosen or ''}: error: {err}".replace("  ", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("l0emu: interrupted; no partial output was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
