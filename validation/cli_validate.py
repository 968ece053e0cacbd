"""``l0emu validate DIR --random N | --events FILE.root [--write-testbench]``."""

from __future__ import annotations

from pathlib import Path

from l0emu.errors import ConfigError

__all__ = ["DESCRIPTION", "add_arguments", "main"]

DESCRIPTION = "emulator vs hls4ml C-simulation (and QKeras), bit by bit"


def add_arguments(parser):
    parser.add_argument("project", type=Path, help="project directory written by 'l0emu convert'")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--random", type=int, metavar="N", help="N random sparse inputs of the network's input shape (pixel values 0, 0.5, 1; every input of a network with several)")
    source.add_argument("--events", type=Path, metavar="FILE.root", help="fragmented events from an event file")
    parser.add_argument(
        "--max-events", type=int, default=100_000,
        help="events read from --events (default 100000); a multi network runs on each of their candidate windows",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --random inputs")
    parser.add_argument(
        "--full-range",
        action="store_true",
        help="with --random: input mantissas over the input type's whole range (uniform, plus zero, min and max) "
        "instead of fragment pixels",
    )
    parser.add_argument("--write-testbench", action="store_true", help="write DIR/tb_data/ from these inputs")


def main(args) -> int:
    if args.random is not None and args.random < 1:  # before TensorFlow and hls4ml load
        msg = f"--random needs a positive number of events, got {args.random}"
        raise ConfigError(msg)
    from .compare import compare, full_range_inputs, random_inputs, write_testbench

    if args.random is not None:
        from l0emu.fixedpoint.spec import read_spec

        spec = read_spec(args.project)
        if args.full_range:
            counts = full_range_inputs(args.random, spec, seed=args.seed)
        else:
            counts = random_inputs(args.random, spec, seed=args.seed)
    else:
        if args.full_range:
            msg = "--full-range draws random inputs: use it with --random N, not with --events"
            raise ConfigError(msg)
        from l0emu.trigger.events import first_network_images
        from l0emu.fixedpoint.spec import read_spec

        # the trigger job's own images: the spec's stride, layers and (multi networks) candidate windows
        counts, n_events = first_network_images([args.events], args.max_events, read_spec(args.project))
        print(f"{len(counts):,} network inputs from the first {n_events:,} events of {str(args.events)!r}")
    result = compare(args.project, counts)
    print(result.summary())
    if args.write_testbench:
        for path in write_testbench(args.project, counts):
            print(f"wrote {path}")
    return 0 if result.ok else 1
