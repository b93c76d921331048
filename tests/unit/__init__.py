"""Unit tier: the stream, joins, scheduler and WebSocket session on a fake engine, in-process."""
