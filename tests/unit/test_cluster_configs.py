"""The shipped Serve configs (cluster/serve.yaml, deploy/kuberay.yaml) are valid for Serve and
let a replica being replaced finish its work (docs/cluster.md, rolling updates)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

schema = pytest.importorskip("ray.serve.schema", reason="Ray Serve is not installed (the cluster extra)")

from sentiric_tts.cluster.command import CONFIG  # noqa: E402
from sentiric_tts.settings import Settings  # noqa: E402

KUBERAY = Path(__file__).resolve().parents[2] / "deploy" / "kuberay.yaml"


def configs() -> dict[str, dict[str, Any]]:
    kuberay = yaml.safe_load(KUBERAY.read_text())["spec"]["serveConfigV2"]
    return {"serve.yaml": yaml.safe_load(CONFIG.read_text()), "kuberay.yaml": yaml.safe_load(kuberay)}


@pytest.mark.parametrize("name", ["serve.yaml", "kuberay.yaml"])
def test_shipped_configs_are_valid_serve_configs_with_graceful_shutdowns(name: str) -> None:
    config = configs()[name]
    schema.ServeDeploySchema.model_validate(config)
    deployments = {d["name"]: d for d in config["applications"][0]["deployments"]}
    assert set(deployments) == {"Ingress", "Engine"}
    # The ingress's lifespan drains gRPC and Wyoming calls for TTS_SHUTDOWN_GRACE_SECONDS after
    # Serve's own drain: its timeout must leave room for that, or Serve kills it mid-drain.
    grace_s = Settings().server.shutdown_grace_seconds
    assert deployments["Ingress"]["graceful_shutdown_timeout_s"] > grace_s
    for deployment in deployments.values():
        assert deployment["graceful_shutdown_wait_loop_s"] <= 2  # Serve's default, or sooner
        assert deployment["graceful_shutdown_timeout_s"] >= 60
