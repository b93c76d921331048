"""What every settings group is made of: fields named after their environment variable, and the
comma-separated list and map formats operators write in those variables."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticUndefined

ENV_PREFIX = "TTS_"


def setting(default: Any = PydanticUndefined, *, env: str, description: str, **constraints: Any) -> Any:
    """A field set by the environment variable `env`. Its flat name (`env` without the prefix, in
    lower case) is its alias: `Settings(grpc_port=1)` and `GrpcSettings(grpc_port=1)` set it too."""
    if not env.startswith(ENV_PREFIX) or env != env.upper():
        raise ValueError(f"{env}: a setting's variable is upper case and starts with {ENV_PREFIX}")
    return Field(default, alias=env.removeprefix(ENV_PREFIX).lower(), description=description, **constraints)


class SettingsGroup(BaseModel):
    """One section of the settings, read as `settings.<group>.<field>`."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True)

    title: ClassVar[str]
    """The section's heading in the generated documentation."""

    @classmethod
    def flat_names(cls) -> dict[str, str]:
        """Flat name (the variable without its prefix, lower case) -> field name."""
        return {field.alias or name: name for name, field in cls.model_fields.items()}

    @classmethod
    def env_name(cls, field_name: str) -> str:
        return ENV_PREFIX + (cls.model_fields[field_name].alias or field_name).upper()

    @classmethod
    def by_field_name(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """`data` keyed by field names, flat names translated; a field given by both names keeps
        the value given by its field name."""
        flat = cls.flat_names()
        named = {key: value for key, value in data.items() if key not in flat or flat[key] == key}
        for key, value in data.items():
            if key in flat and flat[key] != key:
                named.setdefault(flat[key], value)
        return named


def _json_or(value: str, opening: str) -> Any:
    """`value` decoded as JSON when it looks like a JSON list or object, else None."""
    if not value.lstrip().startswith(opening):
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:  # e.g. an API key that starts with '[': a plain value
        return None


def comma_separated(value: Any) -> Any:
    """'a, b,,c' -> ('a', 'b', 'c'): blanks around and between items dropped. A JSON list is
    taken as the list; anything but text is left for the field's own validation."""
    if not isinstance(value, str):
        return value
    decoded = _json_or(value, "[")
    if decoded is not None:
        return decoded
    return tuple(item.strip() for item in value.split(",") if item.strip())


def comma_separated_pairs(value: Any) -> Any:
    """'name=value, other=value' -> {'name': 'value', 'other': 'value'}: items without a name or
    a value dropped. A JSON object is taken as the map."""
    if not isinstance(value, str):
        return value
    decoded = _json_or(value, "{")
    if decoded is not None:
        return decoded
    pairs = (item.partition("=") for item in value.split(","))
    return {name.strip(): item.strip() for name, _, item in pairs if name.strip() and item.strip()}


CommaSeparated = Annotated[tuple[str, ...], BeforeValidator(comma_separated)]
CommaSeparatedInts = Annotated[tuple[int, ...], BeforeValidator(comma_separated)]
CommaSeparatedPairs = Annotated[dict[str, str], BeforeValidator(comma_separated_pairs)]


def env_text(value: object) -> str:
    """A value as an operator writes it in its variable (the inverse of the parsers above)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return value.as_posix() if value.is_absolute() else f"./{value.as_posix()}"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return ",".join(f"{name}={item}" for name, item in value.items())
    return str(value)
