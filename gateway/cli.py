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
    from gateway.services import SharedStateError, check_shared_state

    try:
        check_shared_state(settings, workers)
    except SharedStateError as exc:
        print(f"gateway: refusing to start: {exc}", file=sys.stderr)
        return 2
    if workers > 1 and not args.worker:
        from gateway.server import serve_workers

        return serve_workers(args.config, workers)
    configure_logging(settings.logging.level)
    from gateway.app import PolicyStartupError
    from gateway.audit.service import AuditStartupError
    from gateway.server import serve

    try:
        serve(settings, reuse_port=args.worker)
    except PolicyStartupError as exc:
        print(f"gateway: refusing to start: invalid policy:\n{exc}", file=sys.stderr)
        return 2
    except AuditStartupError as exc:
        print(f"gateway: refusing to start: {exc}", file=sys.stderr)
        return 2
    return 0


def _policy_check(args: argparse.Namespace) -> int:
    from gateway.catalog import CatalogRegistry
    from gateway.policy.cli import check

    return check(args.path, CatalogRegistry())


def _policy_test(args: argparse.Namespace) -> int:
    from gateway.catalog import CatalogRegistry, PolicyMaskers
    from gateway.policy.cli import test

    key = args.hmac_key.encode() if args.hmac_key else None
    maskers = PolicyMaskers(hmac_key=key, max_hold_chars=8192, max_hold_s=5.0)

    def masker(policy, text: str, side: str) -> str:
        names = policy.masking.response if side == "response" else policy.masking.request
        return maskers.masker(policy, names).mask_text(text)[0]

    return test(args.path, args.policies, CatalogRegistry(), masker=masker)


def _dev(args: argparse.Namespace) -> int:
    from gateway.devmode import run_dev

    return run_dev(host=args.host, port=args.port)


def _audit_verify(args: argparse.Namespace) -> int:
    from gateway.audit import cli as audit_cli

    audit_cli.S3_OPTIONS.update(endpoint_url=args.s3_endpoint, region=args.s3_region)

    return audit_cli.verify(args.store, session=args.session, public_key_files=args.public_key,
                            anchor_file=args.anchor, out=sys.stdout, err=sys.stderr)


def _audit_export(args: argparse.Namespace) -> int:
    from gateway.audit import cli as audit_cli

    audit_cli.S3_OPTIONS.update(endpoint_url=args.s3_endpoint, region=args.s3_region)

    return audit_cli.export(args.store, args.session, args.output, public_key_files=args.public_key, err=sys.stderr)


def _replay(args: argparse.Namespace) -> int:
    from gateway.audit import cli as audit_cli

    audit_cli.S3_OPTIONS.update(endpoint_url=args.s3_endpoint, region=args.s3_region)

    return audit_cli.replay(args.store, args.session, speed=args.speed, fmt=args.format,
                            out=sys.stdout.buffer, err=sys.stderr)


def _s3_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--s3-endpoint", metavar="URL", help="S3-compatible endpoint (path-style addressing); "
                   "credentials come from the standard AWS environment variables or files")
    p.add_argument("--s3-region", metavar="REGION")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="reasoning-gateway: an inspecting LLM proxy")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway (production mode)")
    serve.add_argument("--config", help="YAML configuration file (GATEWAY_* env vars override it)")
    serve.add_argument("--workers", type=int, help="worker processes sharing the port (overrides server.workers)")
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=_serve)

    policy = sub.add_parser("policy", help="check policy files, run policy test cases")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    pcheck = policy_sub.add_parser("check", help="validate policy files (errors as file:line)")
    pcheck.add_argument("path", help="a policy file or a directory of *.yaml files")
    pcheck.set_defaults(func=_policy_check)
    ptest = policy_sub.add_parser("test", help="run YAML test cases against the policy")
    ptest.add_argument("path", help="test cases file")
    ptest.add_argument("--policies", default="policies", help="policy file or directory (default: ./policies)")
    ptest.add_argument("--hmac-key", help="key for the keyed_hash masking style, if the policy uses it")
    ptest.set_defaults(func=_policy_test)

    audit = sub.add_parser("audit", help="verify the audit log, export evidence bundles")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    averify = audit_sub.add_parser("verify", help="check hashes, chains and signed digests")
    averify.add_argument("--store", required=True, help="file://DIR, s3://BUCKET/PREFIX, bundle://FILE or FILE.tar")
    averify.add_argument("--session", help="verify only this session's records")
    averify.add_argument("--public-key", action="append", default=[], metavar="FILE")
    averify.add_argument("--anchor", metavar="FILE", help="latest digest(s) held outside the store")
    _s3_flags(averify)
    averify.set_defaults(func=_audit_verify)
    aexport = audit_sub.add_parser("export", help="write a session's evidence bundle (tar)")
    aexport.add_argument("--store", required=True)
    aexport.add_argument("session", metavar="SESSION")
    aexport.add_argument("-o", "--output", required=True, metavar="FILE")
    aexport.add_argument("--public-key", action="append", default=[], metavar="FILE")
    _s3_flags(aexport)
    aexport.set_defaults(func=_audit_export)
    replay = sub.add_parser("replay", help="replay a session's masked responses")
    replay.add_argument("--store", required=True)
    replay.add_argument("session", metavar="SESSION")
    replay.add_argument("--speed", type=float, default=1.0, help="1 = original timing, 0 = no delays")
    replay.add_argument("--format", choices=("sse", "json", "text"), default="sse")
    _s3_flags(replay)
    replay.set_defaults(func=_replay)

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
