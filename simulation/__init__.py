"""The toy RPC detector: muon tracks, toroid bending, efficiency, clusters, noise."""
