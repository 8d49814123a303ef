"""What the audit log costs: the same workload against LineageDB with the audit log off and on.

Two servers on two fresh databases of one backend, authentication off on both, loaded
through the same calls; the second has an audit key, so every write transaction appends
its record (and node index rows, and its chain's head) before it commits. Reads are
audited only when refused (the default), so they should not move. Operations alternate
between the servers rep by rep; the figure is the median of per-rep ratios on / off.

    .venv/bin/python bench/audit_overhead.py [--backends sqlite,postgresql] [--reps 30] [--calls 5]
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness
from auth_overhead import Target, common_arguments, compare, run_backends


def bench_backend(backend: str, reps: int, calls: int, batches: int, chain: int, workdir: Path) -> dict[str, Any]:
    key_file = workdir / "audit.key"
    key_file.write_bytes(b"bench-audit-key-" * 4)
    with ExitStack() as stack:
        off_url = stack.enter_context(harness.scratch_database(backend, workdir))
        on_url = stack.enter_context(harness.scratch_database(backend, workdir))
        base = [str(harness.LINEAGEDB), "serve", "--host", "127.0.0.1", "--port", "0"]
        off_server = stack.enter_context(harness.running([*base, "--database", off_url], workdir / "off.log"))
        on_command = [*base, "--database", on_url, "--audit-key-file", str(key_file)]
        on_server = stack.enter_context(harness.running(on_command, workdir / "on.log"))
        off = Target(off_server.port, [], {"anyone": []})
        on = Target(on_server.port, [], {"anyone": []})
        off.load([], batches, chain)
        on.load([], batches, chain)
        results = compare(off, on, reps, calls, ("anyone",))
        off.channel.close()
        on.channel.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_arguments(parser, "audit_results.json")
    args = parser.parse_args(argv)

    def bench(backend: str, workdir: Path) -> dict[str, Any]:
        return bench_backend(backend, args.reps, args.calls, args.batches, args.chain, workdir)

    run_backends("audit overhead", args, bench, "Audit log: on ÷ off")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
