"""`carelens` command line: serve, migrate, createadmin, analyze, digitize (see CONTRACT.md)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path

from backend.settings import Settings, get_settings

EXIT_UNUSABLE = 2


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from backend.tables.db import run_migrations

    asyncio.run(run_migrations(settings))
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    cmd_migrate(settings, args)
    uvicorn.run(
        "backend.app:asgi_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers,
        proxy_headers=False,  # X-Forwarded-For is handled with CARELENS_TRUSTED_PROXIES
        log_level="info",
    )
    return 0


def cmd_createadmin(settings: Settings, args: argparse.Namespace) -> int:
    from backend.services import accounts
    from backend.services.errors import ServiceError
    from backend.tables.accounts import User
    from backend.tables.db import configure_database, run_migrations

    if sys.stdin.isatty():
        password = getpass.getpass("Password (12+ characters): ")
    else:
        password = sys.stdin.readline().rstrip("\n")

    async def create() -> int:
        await run_migrations(settings)
        engine = configure_database(settings)
        if settings.is_postgres:
            await engine.start_connection_pool()
        try:
            email = accounts.normalise_email(args.email)
            existing = await User.objects().where(User.email == email).first()
            if existing:
                accounts.validate_password(password)
                existing.is_admin = True
                existing.password_hash = accounts.hash_password(password)
                await existing.save()
                print(f"{email} is now an administrator (password updated).")
            else:
                await accounts.register_user(email, password, args.name or "", is_admin=True)
                print(f"Administrator {email} created.")
            return 0
        except ServiceError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        finally:
            if settings.is_postgres:
                await engine.close_connection_pool()

    return asyncio.run(create())


def _analyze_one(kind: str, path: Path, registry) -> dict:
    from backend.inference.dispatch import analyze_files, files_for_path

    return analyze_files(kind, files_for_path(path), registry)


def cmd_analyze(settings: Settings, args: argparse.Namespace) -> int:
    from backend.inference.errors import ModelIntegrityError, UnusableInputError
    from backend.inference.registry import ModelRegistry

    registry = ModelRegistry(settings.weights_dir, settings.inference_threads)
    batch = len(args.files) > 1
    failures = 0
    for name in args.files:
        path = Path(name)
        try:
            result = _analyze_one(args.kind, path, registry)
            ok = True
        except UnusableInputError as exc:
            result, ok = exc.to_json(), False
        except ModelIntegrityError as exc:
            print(json.dumps({"error": f"model unavailable: {exc}"}), file=sys.stderr)
            return 1
        failures += 0 if ok else 1
        if batch:
            result = {"file": name, **result}
        if args.json:
            print(json.dumps(result, ensure_ascii=False, separators=(",", ":")), flush=True)
        else:
            _print_human(name, result)
    if batch:
        return EXIT_UNUSABLE if failures == len(args.files) else 0
    return EXIT_UNUSABLE if failures else 0


def _print_human(name: str, result: dict) -> None:
    if "error" in result:
        print(f"{name}: {result['error']}")
        return
    print(f"{name}: {result['label']} (confidence {result['confidence']:.0%}, urgency {result['urgency']})")
    intervals = result.get("intervals")
    if intervals:
        print("  " + ", ".join(f"{k}={v}" for k, v in intervals.items()))
    print(f"  {result['explanation']}")
    print(f"  {result['disclaimer']}")


def cmd_digitize(settings: Settings, args: argparse.Namespace) -> int:
    from backend.inference.dispatch import digitize_print
    from backend.inference.ecg.digitize import write_wfdb
    from backend.inference.errors import UnusableInputError

    photo = Path(args.photo)
    try:
        if not photo.exists():
            raise UnusableInputError(f"File not found: {photo}")
        record = digitize_print(photo.read_bytes())
    except UnusableInputError as exc:
        print(json.dumps(exc.to_json(), ensure_ascii=False))
        return EXIT_UNUSABLE
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(write_wfdb(record, out_dir, photo.stem))
    return 0


def cmd_import_places(settings: Settings, args: argparse.Namespace) -> int:
    import contextlib

    from backend.services.errors import ServiceError
    from backend.services.places import import_places
    from backend.tables.db import configure_database, run_migrations

    show = sys.stderr.isatty() or args.progress
    last = [-1]

    def progress(done: int, total: int) -> None:
        percent = int(100 * done / total) if total else 100
        if show and percent != last[0]:
            last[0] = percent
            bar = "#" * (percent // 4)
            print(f"\rimporting [{bar:<25}] {percent:3d}%", end="", file=sys.stderr, flush=True)

    async def run() -> int:
        # Migration chatter goes to stderr: stdout carries only the JSON report.
        with contextlib.redirect_stdout(sys.stderr):
            await run_migrations(settings)
        engine = configure_database(settings)
        if settings.is_postgres:
            await engine.start_connection_pool()
        try:
            report = await import_places(Path(args.file), source=args.source,
                                         replace=args.replace, progress=progress)
        except ServiceError as exc:
            print(json.dumps({"error": exc.message}, ensure_ascii=False))
            return EXIT_UNUSABLE
        finally:
            if settings.is_postgres:
                await engine.close_connection_pool()
        if show:
            print(file=sys.stderr)
        print(json.dumps({"imported": report.imported, "skipped": report.skipped,
                          "format": report.format}))
        return 0

    return asyncio.run(run())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carelens", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate, then serve the app")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=int(os.environ.get("CARELENS_WORKERS", "1")),
                       help="uvicorn worker processes (env CARELENS_WORKERS)")
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    admin = sub.add_parser("createadmin", help="create an administrator (password on stdin)")
    admin.add_argument("email")
    admin.add_argument("--name", default="")
    admin.set_defaults(func=cmd_createadmin)

    analyze = sub.add_parser("analyze", help="analyse files without a server")
    analyze.add_argument("kind", choices=["ecg", "skin", "ear"])
    analyze.add_argument("files", nargs="+", metavar="FILE")
    analyze.add_argument("--json", action="store_true", help="print the result JSON")
    analyze.set_defaults(func=cmd_analyze)

    digitize = sub.add_parser("digitize", help="ECG photo (or ECG print saved as PDF) -> WFDB record")
    digitize.add_argument("photo", metavar="PHOTO", help="a photo or a PDF of the printed ECG")
    digitize.add_argument("--out", required=True, metavar="DIR")
    digitize.set_defaults(func=cmd_digitize)

    places = sub.add_parser("import-places", help="import hospitals/pharmacies (OSM GeoJSON/CSV, "
                            "Korean public data CSV)")
    places.add_argument("file", metavar="FILE")
    places.add_argument("--source", default="", help="source tag (default: the file name)")
    places.add_argument("--replace", action="store_true", help="first delete rows of that source")
    places.add_argument("--progress", action="store_true", help="progress bar even without a tty")
    places.set_defaults(func=cmd_import_places)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(get_settings(), args) or 0)


if __name__ == "__main__":
    sys.exit(main())
