"""The `lineagedb` command's entry point, usable from a client-only install.

`pip install lineagedb` brings the client without SQLAlchemy and the database drivers;
the commands need them. Without them the command says what to install instead of
ending in an ImportError traceback.
"""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from lineagedb.cli import main as cli_main
    except ImportError as error:
        missing = getattr(error, "name", None) or str(error)
        print(
            f"lineagedb: this command needs the server's dependencies ({missing} is missing): "
            "pip install 'lineagedb[server]'",
            file=sys.stderr,
        )
        return 2
    return cli_main()
