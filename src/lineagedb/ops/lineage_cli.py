"""`lineagedb lineage ...`: the LineageService's answers from the command line.

    lineagedb lineage upstream artifact:7 --target HOST:PORT [--format table|json|dot|mermaid|html]
    lineagedb lineage downstream artifact:1 --type Model --state LIVE
    lineagedb lineage diff context:2 context:9 --upstream
    lineagedb lineage manifest artifact:7 --output model.manifest.json
    lineagedb lineage manifest verify model.manifest.json
    lineagedb lineage completeness context:2
    lineagedb lineage report artifact:7 --format html --output report.html

Exit codes: 0 done; 1 `manifest verify` found changes; 2 a usage error or an error the
server answered with (`error: <STATUS>: <details>` on stderr); 3 the server could not be
reached. The bearer token is never printed, not even in errors.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import html
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.lineagedb.v1 import lineage_pb2_grpc as pb_grpc
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd

EXIT_OK = 0
EXIT_CHANGED = 1
EXIT_ERROR = 2
EXIT_UNREACHABLE = 3

TARGET_ENV = "LINEAGEDB_TARGET"
TOKEN_ENV = "LINEAGEDB_TOKEN"
NAMESPACE_ENV = "LINEAGEDB_NAMESPACE"
DEFAULT_TARGET = "localhost:8080"
DEFAULT_TIMEOUT_S = 60.0
# The server's own metadata key (lineagedb.api.auth.NAMESPACE_METADATA); spelled out
# because ops may not import the api layer's interceptor just for a string.
NAMESPACE_METADATA = "x-lineagedb-namespace"
# A 10,000-node closure with properties is larger than gRPC's 4 MiB default; the
# server's --max-send-message-bytes is the limit that matters.
MAX_RECEIVE_BYTES = 2**31 - 1
# How long to look at the channel after UNAVAILABLE to tell "never connected" from
# "the server answered UNAVAILABLE" (a READY channel reports at once).
READY_PROBE_S = 0.3
VALUE_WIDTH = 80

NODE_KINDS = ("artifact", "execution", "context")
GRAPH_FORMATS = ("table", "json", "dot", "mermaid", "html")
ARTIFACT_STATES = tuple(name for name, _ in mlmd.Artifact.State.items() if name != "UNKNOWN")


class CliError(Exception):
    """A failure reported as one line on stderr with this exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# ------------------------------------------------------------------------------ arguments


def parse_node(text: str) -> pb.NodeRef:
    """'artifact:7' -> NodeRef(artifact_id=7); argparse turns the error into a usage error."""
    kind, _, number = text.partition(":")
    if kind not in NODE_KINDS or not number.isdigit() or int(number) <= 0 or int(number) >= 2**63:
        raise argparse.ArgumentTypeError(
            f"a node is artifact:ID, execution:ID or context:ID with a positive ID, not {text!r}"
        )
    return pb.NodeRef(**{f"{kind}_id": int(number)})


def parse_artifact(text: str) -> int:
    node = parse_node(text)
    if node.WhichOneof("node") != "artifact_id":
        raise argparse.ArgumentTypeError(f"this command takes an artifact (artifact:ID), not {text!r}")
    return node.artifact_id


def parse_as_of(text: str) -> int:
    """An ISO-8601 date or time (UTC unless it says otherwise) or epoch milliseconds -> ms."""
    if text.isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--as-of is an ISO-8601 date or time (2026-01-31, 2026-01-31T12:00:00Z) or epoch milliseconds, "
            f"not {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    ms = int(moment.timestamp() * 1000)
    if ms <= 0:
        raise argparse.ArgumentTypeError(f"--as-of must be after 1970-01-01, not {text!r}")
    return ms


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _state(text: str) -> str:
    if text.upper() not in ARTIFACT_STATES:
        raise argparse.ArgumentTypeError(f"an artifact state is one of {', '.join(ARTIFACT_STATES)}, not {text!r}")
    return text.upper()


