"""OpenAI's speech API: /v1/audio/speech (audio or SSE), /v1/models, /v1/audio/voices."""
