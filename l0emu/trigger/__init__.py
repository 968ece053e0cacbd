"""The trigger: detector geometry, hits to images, the sector logic and the event loop.

- :mod:`~l0emu.trigger.geometry`: the 9 x 384 strip geometry, in one place;
- :mod:`~l0emu.trigger.events`: event files (TTree or RNTuple) read and checked in chunks;
- :mod:`~l0emu.trigger.images`: hits -> images -> the fragment window the network sees;
- :mod:`~l0emu.trigger.sector` and :mod:`~l0emu.trigger.multi`: multi-candidate sector logic;
- :mod:`~l0emu.trigger.logic`: :class:`~l0emu.trigger.logic.Trigger`, the network's decisions
  for one chunk of events;
- :mod:`~l0emu.trigger.job`: the event loop over files, locally or on dask.
"""
