"""The `openasr` command: serve, transcribe, stream, train, evaluate, bench. Each subcommand is thin over the
config objects it drives."""

from __future__ import annotations

import argparse
import logging
import sys


def serve(args: argparse.Namespace) -> None:
    from service.server import run
    from service.settings import Settings

    overrides = {k: v for k, v in {"host": args.host, "port": args.port, "checkpoint": args.checkpoint}.items() if v is not None}
    settings = Settings(**overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openasr", description="Multi-locale streaming speech recognition.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the model over HTTP and WebSocket",
                                       epilog="example: openasr serve --port 8000   (or ASR_PORT=8000 openasr serve)")
    serve_parser.add_argument("--host")
    serve_parser.add_argument("--port", type=int)
    serve_parser.add_argument("--checkpoint")
    serve_parser.set_defaults(handler=serve)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    args.handler(args)


if __name__ == "__main__":
    main()