def _connection_parser() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument(
        "--target",
        default=os.environ.get(TARGET_ENV) or DEFAULT_TARGET,
        metavar="HOST:PORT",
        help=f"the LineageDB server [env {TARGET_ENV}; default {DEFAULT_TARGET}]",
    )
    group.add_argument(
        "--token", default=None, help=f"bearer token (prefer env {TOKEN_ENV} or --token-file: ps shows arguments)"
    )
    group.add_argument("--token-file", default=None, metavar="FILE", help="file holding the bearer token")
    group.add_argument(
        "--namespace",
        default=os.environ.get(NAMESPACE_ENV) or None,
        help=f"namespace to act in (metadata {NAMESPACE_METADATA}) [env {NAMESPACE_ENV}]",
    )
    group.add_argument("--tls-ca", default=None, metavar="FILE", help="CA certificate(s) that verify the server (PEM)")
    group.add_argument("--tls-cert", default=None, metavar="FILE", help="client certificate for mTLS (PEM)")
    group.add_argument("--tls-key", default=None, metavar="FILE", help="client private key for mTLS (PEM)")
    group.add_argument("--tls", action="store_true", help="use TLS with the system's CAs (implied by --tls-*)")
    group.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"deadline of the call (default {DEFAULT_TIMEOUT_S:g})",
    )
    return parent


