"""Thin HTTP routers: they turn calls into SynthesisRequests and pipeline output into responses."""
