"""Who may call the service: API keys, and which browser origins and Host names are answered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentiric_tts.settings.fields import CommaSeparated, SettingsGroup, setting

if TYPE_CHECKING:
    from sentiric_tts.callers import ApiKeys


class SecuritySettings(SettingsGroup):
    title = "Keys and cross-origin requests"

    api_keys: CommaSeparated = setting(
        (),
        env="TTS_API_KEYS",
        description="Comma-separated API keys; empty leaves the API open. Sent as "
        "'Authorization: Bearer KEY' or 'X-API-Key: KEY'.",
    )
    admin_api_keys: CommaSeparated = setting(
        (),
        env="TTS_ADMIN_API_KEYS",
        description="Comma-separated API keys that also see, use and manage every library voice, "
        "whoever created it (other keys see only their own); each is a valid API key too.",
    )
    metrics_require_auth: bool = setting(
        False, env="TTS_METRICS_REQUIRE_AUTH", description="Require an API key for GET /metrics too."
    )
    cors_origins: CommaSeparated = setting(
        (),
        env="TTS_CORS_ORIGINS",
        description="Comma-separated origins allowed cross-origin ('*' for any); empty: none.",
    )
    allowed_hosts: CommaSeparated = setting(
        (),
        env="TTS_ALLOWED_HOSTS",
        description="Without API keys, the service answers only requests whose Host is an IP "
        "address, localhost, this machine's host names or the bind address (a DNS-rebinding "
        "guard: 421 otherwise). Comma-separated further names ('*.example.com' for subdomains), "
        "or '*' for any.",
    )

    @property
    def keys_required(self) -> bool:
        """Whether callers must present a key (an admin key is an API key too)."""
        return bool(self.api_keys or self.admin_api_keys)

    def key_set(self) -> ApiKeys:
        from sentiric_tts.callers import ApiKeys  # when called: see audio.py

        return ApiKeys(self.api_keys, self.admin_api_keys)
