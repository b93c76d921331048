"""`sentiric-tts cluster ...`: deploy the shipped Serve config onto a running Ray cluster.

Thin wrappers over Ray's own `serve` command (the same flags work there), so that the one
documented command needs no path into the installed package."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

CONFIG = Path(__file__).with_name("serve.yaml")


def _serve_command() -> list[str]:
    found = shutil.which("serve") or str(Path(sys.executable).with_name("serve"))
    if not Path(found).exists():
        raise SystemExit("Ray Serve is not installed: pip install 'sentiric-tts[cluster]'")
    return [found]


def cluster(args: argparse.Namespace) -> int:
    if args.action == "config":
        print(CONFIG)
        return 0
    config = str(args.config or CONFIG)
    if args.action == "deploy":  # through the dashboard's REST API (default http://localhost:8265)
        command = [*_serve_command(), "deploy", config]
        if args.address:
            command += ["--address", args.address]
    else:  # run: connects as a Ray driver (RAY_ADDRESS, --address or a new local Ray)
        command = [*_serve_command(), "run", config, "--non-blocking" if not args.blocking else "--blocking"]
        if args.address:
            command += ["--address", args.address]
    return subprocess.call(command)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("cluster", help="deploy the service onto a Ray Serve cluster")
    parser.add_argument(
        "action",
        choices=("deploy", "run", "config"),
        help="deploy: serve deploy (via the dashboard); run: serve run; config: print the shipped config's path",
    )
    parser.add_argument(
        "--config", type=Path, help=f"Serve config file (default: {CONFIG.name} shipped here)"
    )
    parser.add_argument("--address", help="Ray dashboard URL (deploy) or Ray address (run)")
    parser.add_argument("--blocking", action="store_true", help="run: stay in the foreground")
    parser.set_defaults(handler=lambda _settings, args: cluster(args))
