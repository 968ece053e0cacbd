"""Process plumbing shared by every stage: atomic outputs and signals, quiet third-party
warnings, JSON-ready values."""
