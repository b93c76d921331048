"""Messages a client sends on /ws/tts, validated; and the error event built from a bad one."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sentiric_tts.doors.http.errors import describe_validation_error
from sentiric_tts.doors.http.schemas import GenerationFields


class SessionParams(GenerationFields):
    model_config = ConfigDict(extra="forbid")


class StartMessage(BaseModel):
    """Opens speech: how everything the session speaks sounds and is encoded."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["start"]
    voice: str | None = Field(None, description="Voice id; default: the service's.")
    language: str | None = Field(None, description="Language code; default: the service's.")
    format: str = Field("pcm", description="Audio format of the binary frames (as output_format).")
    sample_rate: int | None = Field(None, description="Output rate; default: the engine's.")
    text_type: Literal["text", "ssml"] = Field("text", description="ssml: text holds SSML fragments.")
    volume_gain_db: float = Field(0.0, ge=-30.0, le=20.0)
    params: SessionParams = Field(default_factory=SessionParams)  # type: ignore[arg-type]


class TextMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: str


class ControlMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["flush", "close", "cancel"]


ClientMessage = StartMessage | TextMessage | ControlMessage
_BY_TYPE: dict[str, type[BaseModel]] = {
    "start": StartMessage,
    "text": TextMessage,
    "flush": ControlMessage,
    "close": ControlMessage,
    "cancel": ControlMessage,
}


class BadMessage(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def parse_message(raw: str) -> ClientMessage:
    """A client's JSON text frame as a message; BadMessage says what is wrong with it."""
    try:
        data: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadMessage(f"Not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
    except RecursionError:
        # json's decoder recurses per level and stops cleanly at the interpreter's limit.
        raise BadMessage(
            "The message nests arrays or objects too deeply; a message is a JSON object with a "
            "'type' and a few flat fields."
        ) from None
    if not isinstance(data, dict):
        raise BadMessage("A message is a JSON object with a 'type'.")
    kind = data.get("type")
    model = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise BadMessage(f"Unknown message type {kind!r}: send one of {', '.join(_BY_TYPE)}.", param="type")
    try:
        return model.model_validate(data)  # type: ignore[return-value]
    except ValidationError as exc:
        described = [describe_validation_error(dict(error)) for error in exc.errors()]
        message = " ".join(text for text, _ in described)
        raise BadMessage(message, next((param for _, param in described if param), None)) from None
