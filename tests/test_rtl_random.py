"""Randomized QKeras architectures through the RTL path (hypothesis): emulator == RTL.

The networks are drawn with the strategies of ``test_random_architectures.py`` (conv kernel
sizes, filters, padding, strides; max/average pooling; dense widths; quantizer widths,
integer bits, alpha 1 or 'auto_po2'; activations; io_parallel or io_stream), given random
weights and converted with the bridge (no C-simulation is compiled: that equality is the
other file's claim). Then, on full-range random inputs (uniform mantissas over the input
type, plus all-zero, all-minimum and all-maximum events; one array per network input):

- every network the RTL path accepts: da4ml's interpreter of the traced graph == the
  pure-Python reference == the numba emulator, every output bit;
- a few of them also through ``l0emu rtl DIR --simulate N``: Verilog from da4ml, compiled
  by Verilator (about a minute each on two cores), equal to all three;
- a network the RTL path refuses: a SpecError naming the layer and what is supported.

CI runs 3 (interpreter) and 1 (Verilator) examples; ``L0EMU_TEST_SCALE=full`` runs 50 and 8.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("hls4ml")
pytest.importorskip("da4ml")

from hypothesis import HealthCheck, Phase, assume, given, settings  # noqa: E402

from conftest import scaled  # noqa: E402
from l0emu.fixedpoint.spec import spec_inputs  # noqa: E402
from l0emu import cli  # noqa: E402
from l0emu.fixedpoint.emulator import Emulator  # noqa: E402
from l0emu.errors import SpecError  # noqa: E402
from l0emu.firmware import hls4ml_bridge as bridge  # noqa: E402
from l0emu.firmware import rtl  # noqa: E402
from l0emu.validation.compare import full_range_inputs  # noqa: E402
from test_random_architectures import REFUSALS, architectures, build_graph, graphs  # noqa: E402
from test_random_architectures import build as build_model  # noqa: E402
from test_random_architectures import config as conversion_config  # noqa: E402

N_EVENTS = scaled(500, 2000)
N_VERILATOR_EVENTS = scaled(300, 1000)
SETTINGS = dict(
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # shrinking would reconvert and rebuild for hours
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


def _convert(arch, directory):
    build_model(arch).save(str(directory / "model.h5"))
    # io type and the drawn accumulator/result types (rounding, saturation) per layer
    try:
        _, spec = bridge.convert(directory / "model.h5", directory / "fw", conversion_config(arch), name="arch")
    except SpecError as err:
        # what the emulator refuses is refused by layer name at convert
        # (tests/test_random_architectures.py does the same): not an RTL case
        assume(not any(refusal in str(err) for refusal in REFUSALS))
        raise
    return spec


def _refusal(spec):
    """None if the RTL path accepts ``spec``, else its refusal (which must name the layer)."""
    try:
        rtl.check_supported(spec)
    except SpecError as err:
        names = [layer["name"] for layer in spec["layers"]] + [inp["name"] for inp in spec_inputs(spec)]
        assert any(repr(name) in str(err) for name in names), str(err)
        assert re.search(r"supported", str(err)), str(err)
        return str(err)
    return None


@pytest.mark.slow
@pytest.mark.hls4ml
@settings(max_examples=scaled(3, 50), **SETTINGS)
@given(arch=architectures())
def test_random_architecture_rtl_graph_is_bit_exact(arch, tmp_path_factory, rtl_session_cache):
    directory = tmp_path_factory.mktemp("rtl_arch")
    spec = _convert(arch, directory)
    if _refusal(spec) is not None:
        return
    x = full_range_inputs(N_EVENTS, spec, arch["seed"])
    emulator = Emulator.from_spec(spec).predict_raw(x)
    graph = rtl.interpret(rtl.trace_spec(spec), x)
    # float64 holds 53 bits: wider networks are checked against the emulator alone
    reference = emulator if rtl.exact_limit(spec) else rtl.evaluate_exact(spec, x)
    for name, got in (("numba emulator", emulator), ("da4ml interpreter", graph)):
        bad = np.flatnonzero(np.any(got != reference, axis=1))
        assert not len(bad), f"{name}: {len(bad)} of {len(x)} events differ from the reference (first #{bad[0]}); {arch}"


@pytest.mark.slow
@pytest.mark.hls4ml
@settings(max_examples=scaled(1, 8), **SETTINGS)
@given(arch=architectures())
def test_random_architecture_simulates_in_verilator(arch, tmp_path_factory, rtl_session_cache, capsys):
    """``l0emu rtl DIR --simulate N`` on the drawn network: Verilator == every reference."""
    directory = tmp_path_factory.mktemp("rtl_sim")
    spec = _convert(arch, directory)
    project = str(directory / "fw")
    capsys.readouterr()
    code = cli.main(["rtl", project, "--simulate", str(N_VERILATOR_EVENTS), "--seed", str(arch["seed"])])
    captured = capsys.readouterr()
    refusal = _refusal(spec)
    if refusal is not None:
        assert code == 2 and refusal in captured.err and "Traceback" not in captured.err
        return
    assert code == 0, captured.out + captured.err
    names = ["numba emulator", "da4ml interpreter"] + ([] if rtl.exact_limit(spec) else ["pure-Python reference"])
    for name in names:
        assert f"RTL vs {name}: all {N_VERILATOR_EVENTS} events equal, every output bit" in captured.out, captured.out


@pytest.mark.slow
@pytest.mark.hls4ml
@settings(max_examples=scaled(2, 30), **SETTINGS)
@given(arch=graphs())
def test_random_graph_rtl_graph_is_bit_exact(arch, tmp_path_factory, rtl_session_cache):
    """Conv1D / Conv2D, 1-D pools, ZeroPadding1D, global pools, Reshape, UpSampling, residual
    merges, Concatenate and a second input: da4ml's graph == the pure-Python reference == the
    emulator (converted without compiling a C-simulation; test_random_architectures.py checks
    the emulator against it on graphs of the same strategy)."""
    directory = tmp_path_factory.mktemp("rtl_graph")
    try:
        model, conversion = build_graph(arch)
    except ValueError:  # Keras refuses a drawn shape
        assume(False)
    model.save(str(directory / "model.h5"))
    try:
        _, spec = bridge.convert(directory / "model.h5", directory / "fw", conversion, name="graph")
    except SpecError as err:
        assume("the emulator cannot hold" not in str(err))
        raise
    if _refusal(spec) is not None:  # e.g. an average whose division exceeds da4ml's exact products
        return
    x = full_range_inputs(N_EVENTS, spec, arch["seed"])
    emulator = Emulator.from_spec(spec).predict_raw(x)
    reference = emulator if rtl.exact_limit(spec) else rtl.evaluate_exact(spec, x)
    for name, got in (("numba emulator", emulator), ("da4ml interpreter", rtl.interpret(rtl.trace_spec(spec), x))):
        bad = np.flatnonzero(np.any(got != reference, axis=1))
        assert not len(bad), f"{name}: {len(bad)} of {len(x)} events differ from the reference (first #{bad[0]}); {arch}"


@pytest.fixture(scope="session")
def rtl_session_cache(tmp_path_factory):
    """Generated emulator kernels go to a session temporary directory, not the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.mktemp("kernels")))
    yield
    mp.undo()