def add_parser(sub: Any) -> None:
    """Register `lineage` and its subcommands on the top-level subparsers."""
    connection = _connection_parser()
    lineage = sub.add_parser(
        "lineage",
        help="lineage answers: upstream, downstream, diff, manifest, completeness, report",
        description="Ask a LineageDB server's LineageService. Nodes are written artifact:ID, execution:ID or "
        "context:ID (a context stands for all its artifacts and executions).",
    )
    commands = lineage.add_subparsers(dest="lineage_command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=text, description=text, parents=[connection])
        return parser

    def closure_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("node", type=parse_node, metavar="NODE", help="artifact:ID, execution:ID or context:ID")
        parser.add_argument("--format", choices=GRAPH_FORMATS, default="table")
        parser.add_argument(
            "--max-nodes", type=_positive_int, default=0, metavar="N", help="node budget (server default 10000)"
        )
        parser.add_argument(
            "--as-of", type=parse_as_of, default=0, metavar="TIME", help="ISO-8601 date/time or epoch milliseconds"
        )
        parser.add_argument("--output", metavar="FILE", help="write there instead of stdout")

    upstream = command("upstream", "provenance: everything a node came from")
    closure_options(upstream)
    upstream.add_argument(
        "--cluster-by",
        metavar="CONTEXT_TYPE",
        help="dot/mermaid: draw the contexts of this type (e.g. pipeline_run) as boxes around their nodes",
    )
    downstream = command("downstream", "impact: everything a node affects, grouped by type and state")
    closure_options(downstream)
    downstream.add_argument(
        "--type",
        action="append",
        default=[],
        dest="types",
        metavar="TYPE",
        help="only affected artifacts of this type (repeat)",
    )
    downstream.add_argument(
        "--state",
        action="append",
        default=[],
        dest="states",
        metavar="STATE",
        type=_state,
        help=f"only affected artifacts in this state (repeat): {', '.join(ARTIFACT_STATES)}",
    )

    diff = command("diff", "what differs between two executions or two runs (contexts)")
    diff.add_argument("a", type=parse_node, metavar="A")
    diff.add_argument("b", type=parse_node, metavar="B")
    diff.add_argument("--upstream", action="store_true", help="also compare their whole upstream closures")
    diff.add_argument("--format", choices=("table", "json"), default="table")

    manifest = command(
        "manifest",
        "reproducibility manifest: `manifest artifact:ID [--output FILE]` prints its canonical JSON; "
        "`manifest verify FILE` reports what changed in the store since FILE was written",
    )
    manifest.usage = (
        "lineagedb lineage manifest [options] artifact:ID [--output FILE]\n"
        "       lineagedb lineage manifest [options] verify FILE"
    )
    manifest.add_argument("words", nargs="+", metavar="artifact:ID | verify FILE", help=argparse.SUPPRESS)
    manifest.add_argument("--output", metavar="FILE", help="write the manifest to FILE (byte-exact: its SHA-256 holds)")
    manifest.add_argument(
        "--max-nodes", type=_positive_int, default=0, metavar="N", help="node budget (server default 10000)"
    )

    completeness = command("completeness", "gaps upstream that break reproducibility, and a score")
    completeness.add_argument("node", type=parse_node, metavar="NODE")
    completeness.add_argument("--format", choices=("table", "json"), default="table")
    completeness.add_argument(
        "--max-nodes", type=_positive_int, default=0, metavar="N", help="node budget (server default 10000)"
    )

    report = command("report", "compliance report of an artifact (a model) as JSON, HTML or PDF")
    report.add_argument("artifact", type=parse_artifact, metavar="artifact:ID")
    report.add_argument("--format", choices=("json", "html", "pdf"), default="json")
    report.add_argument("--output", metavar="FILE", help="write there instead of stdout")
    report.add_argument(
        "--max-nodes", type=_positive_int, default=0, metavar="N", help="node budget (server default 10000)"
    )
    report.add_argument(
        "--as-of", type=parse_as_of, default=0, metavar="TIME", help="ISO-8601 date/time or epoch milliseconds"
    )
    # `manifest` checks its words itself; keep its parser to report misuse the argparse way.
    manifest.set_defaults(_manifest_parser=manifest)


# ----------------------------------------------------------------------------- connection


@dataclass(frozen=True)
class Connection:
    target: str
    token: str | None = field(default=None, repr=False)
    namespace: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Connection:
        token = args.token
        if token is None and args.token_file:
            token = _read_text(args.token_file, "--token-file").strip()
        if token is None:
            token = os.environ.get(TOKEN_ENV) or None
        # A header value is visible ASCII; refusing others here keeps gRPC from raising
        # an error that quotes the value.
        if token is not None and not _header_safe(token):
            raise CliError("the bearer token is empty or has characters a header cannot carry")
        if args.namespace is not None and not _header_safe(args.namespace):
            raise CliError(f"--namespace {_printable(args.namespace)!r} is not a namespace name")
        if bool(args.tls_cert) != bool(args.tls_key):
            raise CliError("mTLS needs both --tls-cert and --tls-key")
        return cls(
            target=args.target,
            token=token,
            namespace=args.namespace,
            tls_ca=args.tls_ca,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls=bool(args.tls or args.tls_ca or args.tls_cert),
            timeout_s=args.timeout,
        )

    def metadata(self) -> list[tuple[str, str]]:
        md: list[tuple[str, str]] = []
        if self.token:
            md.append(("authorization", f"Bearer {self.token}"))
        if self.namespace:
            md.append((NAMESPACE_METADATA, self.namespace))
        return md

    def channel(self) -> grpc.Channel:
        options = [("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)]
        if not self.tls:
            return grpc.insecure_channel(self.target, options=options)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read_bytes(self.tls_ca, "--tls-ca") if self.tls_ca else None,
            private_key=_read_bytes(self.tls_key, "--tls-key") if self.tls_key else None,
            certificate_chain=_read_bytes(self.tls_cert, "--tls-cert") if self.tls_cert else None,
        )
        return grpc.secure_channel(self.target, credentials, options=options)

    def redact(self, text: str) -> str:
        """`text` without the token in it (servers should never echo it; this makes sure)."""
        return text.replace(self.token, "<token>") if self.token else text

    def call(self, method: str, request: Message) -> Any:
        """LineageService.`method`(request), or CliError with the status and exit code to show."""
        with self.channel() as channel:
            stub = pb_grpc.LineageServiceStub(channel)
            try:
                return getattr(stub, method)(request, metadata=self.metadata(), timeout=self.timeout_s)
            except grpc.RpcError as error:
                code: grpc.StatusCode = error.code()
                details = _one_line(self.redact(error.details() or ""))
                if code == grpc.StatusCode.UNAVAILABLE and not _connected(channel):
                    raise CliError(f"error: cannot reach {self.target}: {details}", EXIT_UNREACHABLE) from None
                raise CliError(f"error: {code.name}: {details}") from None


def _header_safe(value: str) -> bool:
    return bool(value) and all(33 <= ord(ch) <= 126 for ch in value)


def _connected(channel: grpc.Channel) -> bool:
    """Whether the channel has a live connection (after UNAVAILABLE: the server itself said so)."""
    try:
        grpc.channel_ready_future(channel).result(timeout=READY_PROBE_S)
    except grpc.FutureTimeoutError:
        return False
    return True


def _read_bytes(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise CliError(f"error: cannot read {what} {path}: {error.strerror}") from None


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise CliError(f"error: cannot read {what} {path}: {reason}") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------------------- commands


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run `lineagedb lineage <command>`; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        if args.lineage_command == "manifest":
            _check_manifest_words(args)
        connection = Connection.from_args(args)
        handler = COMMANDS[args.lineage_command]
        return handler(connection, args, out)
    except CliError as error:
        message = error.message if error.message.startswith("error: ") else f"error: {error.message}"
        print(message, file=err)
        return error.code


def _upstream(connection: Connection, args: argparse.Namespace, out: TextIO) -> int:
    request = pb.ClosureRequest(node=args.node, max_nodes=args.max_nodes, as_of_ms=args.as_of)
    response: pb.ClosureResponse = connection.call("Provenance", request)
    _emit(args, out, _graph_output(args, response, f"Provenance of {node_text(args.node)}", _closure_summary))
    return EXIT_OK


def _downstream(connection: Connection, args: argparse.Namespace, out: TextIO) -> int:
    request = pb.ImpactRequest(
        node=args.node,
        max_nodes=args.max_nodes,
        as_of_ms=args.as_of,
        artifact_types=args.types,
        artifact_states=args.states,
    )
    response: pb.ImpactResponse = connection.call("Impact", request)
    _emit(args, out, _graph_output(args, response, f"Impact of {node_text(args.node)}", _impact_summary))
    return EXIT_OK


def _diff(connection: Connection, args: argparse.Namespace, out: TextIO) -> int:
    response: pb.DiffResponse = connection.call("Diff", pb.DiffRequest(a=args.a, b=args.b, upstream=args.upstream))
    if args.format == "json":
        out.write(_json(response))
        return EXIT_OK
    rows = [
        (
            change.section,
            change.key,
            pb.Change.Kind.Name(change.kind),
            diff_value(change.before, change.fields),
            diff_value(change.after, change.fields),
            ",".join(change.fields),
        )
        for change in response.changes
    ]
    lines = table(("SECTION", "KEY", "CHANGE", "BEFORE", "AFTER", "FIELDS"), rows) if rows else []
    lines.append(f"changes: {len(response.changes)}")
    if args.upstream:
        lines.append(
            f"upstream compared: {response.upstream_executions_compared} executions, "
            f"{response.upstream_artifacts_compared} artifacts"
        )
        truncated = pb.Truncation.ValueType(getattr(response, "truncated", 0))
        if truncated:
            lines.append(f"truncated: {pb.Truncation.Name(truncated)} (the upstream comparison covers the part walked)")
    out.write("\n".join(lines) + "\n")
    return EXIT_OK


def _check_manifest_words(args: argparse.Namespace) -> None:
    parser: argparse.ArgumentParser = args._manifest_parser
    words: list[str] = args.words
    if words[0] == "verify":
        if len(words) != 2:
            parser.error("manifest verify takes one FILE")
        if args.output:
            parser.error("--output is for writing a manifest, not for verify")
        args.verify_file, args.artifact = words[1], None
        return
    if len(words) != 1:
        parser.error("manifest takes one artifact:ID (or: manifest verify FILE)")
    try:
        args.artifact, args.verify_file = parse_artifact(words[0]), None
    except argparse.ArgumentTypeError as error:
        parser.error(f"argument artifact:ID: {error}")


def _manifest(connection: Connection, args: argparse.Namespace, out: TextIO) -> int:
    if args.verify_file is not None:
        return _manifest_verify(connection, args, out)
    request = pb.ManifestRequest(artifact_id=args.artifact, max_nodes=args.max_nodes)
    response: pb.ManifestResponse = connection.call("Manifest", request)
    if args.output:
        # Byte for byte what the server hashed, so `sha256sum FILE` matches.
        _write(args.output, response.manifest_json.encode("utf-8"))
        out.write(f"wrote {args.output} (sha256 {response.sha256})\n")
    else:
        out.write(response.manifest_json + "\n")
    return EXIT_OK


def _manifest_verify(connection: Connection, args: argparse.Namespace, out: TextIO) -> int:
    from lineagedb.service.answers.manifest import compare

    path = args.verify_file
    try:
        recorded = json.loads(_read_text(path, "manifest"))
    except json.JSONDecodeError as error:
        raise CliError(f"error: {path} is not JSON: {error}") from None
    artifact_id = manifest_target(recorded)
    if artifact_id is None:
        raise CliError(f"error: {path} does not look like a LineageDB manifest (no target artifact id)")
    response: pb.ManifestResponse = connection.call(
        "Manifest", pb.ManifestRequest(artifact_id=artifact_id, max_nodes=args.max_nodes)
    )
    try:
        changes = compare(recorded, json.loads(response.manifest_json))
    except ValueError as error:
        raise CliError(f"error: {path} is not a manifest this version understands: {error}") from None
    if not changes:
        out.write(f"unchanged: the store still gives artifact:{artifact_id} this manifest (sha256 {response.sha256})\n")
        return EXIT_OK
    count = f"{len(changes)} change" + ("" if len(changes) == 1 else "s")
    out.write(f"changed: {count} since {path} was written for artifact:{artifact_id}\n")
    for change in changes:
        out.write(f"  {_printable(change)}\n")
    return EXIT_CHANGED


def manifest_target(document: Any) -> int | None:
    """The id of the artifact a manifest was made for (its target), if it names one."""
    target = document.get("target") if isinstance(document, dict) else None
    artifact_id = target.get("id") if isinstance(target, dict) else None
    if isinstance(artifact_id, int) and not isinstance(artifact_id, bool) and artifact_id > 0:
        return artifact_id
    return None


def _completeness(connection: Connection, args: argparse.Namespace, out: TextIO) -> int:
    request = pb.CompletenessRequest(node=args.node, max_nodes=args.max_nodes)
    response: pb.CompletenessResponse = connection.call("Completeness", request)
    if args.format == "json":
        out.write(_json(response))
        return EXIT_OK
    rows = [(gap.kind, node_text(gap.node), gap.message) for gap in response.gaps]
    lines = table(("GAP", "NODE", "MESSAGE"), rows) if rows else []
    lines.append(f"score: {response.score:.2f} ({response.checks} checks, {len(response.gaps)} gaps)")
    if response.truncated:
        lines.append(f"truncated: {pb.Truncation.Name(response.truncated)} (checked only the nodes reached)")
    out.write("\n".join(lines) + "\n")
    return EXIT_OK


def _report(connection: Connection, args: argparse.Namespace, out: TextIO) -> int:
    if args.format == "pdf" and not args.output and _is_terminal(out):
        raise CliError("error: a PDF is binary: give --output FILE or redirect stdout")
    wire_format = "html" if args.format == "pdf" else args.format
    request = pb.ReportRequest(
        artifact_id=args.artifact, format=wire_format, as_of_ms=args.as_of, max_nodes=args.max_nodes
    )
    response: pb.ReportResponse = connection.call("Report", request)
    content = bytes(response.content)
    if args.format == "pdf":
        content = _pdf(content.decode("utf-8"))
    if args.output:
        _write(args.output, content)
        out.write(f"wrote {args.output} ({len(content)} bytes, {args.format})\n")
        return EXIT_OK
    if args.format == "pdf":
        out.flush()
        binary = getattr(out, "buffer", None)
        if binary is None:
            raise CliError("error: a PDF is binary: give --output FILE")
        binary.write(content)
        binary.flush()
        return EXIT_OK
    text = content.decode("utf-8")
    out.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


PDF_NEEDS = "PDF output needs Playwright and a Chromium it can drive (pip install playwright; apt-get install chromium)"


def _pdf(page: str) -> bytes:
    """The report page printed to PDF by headless Chromium (lineagedb.ops.report_pdf), imported
    only here: Playwright is an optional dependency that no other command needs."""
    try:
        from lineagedb.ops.report_pdf import pdf_from_html

        return pdf_from_html(page)
    except ImportError as error:
        if (error.name or "").startswith("lineagedb"):
            raise CliError(f"error: this LineageDB cannot write PDFs: {_one_line(str(error))}") from None
        raise CliError(f"error: {PDF_NEEDS}: {_one_line(str(error))}") from None
    except errors.LineageError as error:  # the renderer's own account: no Playwright, no Chromium, a crash
        raise CliError(f"error: {_one_line(error.message)}") from None
    except Exception as error:  # Playwright's errors (no browser, a crash) share no base class we can name here
        reason = _one_line(str(error)) or type(error).__name__
        raise CliError(f"error: could not render the PDF: {reason}") from None


def _is_terminal(out: TextIO) -> bool:
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


COMMANDS: dict[str, Callable[[Connection, argparse.Namespace, TextIO], int]] = {
    "upstream": _upstream,
    "downstream": _downstream,
    "diff": _diff,
    "manifest": _manifest,
    "completeness": _completeness,
    "report": _report,
}


# --------------------------------------------------------------------------------- output


def node_text(ref: pb.NodeRef) -> str:
    which = ref.WhichOneof("node")
    if which is None:
        return "-"
    return f"{which.removesuffix('_id')}:{getattr(ref, which)}"


def _printable(text: str) -> str:
    # Names, URIs and messages come from whoever wrote the metadata: no terminal control characters.
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _short(text: str) -> str:
    text = _printable(text)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def diff_value(text: str, fields: Sequence[str]) -> str:
    """A Change's before/after (JSON text) for a table cell: an artifact or execution as its
    id and the fields that differ (or its type, name and URI), a string bare."""
    if not text:
        return ""
    try:
        value = json.loads(text)
    except ValueError:
        return _short(text)
    if not isinstance(value, dict):
        return _short(_plain(value))
    shown = [f"id={value['id']}"] if "id" in value else []
    names = list(fields) or [name for name in ("type", "name", "uri") if value.get(name) not in (None, "")]
    shown += [f"{name}={_plain(_field(value, name))}" for name in names]
    return _short(" ".join(shown))


def _field(value: dict[str, Any], name: str) -> Any:
    """`name` of a diffed node: a field of its own, or a parameter, code version or environment entry."""
    if name in value:
        return value[name]
    for nested in value.values():
        if isinstance(nested, dict) and name in nested:
            return nested[name]
    return None


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, no trailing spaces."""
    cells = [list(header), *([_printable(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]


def _label(name: str, uri: str) -> str:
    if name and uri:
        return f"{name} ({uri})"
    return name or uri


def node_rows(response: pb.ClosureResponse | pb.ImpactResponse) -> list[tuple[str, str, str, str, str]]:
    """(kind, id, type, name/uri, state) of every node, artifacts then executions then contexts."""
    rows = [
        ("artifact", str(a.id), a.type, _label(a.name, a.uri), mlmd.Artifact.State.Name(a.state))
        for a in response.artifacts
    ]
    rows += [
        ("execution", str(e.id), e.type, e.name, mlmd.Execution.State.Name(e.last_known_state))
        for e in response.executions
    ]
    rows += [("context", str(c.id), c.type, c.name, "") for c in response.contexts]
    return rows


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _refs(refs: Iterable[pb.NodeRef], limit: int = 20) -> str:
    texts = [node_text(ref) for ref in refs]
    shown = ", ".join(texts[:limit])
    return shown + (f", ... ({len(texts)} in all)" if len(texts) > limit else "")


def _closure_summary(response: pb.ClosureResponse | pb.ImpactResponse) -> list[str]:
    lines = [f"depth: {response.depth}"]
    if response.truncated:
        lines.append(f"truncated: {pb.Truncation.Name(response.truncated)}")
        lines.append(f"frontier: {_refs(response.frontier)}")
    else:
        lines.append("truncated: no")
    as_of = response.as_of
    if as_of.time_ms:
        lines.append(f"as of: {_iso(as_of.time_ms)}")
        if as_of.restored:
            lines.append(f"restored from the audit log: {_refs(as_of.restored)}")
        if as_of.current_values:
            lines.append(f"current values (no audit history to restore): {_refs(as_of.current_values)}")
    return lines


def _impact_summary(response: pb.ClosureResponse | pb.ImpactResponse) -> list[str]:
    assert isinstance(response, pb.ImpactResponse)
    affected = sum(group.count for group in response.groups)
    lines = [f"affected artifacts: {affected}"]
    lines += [
        "  " + line
        for line in table(("TYPE", "STATE", "COUNT"), [(g.type, g.state, str(g.count)) for g in response.groups])
    ]
    runs = sorted({c.name for c in response.contexts if c.type == "pipeline_run"})
    lines.append(f"executions: {len(response.executions)}; contexts: {len(response.contexts)}")
    if runs:
        lines.append(f"runs: {', '.join(_printable(r) for r in runs)}")
    return lines + _closure_summary(response)


def _json(message: Message) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True) + "\n"


Summary = Callable[[pb.ClosureResponse | pb.ImpactResponse], list[str]]


def _graph_output(
    args: argparse.Namespace, response: pb.ClosureResponse | pb.ImpactResponse, title: str, summary: Summary
) -> str:
    if args.format == "json":
        return _json(response)
    if args.format == "table":
        lines = [*table(("KIND", "ID", "TYPE", "NAME/URI", "STATE"), node_rows(response)), *summary(response)]
        return "\n".join(lines) + "\n"
    from lineagedb.service.answers import render

    start = focus_key(args.node)
    focus = [start] if start else []
    cluster_by = getattr(args, "cluster_by", None)
    if args.format == "dot":
        return _ensure_newline(render.dot(response, cluster_by=cluster_by, focus=focus))
    if args.format == "mermaid":
        return _ensure_newline(render.mermaid(response, cluster_by=cluster_by, focus=focus))
    picture = render.svg(response, focus=focus, title=title)
    return graph_page(title, picture, node_rows(response), summary(response))


def focus_key(ref: pb.NodeRef) -> str | None:
    """The drawing's key of the node asked about (a7, e3); a context is not drawn as a node."""
    which = ref.WhichOneof("node")
    if which == "artifact_id":
        return f"a{ref.artifact_id}"
    if which == "execution_id":
        return f"e{ref.execution_id}"
    return None


def _ensure_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
.graph { overflow: auto; border: 1px solid #ddd; padding: 1em; }
table { border-collapse: collapse; margin-top: 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.75em; text-align: left; font-size: 0.9em; }
"""
# The page allows exactly its own style sheet and nothing else (no scripts, no fetches):
# metadata drawn into it cannot bring in anything even if an escape were missed.
PAGE_STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(PAGE_STYLE.encode("utf-8")).digest()).decode("ascii")


def graph_page(title: str, svg: str, rows: Sequence[Sequence[str]], summary: Sequence[str]) -> str:
    """A self-contained page: the drawing, the nodes and the summary (no external resources)."""
    escape = html.escape
    head = "".join(f"<th>{escape(h)}</th>" for h in ("kind", "id", "type", "name / uri", "state"))
    body = "\n".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    facts = "\n".join(f"<li>{escape(line.strip())}</li>" for line in summary)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src '{PAGE_STYLE_HASH}'">
<title>{escape(title)}</title>
<style>{PAGE_STYLE}</style>
</head>
<body>
<h1>{escape(title)}</h1>
<div class="graph">
{svg}
</div>
<ul>
{facts}
</ul>
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
</body>
</html>
"""


def _emit(args: argparse.Namespace, out: TextIO, text: str) -> None:
    if getattr(args, "output", None):
        _write(args.output, text.encode("utf-8"))
        out.write(f"wrote {args.output}\n")
    else:
        out.write(text)


def _write(path: str, content: bytes) -> None:
    try:
        Path(path).write_bytes(content)
    except OSError as error:
        raise CliError(f"error: cannot write {path}: {error.strerror}") from None
