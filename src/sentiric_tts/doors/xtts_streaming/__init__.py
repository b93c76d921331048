"""Coqui's xtts-streaming-server API (what pipecat's XTTSService calls) under PREFIX: its clients
append the paths to their base URL, so `http://host:14030/xtts-streaming` stands where
`http://host:8000` stood.

Imports nothing here: the error handlers (doors/http/errors.py) read PREFIX."""

PREFIX = "/xtts-streaming"
