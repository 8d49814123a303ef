"""`python -m lineagedb.track flush|pending`: the same as `lineagedb track ...`, without
importing the server (a client-only installation has no database drivers)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lineagedb.ops.track_cli import add_subcommands, run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lineagedb.track", description="lineagedb.track's journal")
    add_subcommands(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
