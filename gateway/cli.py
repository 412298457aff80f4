"""The ``idea24`` command: serve, simulator, phone, db."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="idea24",
        description="Self-care over SMS and USSD for postpaid subscribers (SMPP 3.4).",
    )
    parser.add_argument("--version", action="version", version=f"idea24 {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server (bundled simulator when no SMSC is set)")
    serve.add_argument("--smsc", action="append", metavar="URL", help="smpp://ID:PASSWORD@HOST:PORT (repeatable)")
    serve.add_argument("--http", metavar="HOST:PORT", help="HTTP listen address (default 127.0.0.1:8024)")
    serve.add_argument("--database-url", metavar="URL")
    serve.add_argument("--redis-url", metavar="URL")
    serve.add_argument("--config", metavar="FILE", help="TOML file with settings")

    sim = sub.add_parser("simulator", help="run the SMSC simulator alone")
    sim.add_argument("--account", action="append", metavar="ID:PASSWORD")
    sim.add_argument("--smpp", metavar="HOST:PORT", default="127.0.0.1:2775")
    sim.add_argument("--http", metavar="HOST:PORT", default="127.0.0.1:8025")

    phone = sub.add_parser("phone", help="terminal handset against the simulator")
    phone.add_argument("msisdn")
    phone.add_argument("--simulator", metavar="URL", default="http://127.0.0.1:8025")

    db = sub.add_parser("db", help="database migrations and seed data")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION")
    up = dbsub.add_parser("upgrade", help="apply migrations")
    up.add_argument("--database-url", metavar="URL")
    seed = dbsub.add_parser("seed", help="seed data")
    seed.add_argument("--demo", action="store_true", help="the demo subscribers")
    seed.add_argument("--subscribers", type=int, default=0, metavar="N")
    seed.add_argument("--database-url", metavar="URL")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    print(f"idea24 {args.command}: not yet available", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
