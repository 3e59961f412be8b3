"""`gateway` command line: serve, dev."""
from __future__ import annotations

import argparse
import sys

from gateway.config import ConfigError, load_settings


def _serve(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"gateway: refusing to start: {exc}", file=sys.stderr)
        return 2
    workers = args.workers or settings.server.workers
    if workers > 1 and not args.worker:
        from gateway.server import serve_workers

        return serve_workers(args.config, workers)
    configure_logging(settings.logging.level)
    from gateway.server import serve

    serve(settings, reuse_port=args.worker)
    return 0


def _dev(args: argparse.Namespace) -> int:
    from gateway.devmode import run_dev

    return run_dev(host=args.host, port=args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="reasoning-gateway: an inspecting LLM proxy")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway (production mode)")
    serve.add_argument("--config", help="YAML configuration file (GATEWAY_* env vars override it)")
    serve.add_argument("--workers", type=int, help="worker processes sharing the port (overrides server.workers)")
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=_serve)

    dev = sub.add_parser("dev", help="everything local for a first look: gateway, dev IdP, demo backend")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8080)
    dev.set_defaults(func=_dev)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
