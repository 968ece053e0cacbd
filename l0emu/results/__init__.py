"""What a trigger run reports: counts, rates, physics metrics, the ``l0`` file, tables and plots.

- :mod:`~l0emu.results.counting` and :mod:`~l0emu.results.rates`: mergeable counts per chunk
  and the rate/efficiency rows made from them (:mod:`~l0emu.results.multi_rates` for
  multi-candidate networks);
- :mod:`~l0emu.results.metrics` and :mod:`~l0emu.results.stats`: turn-on curves, plateaus,
  resolutions, fake rates and their intervals, on arrays;
- :mod:`~l0emu.results.l0_file`: the ``l0`` tree and its histograms;
- :mod:`~l0emu.results.report`: every table and plot of a finished run, made in one place;
- :mod:`~l0emu.results.plotting`: the shared plot style.
"""
