"""The WebSocket door, /ws/tts: text in as an LLM writes it, audio frames and events out."""
