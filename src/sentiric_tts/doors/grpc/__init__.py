"""The gRPC door: `sentiric.tts.v1.TtsCoquiService` on its own port, beside the HTTP API."""
