"""The generated messages and service base of sentiric.tts.v1, made on first use if missing."""

from __future__ import annotations

from sentiric_tts.doors.grpc.codegen import ensure_generated

ensure_generated()

from sentiric_tts.doors.grpc._generated import tts_coqui_pb2 as pb  # noqa: E402
from sentiric_tts.doors.grpc._generated import tts_coqui_pb2_grpc as pb_grpc  # noqa: E402

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["TtsCoquiService"].full_name

__all__ = ["SERVICE_NAME", "pb", "pb_grpc"]
