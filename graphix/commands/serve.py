"""``graphix serve``: the HTTP API and playground over a folder of SQLite databases."""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

HELP = "serve an HTTP API and a browser playground over a folder of SQLite databases"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db-dir", type=Path, required=True,
                        help="folder of SQLite files (*.sqlite, *.db) or of Spider's "
                             "<db_id>/<db_id>.sqlite; only these databases can be queried")
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    parser.add_argument("--max-batch-size", type=int, default=8,
                        help="questions that go through the model together (default: 8)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0,
                        help="how long a question waits for others to batch with, in "
                             "milliseconds (default: 5)")
    parser.add_argument("--max-rows", type=int, default=100,
                        help="rows returned per question (default: 100)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="time limit of one generated query in seconds (default: 5)")


def run(args: argparse.Namespace) -> int:
    import logging
    import math

    from graphix.errors import GraphixError, InputError

    try:
        import uvicorn

        from graphix.server.app import ServerConfig, create_app
        from graphix.server.batching import BatchingConfig
    except ImportError as error:
        raise GraphixError(f"graphix serve needs FastAPI and uvicorn ({error}); install them "
                           "with: pip install 'graphix[serve]'") from None

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be between 0 and 65535, got {args.port}")
    for flag, value in (("--max-batch-size", args.max_batch_size), ("--max-rows", args.max_rows)):
        if value < 1:
            raise InputError(f"{flag} must be at least 1, got {value}")
    if args.max_wait_ms < 0:
        raise InputError(f"--max-wait-ms must not be negative, got {args.max_wait_ms}")
    if not math.isfinite(args.timeout) or args.timeout <= 0:
        raise InputError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if not math.isfinite(args.max_wait_ms):
        raise InputError(f"--max-wait-ms must be a finite number, got {args.max_wait_ms}")

    config = ServerConfig(max_rows=args.max_rows, timeout_s=args.timeout,
                          batching=BatchingConfig(max_batch_size=args.max_batch_size,
                                                  max_wait_ms=args.max_wait_ms))
    app = create_app(args.db_dir, args.model, config=config)
    if not _is_loopback(args.host):
        logging.getLogger(__name__).warning(
            "listening on %s: the API has no authentication, so anyone who can reach this "
            "address can query the databases in %s", args.host, args.db_dir)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None)
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
