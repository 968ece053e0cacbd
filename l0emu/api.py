"""Notebook-sized entry points: simulate events, run the trigger, in one call each.

Both are thin wrappers over the functions the ``l0emu simulate`` and ``l0emu run`` verbs
call, with the same checks, outputs and errors (:class:`l0emu.errors.L0emuError`
subclasses naming the file, branch or option at fault)::

    from l0emu import simulate, run_trigger
    simulate("events.root", 10_000, seed=1)
    result = run_trigger("events.root", "l0.root", thresholds=[10])

:func:`simulate` is the one place the runtime floor reaches into ``l0emu.simulation``; it
imports it on call, and the toy detector needs nothing beyond the floor's own
dependencies (numpy, numba, uproot, awkward). :func:`convert` needs the ``firmware`` extra
(hls4ml; PyTorch for a module) and imports it on call.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["simulate", "run_trigger", "convert"]


def simulate(output, n_events: int, *, seed: int = 0, scenario: str = "default", overrides: dict | None = None,
             chunk_size: int | None = None, progress: bool = False):
    """Generate ``n_events`` toy bunch crossings into the ROOT file ``output``; what
    ``l0emu simulate -n N --seed S --scenario NAME -o OUTPUT`` does.

    ``scenario`` is ``"default"`` or ``"hard"`` (:data:`l0emu.simulation.settings.SCENARIOS`);
    ``overrides`` maps setting names to values (``{"noise_rate": 2e-3}``), as ``--set`` does.
    The same seed and settings give the same events whatever ``chunk_size``. The file is
    written under a temporary name and renamed at the end. Returns the
    :class:`~l0emu.simulation.events_io.RunSummary` (counts, hits per layer, time).
    """
    from l0emu.simulation.events_io import DEFAULT_CHUNK_SIZE, write_events
    from l0emu.simulation.settings import settings_for_scenario

    settings = settings_for_scenario(scenario, seed=seed, overrides=overrides)
    return write_events(output, settings, n_events, chunk_size=DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size, progress=progress)


def run_trigger(inputs, output, *, spec=None, thresholds=None, progress: bool = False, **options):
    """Run the L0 trigger over event files; what ``l0emu run INPUTS -o OUTPUT`` does.

    ``inputs``: one path or glob, or a list of them (TTree or RNTuple ``events``).
    ``spec``: a ``spec.json`` path, a converted project directory, or a spec dict; ``None``
    is the student shipped with the package. ``thresholds``: pT thresholds in GeV (default
    :data:`l0emu.trigger.logic.DEFAULT_THRESHOLDS`). ``options`` go to :func:`l0emu.trigger.job.run_job`:
    ``step_size``, ``assumptions`` (:class:`l0emu.results.rates.RateAssumptions`), ``workers``,
    ``scheduler`` and whatever else that function takes.

    Writes ``output`` (TTree ``l0``, one entry per event, and the turn-on histograms) and
    beside it ``<stem>_rates.csv``, ``<stem>_rates.json`` and ``<stem>_turn_on.png``, all
    or none. Returns the :class:`l0emu.trigger.job.JobResult` (events, timing, rate table rows,
    counts, output paths).
    """
    from l0emu.trigger.job import run_job
    from l0emu.fixedpoint.spec import read_spec
    from l0emu.schema import DEFAULT_THRESHOLDS

    if spec is None:
        from l0emu.cli.run import default_spec_path

        spec = default_spec_path()
    if not isinstance(spec, dict):
        spec = read_spec(spec)
    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    thresholds = DEFAULT_THRESHOLDS if thresholds is None else thresholds
    return run_job(inputs, spec, output, thresholds, progress=progress, **options)


def convert(model, output, *, input_shape=None, settings=None, name=None, compile: bool = False):
    """Convert a model into an hls4ml project with ``spec.json``; what ``l0emu convert MODEL -o
    OUTPUT`` does. Needs the ``firmware`` extra (imported on call).

    ``model``: a model file (Keras 2 / QKeras ``.h5`` or SavedModel, Keras 3 / HGQ2 ``.keras``,
    ONNX / QONNX ``.onnx``), a Keras 3 model object (saved into the project as ``model.keras``),
    or a ``torch.nn.Module`` with its ``input_shape`` (channels first, no batch dimension, as
    PyTorch takes it; the project's input is channels last, as every spec's).
    ``settings``: a conversion config file (JSON or YAML, as ``--config``) or its dict.
    Returns ``(hls_model, spec)``; ``output`` holds the project :func:`run_trigger` and
    ``l0emu validate`` read.
    """
    import tempfile

    from l0emu.errors import ConfigError
    from l0emu.firmware.frontend_keras3 import MODEL_FILE, is_keras3_model
    from l0emu.firmware.hls4ml_bridge import convert as convert_file
    from l0emu.firmware.hls4ml_bridge import read_convert_config

    if isinstance(settings, (str, Path)):
        settings = read_convert_config(settings)
    if input_shape is not None or _is_torch_module(model):
        from l0emu.firmware.frontend_torch import convert_module

        if input_shape is None or isinstance(model, (str, Path)):
            msg = "input_shape goes with a torch.nn.Module (and a module needs it); a model file or Keras model carries its own"
            raise ConfigError(msg)
        return convert_module(model, input_shape, output, settings, name=name, compile=compile)
    if isinstance(model, (str, Path)):
        return convert_file(model, output, settings, name=name, compile=compile)
    if not is_keras3_model(model):
        msg = (
            f"model: expected a file path, a Keras 3 model object or a torch.nn.Module, got {type(model).__name__} "
            "(save a tf-keras model as .h5 and pass its path)"
        )
        raise ConfigError(msg)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / MODEL_FILE
        model.save(str(path))
        return convert_file(path, output, settings, name=name or model.name, compile=compile)


def _is_torch_module(model) -> bool:
    """Whether ``model`` is a ``torch.nn.Module``, without importing torch when it is not loaded."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)
