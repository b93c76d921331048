"""The step every door takes first (doors/admission.py), on a real runtime with the fake engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentiric_tts.doors.admission import Caller, admit, identify
from sentiric_tts.failures import NotReady, ShuttingDown, Unauthorized
from tests.support.fake_runtime import fake_runtime


def test_an_open_service_names_callers_by_address_and_admits_them(tmp_path: Path) -> None:
    with fake_runtime(tmp_path) as (runtime, _):
        caller = admit(runtime, None, "10.0.0.7", "websocket")
        assert caller == Caller("addr:10.0.0.7", "10.0.0.7", "websocket")


def test_with_keys_a_caller_is_its_key_and_a_wrong_key_is_refused_first(tmp_path: Path) -> None:
    with fake_runtime(tmp_path, api_keys="k-one,k-two") as (runtime, _):
        one = admit(runtime, "k-one", "10.0.0.7", "grpc")
        assert (
            one.client.startswith("key:") and one.client != admit(runtime, "k-two", "10.0.0.7", "grpc").client
        )
        assert identify(runtime, "k-one", "10.0.0.8", "http").client == one.client  # the key, not the address
        runtime.begin_shutdown()
        for key in (None, "wrong"):
            with pytest.raises(Unauthorized):  # who calls is settled before whether work is taken
                admit(runtime, key, "10.0.0.7", "grpc")


def test_no_new_work_while_draining_or_before_ready(tmp_path: Path) -> None:
    with fake_runtime(tmp_path) as (runtime, _):
        runtime.begin_shutdown()
        with pytest.raises(ShuttingDown) as refused:
            admit(runtime, None, "10.0.0.7", "websocket")
        assert refused.value.retry_after_s == runtime.settings.admission.retry_after_seconds
        assert identify(runtime, None, "10.0.0.7", "http").client == "addr:10.0.0.7"  # listings go on
    with pytest.raises(NotReady):
        admit(None, None, "10.0.0.7", "grpc")  # the runtime is still being built
