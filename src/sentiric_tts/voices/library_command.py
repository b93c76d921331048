"""`sentiric-tts library copy`: move an embedded voice library (folders and SQLite) into the
PostgreSQL library that servers share through TTS_LIBRARY_URL (docs/cluster.md).

    sentiric-tts library copy --to postgresql://user:password@host:5432/db [--from DIR]
                              [--cache-from DIR] [--dry-run] [--replace]

Exit status: 0 when every voice is in the database (copied now or found there), 1 when any voice
failed or conflicts, 2 when nothing could be tried (a bad URL, a database that cannot be reached,
no library at the source). Errors are one line and never show the URL's password.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from sentiric_tts.voices.embedded_reader import EmbeddedLibrary, SourceError
from sentiric_tts.voices.library_copy import CopyReport, EmptyTarget, TargetView, copy_cache, copy_voices
from sentiric_tts.voices.library_rules import LibraryUnavailable

if TYPE_CHECKING:
    from sentiric_tts.settings import Settings

_FIRST_VOICES_STEP = 1
_FIRST_CACHE_STEP = 2
"""The migrations (postgres_migrations.py) that make the voices' and the latent cache's tables:
a dry run on a database that lacks them reads it as empty, since it may not create them."""


class CommandError(Exception):
    """What stops the command before any voice is tried; one line for the user."""


def _secrets(url: str) -> set[str]:
    """The URL's password in every spelling an error could quote it in."""
    found = {url}
    try:
        raw = urllib.parse.urlsplit(url).password
    except ValueError:
        raw = None
    if raw:
        found |= {raw, urllib.parse.unquote(raw)}
    return {secret for secret in found if secret}


def _one_line(text: str, url: str) -> str:
    line = " ".join(text.split())
    for secret in sorted(_secrets(url), key=len, reverse=True):
        line = line.replace(secret, "***")
    return line


def _check_url(url: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    shape = "postgresql://user:password@host:port/database"
    if not url.startswith(("postgresql://", "postgres://")):
        raise CommandError(f"--to is not a PostgreSQL URL: it must look like {shape}")
    try:
        conninfo_to_dict(url)
    except Exception:  # the driver's text quotes the URL, password and all
        raise CommandError(f"--to is not a URL PostgreSQL can read: it must look like {shape}") from None


def _copy(settings: Settings, args: argparse.Namespace) -> int:
    url = args.to or settings.voices.library_url
    if url is None:
        raise CommandError(
            "say where to copy: --to postgresql://user:password@host:port/database (or TTS_LIBRARY_URL)"
        )
    try:  # the driver is an extra: only servers that share a library need it
        from sentiric_tts.voices.postgres_db import Database
        from sentiric_tts.voices.postgres_latents import PostgresShelf
        from sentiric_tts.voices.postgres_store import PostgresLibraryStore
    except ImportError:
        raise CommandError(
            "copying into PostgreSQL needs its driver: pip install 'sentiric-tts[postgres]'"
        ) from None
    _check_url(url)
    source_dir: Path = args.source or settings.paths.voice_library_dir
    # The latent cache of the same server: with --from, another machine's, so only when named.
    cache_dir: Path | None = args.cache_from or (settings.paths.latents_dir if args.source is None else None)
    try:
        source = EmbeddedLibrary(source_dir)
    except SourceError as exc:
        raise CommandError(str(exc)) from None

    db = Database(url)
    try:
        try:
            steps = db.open(dry_run=args.dry_run)
        except RuntimeError as exc:
            raise CommandError(_one_line(str(exc), url)) from None
        # Migrations first, as a server's start applies them; a dry run only says which.
        if args.dry_run:
            told = (
                f"migration(s) {', '.join(map(str, steps))} would be applied" if steps else "schema current"
            )
        else:
            told = f"migration(s) {', '.join(map(str, steps))} applied" if steps else "schema current"
        print(f"Copying the voice library {source_dir} into {db.where} ({told})", flush=True)
        if args.dry_run:
            print("Dry run: nothing is written.", flush=True)
        pending = steps if args.dry_run else []
        target: TargetView = (
            EmptyTarget()
            if _FIRST_VOICES_STEP in pending
            else PostgresLibraryStore(db, settings.voices.library_max_voices)
        )
        report = CopyReport()
        copy_voices(
            source,
            target,
            replace=args.replace,
            dry_run=args.dry_run,
            report=report,
            on_result=lambda result: print(result.line(args.dry_run), flush=True),
        )
        if cache_dir is not None and report.stopped is None:
            shelf = None if _FIRST_CACHE_STEP in pending else PostgresShelf(db)
            copy_cache(cache_dir, shelf, report, dry_run=args.dry_run)
    finally:
        db.close()
    if report.stopped:
        print(f"Stopped: {report.stopped}", flush=True)
    print(report.summary(args.dry_run), flush=True)
    return 0 if report.complete else 1


def library(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return _copy(settings, args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LibraryUnavailable:  # it went away after answering once: the log above says how
        print(
            "error: the voice library database stopped answering; run the command again once it is back",
            file=sys.stderr,
        )
        return 2


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("library", help="manage the voice library (copy it into PostgreSQL)")
    actions = parser.add_subparsers(dest="action", required=True)
    copy = actions.add_parser(
        "copy",
        help="copy every voice of an embedded library into a PostgreSQL library",
        description="Copy every voice of an embedded voice library (folders and SQLite) into the "
        "PostgreSQL library that servers share through TTS_LIBRARY_URL: owner, name, language, "
        "description, ids and times, clips, and computed latents. The source is only read. "
        "Running it again copies nothing twice.",
    )
    copy.add_argument(
        "--to",
        metavar="URL",
        help="the PostgreSQL library: postgresql://user:password@host:port/db (default: TTS_LIBRARY_URL)",
    )
    copy.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="DIR",
        help="the embedded library's folder (default: TTS_VOICE_LIBRARY_DIR, i.e. <TTS_DATA_DIR>/voices)",
    )
    copy.add_argument(
        "--cache-from",
        type=Path,
        metavar="DIR",
        help="a latent cache folder to copy too (default: TTS_LATENTS_DIR's when --from is not given)",
    )
    copy.add_argument("--dry-run", action="store_true", help="say what would be copied; write nothing")
    copy.add_argument(
        "--replace",
        action="store_true",
        help="overwrite a voice in the database that has the same id, or owner and name, but other clips",
    )
    copy.set_defaults(handler=library)
