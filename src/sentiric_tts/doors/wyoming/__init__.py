"""The Wyoming door, for Home Assistant: describe, synthesize and streamed synthesize over TCP
(port 10200), with the `wyoming` package's own event framing. No authentication: API keys do
not apply; the door binds to its own address (TTS_WYOMING_HOST)."""
