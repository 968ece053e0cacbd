"""Fraction of plateau muons (leading muon pT >= 15 GeV) whose strip lies outside the chosen
window(s): today's single window at several strides, and any of the sector logic's candidates."""
import sys
import numpy as np
from l0emu.trigger.events import load_events
from l0emu.trigger.geometry import eta_to_strip
from l0emu.trigger.images import fragment_hits, window_low_strip
from l0emu.trigger.sector import sector_candidates, NO_CANDIDATE

for path in sys.argv[1:]:
    c = load_events(path)
    plateau = c.true_pt >= 15.0
    strip = eta_to_strip(c.true_eta)
    print(path, "plateau muons", int(plateau.sum()))
    for stride in (4, 8, 16):
        start, _ = fragment_hits(c.hit_offsets, c.hit_layer, c.hit_strip, stride)
        low = window_low_strip(start)
        out = plateau & ((strip < low) | (strip >= low + 32))
        print(f"  single window, stride {stride:2d}: outside {out.sum() / plateau.sum():.4%}")
    for k in (1, 2, 3):
        starts, _, n_found = sector_candidates(c.hit_offsets, c.hit_layer, c.hit_strip, 8, max_candidates=k)
        inside = np.zeros(len(c), bool)
        for j in range(k):
            present = starts[:, j] != NO_CANDIDATE
            low = window_low_strip(np.where(present, starts[:, j], 0))
            inside |= present & (strip >= low) & (strip < low + 32)
        out = plateau & ~inside
        print(f"  {k} candidate(s), stride 8: outside all {out.sum() / plateau.sum():.4%}")
