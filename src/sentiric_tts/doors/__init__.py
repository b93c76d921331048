"""The doors: each turns one protocol into SynthesisRequests and the audio stream back into that
protocol, and nothing else.

- http: the native REST API, health, metrics, and what every HTTP route shares (error bodies,
  body limits, the origin guard, the shutdown cut);
- openai: OpenAI's speech API (JSON and SSE);
- websocket: incremental text in, audio and events out;
- grpc: sentiric.tts.v1.TtsCoquiService;
- gradio: the optional Gradio interface;
- wyoming: Home Assistant's Wyoming protocol, on its own TCP port (no API keys);
- xtts_api, xtts_streaming, piper_http: other servers' APIs (xtts-api-server at /xtts-api, coqui's
  xtts-streaming-server at /xtts-streaming, Piper's at POST / and /synthesize), for the clients
  people already run (docs/clients.md).

Every door reports failures through one vocabulary (failures.py) and identifies callers through
callers.py; the core (synthesis, engines, audio, voices) imports no door.
"""
