"""Plots are made without touching the caller's matplotlib state (backend, rcParams, pyplot figures)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
from conftest import write_events
from test_trigger import counting_spec, sample_events

from l0emu.results.plotting import errorbar_hist, hep_style, label, new_figure, save_figure
from l0emu.fixedpoint.spec import write_spec

# run in a fresh interpreter: the caller picks the svg backend before importing l0emu, then
# imports every plotting module, draws every kind of figure, and runs the trigger job
_SCRIPT = """
import sys
import matplotlib

matplotlib.use("svg")
before = dict(matplotlib.rcParams)

import l0emu.simulation.plots as simulation_plots
import l0emu.validation.plots
from l0emu.trigger.job import run_job
from l0emu.simulation.settings import SimSettings
from l0emu.fixedpoint.spec import read_spec

events, spec, out = sys.argv[1:4]
simulation_plots.make_plots(SimSettings(), out + "/plots", n_events=2000)
result = run_job([events], read_spec(spec), out + "/l0.root", (5.0,), progress=False)
assert result.outputs["turn_on_png"].is_file()

import matplotlib.pyplot as plt

changed = sorted(k for k in before if str(before[k]) != str(matplotlib.rcParams[k]))
print("backend", matplotlib.get_backend())
print("changed", changed)
print("figures", plt.get_fignums())
"""


def test_plots_and_run_job_leave_the_callers_matplotlib_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path / "kernels"))
    events = write_events(tmp_path / "ev.root", sample_events(30))
    spec = write_spec(counting_spec(), tmp_path / "spec.json")
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SCRIPT), str(events), str(spec), str(tmp_path)],
        capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert "backend svg" in lines  # was switched to Agg at import and on every run
    assert "changed []" in lines  # mplhep's style applied only while a plot is drawn
    assert "figures []" in lines  # no figure registered with (or left open in) pyplot
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "bending_vs_pt.png", "event_displays.png", "fragment_survival.png", "occupancy.png", "settings.png",
    ]


def test_save_figure_writes_a_png_with_the_neutral_label(tmp_path):
    with hep_style():
        fig, ax = new_figure()
        errorbar_hist(ax, [0.5, np.nan, 1.0], [0.0, 1.0, 2.0, 3.0], [0.4, np.nan, 0.9], [0.6, np.nan, 1.0])
        label(ax)
        texts = [t.get_text() for t in ax.texts]
        path = save_figure(fig, tmp_path / "p.png")
    assert "l0emu" in texts and "toy simulation" in texts
    assert not any("ATLAS" in t or "Simulation" in t for t in texts)  # not an experiment's label
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]  # no temporary left behind


def test_grid_figures_are_drawn_from_result_rows(tmp_path):
    from l0emu.results.metrics import physics_summary
    from l0emu.validation.plots import make_grid_plots

    rng = np.random.default_rng(3)
    rows = []
    networks = [("teacher 9x16", None, False), ("student", None, False), ("student", 4, False), ("student", 4, True)]
    for scenario in ("default", "hard"):
        for model, bits, kd in networks:
            true_pt = np.where(rng.random(4000) < 0.5, rng.uniform(3, 20, 4000), 0.0)
            pred_pt = true_pt * rng.normal(1.0, 0.15, 4000)
            rows.append({"model": model, "bits": bits, "kd": kd, "seed": 0, "scenario": scenario, **physics_summary(true_pt, pred_pt)})
    paths = make_grid_plots(rows, tmp_path, turn_on_bits=4, threshold=10.0)
    assert [p.name for p in paths] == [
        "turn_on.png", "resolution.png", "plateau_vs_bits.png", "resolution_vs_bits.png", "fake_rate_vs_bits.png",
    ]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
