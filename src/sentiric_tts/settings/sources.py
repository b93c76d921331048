"""Reading the flat `TTS_*` variables into grouped settings.

Operators set one flat variable per setting (`TTS_GRPC_PORT`); code reads it in its group
(`settings.grpc.port`). The sources here read every flat variable, from the environment and from
`.env`, as pydantic-settings reads a flat settings class: as text, each field's own validation
parsing it (lists included). `route_flat_names` then moves each value into its group, which also
lets code and tests build settings from flat keywords (`Settings(grpc_port=1)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, create_model
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from sentiric_tts.settings.fields import SettingsGroup

Groups = Mapping[str, type[SettingsGroup]]


class _FlatVariables(BaseSettings):
    # Not "forbid": the .env source would refuse a file holding other TTS_ variables.
    model_config = SettingsConfigDict(extra="ignore")


class _DotEnvSettingsOnly(DotEnvSettingsSource):
    """A `.env` file may hold variables with the prefix that name no setting: they are left alone,
    as in the environment (the settings themselves refuse unknown names given in code)."""

    def __call__(self) -> dict[str, Any]:
        return {
            name: value
            for name, value in super().__call__().items()
            if name in self.settings_cls.model_fields
        }


def flat_names(groups: Groups) -> dict[str, tuple[str, str]]:
    """Flat name -> (group, field) for every setting."""
    names: dict[str, tuple[str, str]] = {}
    for group_name, group in groups.items():
        for flat, field in group.flat_names().items():
            if flat in names or flat in groups:
                raise ValueError(f"two settings are named {flat!r}")
            names[flat] = (group_name, field)
    return names


def variables_model(names: Mapping[str, tuple[str, str]]) -> type[BaseSettings]:
    """A flat settings class of one optional text field per flat name, for the sources to read."""
    fields: dict[str, Any] = {name: (str | None, None) for name in names}
    return create_model("FlatVariables", __base__=_FlatVariables, **fields)


def flat_sources(
    variables: type[BaseSettings], env: PydanticBaseSettingsSource, dotenv: PydanticBaseSettingsSource
) -> tuple[PydanticBaseSettingsSource, ...]:
    """The environment and `.env` sources, configured like `env` and `dotenv` (prefix, case,
    the `.env` file a caller chose), reading the flat `variables` instead of the groups."""
    assert isinstance(env, EnvSettingsSource) and isinstance(dotenv, DotEnvSettingsSource)
    return (
        EnvSettingsSource(variables, case_sensitive=env.case_sensitive, env_prefix=env.env_prefix),
        _DotEnvSettingsOnly(
            variables,
            env_file=dotenv.env_file,
            env_file_encoding=dotenv.env_file_encoding,
            case_sensitive=dotenv.case_sensitive,
            env_prefix=dotenv.env_prefix,
        ),
    )


def _group_input(group: type[SettingsGroup], value: Any) -> Any:
    if isinstance(value, BaseModel):
        return group.by_field_name(value.model_dump(exclude_unset=True))
    if isinstance(value, Mapping):
        return group.by_field_name(value)
    return value  # not a group: its validation says so


def route_flat_names(
    data: Mapping[str, Any], groups: Groups, names: Mapping[str, tuple[str, str]]
) -> dict[str, Any]:
    """`data` with every flat name moved into its group. A value given in its group wins over
    the same setting given by its flat name (an explicit group over the environment)."""
    routed: dict[str, Any] = {}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in groups:
            routed[key] = _group_input(groups[key], value)
        elif key.lower() in names:
            flat[key.lower()] = value
        else:
            routed[key] = value
    for name, value in flat.items():
        group, field = names[name]
        given = routed.setdefault(group, {})
        if isinstance(given, dict):
            given.setdefault(field, value)
    return routed
