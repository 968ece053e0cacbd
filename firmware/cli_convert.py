"""``l0emu convert MODEL -o DIR``: a Keras 2/QKeras, Keras 3/HGQ2 or ONNX/QONNX model -> hls4ml project + ``spec.json``."""

from __future__ import annotations

from pathlib import Path

from l0emu.fixedpoint.aptypes import parse_type
from l0emu.util.atomic import check_output, outputs_complete

__all__ = ["DESCRIPTION", "add_arguments", "main", "summary"]

DESCRIPTION = "Keras/QKeras, Keras 3/HGQ2 or ONNX/QONNX model -> hls4ml project + spec.json"


def add_arguments(parser):
    parser.add_argument(
        "model",
        help="Keras 2/QKeras model (an .h5 file or a SavedModel directory), Keras 3/HGQ2 model (.keras), "
        "ONNX/QONNX model (.onnx), or a PyTorch .pt file written by l0emu.convert",
    )
    parser.add_argument("-o", "--output", required=True, help="project directory to write (replaced if it holds an earlier conversion)")
    parser.add_argument("--config", help="conversion settings (.json or .yml): io_type, reuse_factor, strategy, layers.<name>.precision, outputs, ...")
    parser.add_argument("--io-type", choices=("io_parallel", "io_stream"), help="overrides the config's io_type (hls4ml_bridge.DEFAULT_SETTINGS when neither sets it)")
    parser.add_argument("--name", help="network name in the spec (default: the model file's stem)")
    parser.add_argument("--compile", action="store_true", help="also build the C-simulation library with g++ (about 10 s)")


def _count(layer):
    return len(layer.get("weights", ())) + len(layer.get("biases", ())) + len(layer.get("scale", ())) + len(layer.get("bias", ()))


def summary(spec, out_dir, compiled, model_file="keras_model.h5") -> str:
    """A one-screen table of the converted network: layers, types, parameters and files."""
    from l0emu.fixedpoint.spec import spec_inputs

    from .hls4ml_bridge import CONFIG_FILE, SPEC_FILE  # TensorFlow: not at --help

    source = spec["source"]
    lines = [
        f"network {spec['name']!r}: hls4ml {source['hls4ml_version']}, {source['backend']} {source['part']}, "
        f"{source['clock_period_ns']} ns, {source['io_type']}",
        *(f"input {inp['name']} {inp['shape']} {inp['type']}" for inp in spec_inputs(spec)),
        f"{'layer':<16}{'op':<12}{'output':<14}{'params':>7}  types (weight / accum / result)",
    ]
    for layer in spec["layers"]:
        types = [layer.get(k) for k in ("weight_type", "scale_type", "accum_type", "result_type") if layer.get(k)]
        product = f" [{layer['product']}]" if layer.get("product", "mult") != "mult" else ""
        lines.append(
            f"{layer['name']:<16}{layer['op']:<12}{str(layer['output_shape']):<14}{_count(layer):>7}  "
            + " / ".join(types)
            + product
        )
    total = sum(_count(layer) for layer in spec["layers"])
    out_type = parse_type(spec["layers"][-1]["result_type"])
    lines.append(f"parameters: {total}; output type {out_type} (lsb {out_type.lsb:g})")
    fragment = (spec.get("preprocessing") or {}).get("fragment") or {}
    sector_logic = f"; sector logic: up to {fragment['candidates']} candidate windows, min_hits {fragment.get('min_hits')}" if "candidates" in fragment else ""
    lines.append("outputs: " + ", ".join(o["name"] for o in spec["outputs"]) + sector_logic)
    if source["renamed_layers"]:
        renamed = ", ".join(f"{old!r} -> {new!r}" for old, new in source["renamed_layers"].items())
        lines.append(f"renamed for hls4ml: {renamed}")
    out_dir = Path(out_dir)
    lines.append(f"wrote {out_dir / SPEC_FILE}, {out_dir / model_file}, {out_dir / CONFIG_FILE} and the HLS project in {out_dir}/")
    lines.append("C-simulation library compiled" if compiled else "not compiled (pass --compile, or 'l0emu validate' compiles it)")
    lines.append("no Vivado/Vitis here: synthesis reports are not produced")
    return "\n".join(lines)


def main(args) -> int:
    # the output is checked before TensorFlow loads: not a file, not holding the model or config
    check_output(args.output, directory=True, parents=True, inputs=[p for p in (args.model, args.config) if p], option="-o")
    from .hls4ml_bridge import convert, front_end_for, read_convert_config  # TensorFlow and hls4ml: only when converting

    settings = read_convert_config(args.config) if args.config else {}
    if args.io_type:
        settings["io_type"] = args.io_type
    origin = args.config or "conversion settings"
    _, spec = convert(args.model, args.output, settings, name=args.name, compile=args.compile, origin=origin)
    outputs_complete()
    print(summary(spec, args.output, args.compile, front_end_for(args.model).model_file))
    return 0
