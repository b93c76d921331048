"""First-run download of the XTTS v2 weights, only when the operator allows it and has agreed to
the Coqui Public Model License. Progress goes to the log; files land atomically (a `.part` file
renamed when complete), so an interrupted download never looks like weights."""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)

XTTS_FILES = ("config.json", "model.pth", "vocab.json", "speakers_xtts.pth")
CPML_URL = "https://coqui.ai/cpml"
_CHUNK = 1 << 20


def missing_files(model_dir: Path) -> list[str]:
    """The XTTS v2 files `model_dir` lacks (kept here, free of torch, so engine choice is cheap)."""
    return [name for name in XTTS_FILES if not (Path(model_dir) / name).is_file()]


def weights_present(model_dir: Path) -> bool:
    """True when `model_dir` holds config.json, model.pth, vocab.json and speakers_xtts.pth."""
    return not missing_files(model_dir)


class DownloadFailed(RuntimeError):
    pass


def _fetch(url: str, target: Path, timeout_s: float) -> None:
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, partial.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            next_report = 0.0
            last_log = time.monotonic()
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                fraction = done / total if total else 0.0
                if total and (fraction >= next_report or time.monotonic() - last_log > 10):
                    log.info("Downloading %s: %d%% of %.1f MB", target.name, fraction * 100, total / 1e6)
                    next_report = fraction + 0.1
                    last_log = time.monotonic()
        if total and done != total:
            raise DownloadFailed(f"{target.name}: got {done} of {total} bytes")
        partial.replace(target)
        log.info("Downloaded %s (%.1f MB)", target.name, done / 1e6)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise DownloadFailed(f"{url}: {exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def download_xtts_weights(base_url: str, model_dir: Path, timeout_s: float = 60.0) -> None:
    """Fetch every missing XTTS v2 file from `base_url` into `model_dir`."""
    model_dir.mkdir(parents=True, exist_ok=True)
    for name in XTTS_FILES:
        target = model_dir / name
        if target.is_file():
            continue
        log.info("Downloading XTTS v2 file %s from %s", name, base_url)
        _fetch(f"{base_url.rstrip('/')}/{name}", target, timeout_s)
    log.info("XTTS v2 weights are in %s", model_dir.resolve())
