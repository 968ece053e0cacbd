"""Emulator vs firmware comparisons, physics metrics, plots and reports."""
