"""Piper's HTTP API (`python -m piper.http_server`): POST / and POST /synthesize at the root, as
Piper's clients (pipecat's PiperHttpTTSService, Home Assistant add-ons, scripts) post to the base
URL itself."""
