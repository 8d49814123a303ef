"""Pictures of a lineage graph: Graphviz DOT, a Mermaid flowchart, and an inline SVG.

Every answer carries the same parts (artifacts, executions, events, contexts as
ml_metadata messages), so these functions take anything with those fields: a
ClosureResponse, an ImpactResponse, a graph.Graph, or a `Parts`.

Metadata is untrusted. A name may hold quotes, backslashes, newlines, braces or
markup; each output format gets its own escaping, applied to every piece of text
that comes from the store, and control characters never reach any of them (a
newline in a name would otherwise forge extra label lines).

Edges follow the data: an input event is drawn artifact -> execution, an output
event execution -> artifact, so a picture reads left to right from data to model.
"""

from __future__ import annotations

import html
import itertools
import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service.lineage import INPUT_LIKE, OUTPUT_LIKE


class GraphParts(Protocol):
    """What every answer has: the nodes and the events among them."""

    @property
    def artifacts(self) -> Sequence[Any]: ...

    @property
    def executions(self) -> Sequence[Any]: ...

    @property
    def events(self) -> Sequence[Any]: ...

    @property
    def contexts(self) -> Sequence[Any]: ...


@dataclass
class Parts:
    """A graph to draw, for callers that assemble one (the report joins two closures)."""

    artifacts: list[Any] = field(default_factory=list)
    executions: list[Any] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    contexts: list[Any] = field(default_factory=list)
    attributions: list[Any] = field(default_factory=list)
    associations: list[Any] = field(default_factory=list)


# -- colours per state (fill, stroke), shared by every format --------------------------------------

ARTIFACT_COLOURS: dict[str, tuple[str, str]] = {
    "UNKNOWN": ("#eeeeee", "#757575"),
    "PENDING": ("#fff3c4", "#b08800"),
    "LIVE": ("#d8f0d8", "#2e7d32"),
    "MARKED_FOR_DELETION": ("#ffe0b2", "#e65100"),
    "DELETED": ("#ffcdd2", "#b71c1c"),
    "ABANDONED": ("#e0e0e0", "#424242"),
    "REFERENCE": ("#d6e6fb", "#1565c0"),
}
EXECUTION_COLOURS: dict[str, tuple[str, str]] = {
    "UNKNOWN": ("#eeeeee", "#757575"),
    "NEW": ("#f3e5f5", "#6a1b9a"),
    "RUNNING": ("#d6e6fb", "#1565c0"),
    "COMPLETE": ("#e3f2e1", "#1b5e20"),
    "FAILED": ("#ffcdd2", "#b71c1c"),
    "CACHED": ("#e0f2f1", "#00695c"),
    "CANCELED": ("#e0e0e0", "#424242"),
}


# -- the graph as plain data --------------------------------------------------------------------


@dataclass
class _Node:
    key: str  # a12 / e7: a safe identifier in every format
    kind: str  # "artifact" | "execution"
    id: int
    type: str
    title: str  # name, or the uri's last segment when there is no name
    state: str

    @property
    def colours(self) -> tuple[str, str]:
        table = ARTIFACT_COLOURS if self.kind == "artifact" else EXECUTION_COLOURS
        return table.get(self.state, table["UNKNOWN"])

    def lines(self, width: int) -> list[str]:
        found = [clip(self.type, width)]
        if self.title:
            found.append(clip(self.title, width))
        found.append(f"{self.kind} {self.id}")
        return found


@dataclass
class _Edge:
    source: str
    target: str
    role: str
    type: str  # INPUT, OUTPUT, ...

    @property
    def label(self) -> str:
        return f"{self.role} ({self.type})" if self.role else self.type


@dataclass
class _Model:
    nodes: list[_Node]
    edges: list[_Edge]
    clusters: list[tuple[str, str, list[str]]]  # (key, label, member node keys)

    @property
    def by_key(self) -> dict[str, _Node]:
        return {node.key: node for node in self.nodes}


def _model(parts: GraphParts, cluster_by: str | None) -> _Model:
    nodes: list[_Node] = []
    for artifact in sorted(parts.artifacts, key=lambda a: a.id):
        state = mlmd.Artifact.State.Name(artifact.state) if artifact.state in ARTIFACT_STATE_NUMBERS else "UNKNOWN"
        title = artifact.name or uri_tail(artifact.uri)
        nodes.append(_Node(f"a{artifact.id}", "artifact", artifact.id, _type_name(artifact), title, state))
    for execution in sorted(parts.executions, key=lambda e: e.id):
        number = execution.last_known_state
        state = mlmd.Execution.State.Name(number) if number in EXECUTION_STATE_NUMBERS else "UNKNOWN"
        nodes.append(_Node(f"e{execution.id}", "execution", execution.id, _type_name(execution), execution.name, state))
    present = {node.key for node in nodes}
    edges: list[_Edge] = []
    for event in sorted(parts.events, key=_event_order):
        artifact, execution = f"a{event.artifact_id}", f"e{event.execution_id}"
        if artifact not in present or execution not in present:
            continue  # an end outside the picture (left out by a filter or the budget)
        kind = mlmd.Event.Type.Name(event.type) if event.type in EVENT_TYPE_NUMBERS else "UNKNOWN"
        source, target = (execution, artifact) if event.type in OUTPUT_LIKE else (artifact, execution)
        edges.append(_Edge(source, target, role_of(event), kind))
    return _Model(nodes, edges, _clusters(parts, cluster_by, present))


ARTIFACT_STATE_NUMBERS = frozenset(mlmd.Artifact.State.values())
EXECUTION_STATE_NUMBERS = frozenset(mlmd.Execution.State.values())
EVENT_TYPE_NUMBERS = frozenset(mlmd.Event.Type.values())


def _event_order(event: Any) -> tuple[int, int, int]:
    return (event.execution_id, event.artifact_id, event.type)


def _type_name(node: Any) -> str:
    return node.type or f"type {node.type_id}"


def _clusters(parts: GraphParts, cluster_by: str | None, present: set[str]) -> list[tuple[str, str, list[str]]]:
    """One cluster per context of type `cluster_by`; a node in several such contexts is
    drawn in the first (clusters cannot overlap)."""
    if not cluster_by:
        return []
    contexts = {c.id: c for c in parts.contexts if c.type == cluster_by}
    members: dict[int, list[str]] = {context_id: [] for context_id in sorted(contexts)}
    placed: set[str] = set()
    links = [(f"a{link.artifact_id}", link.context_id) for link in getattr(parts, "attributions", ())]
    links += [(f"e{link.execution_id}", link.context_id) for link in getattr(parts, "associations", ())]
    for key, context_id in sorted(links, key=lambda link: (link[1], link[0])):
        if context_id in members and key in present and key not in placed:
            members[context_id].append(key)
            placed.add(key)
    return [
        (f"c{context_id}", f"{contexts[context_id].type} {contexts[context_id].name}", keys)
        for context_id, keys in members.items()
        if keys
    ]


def role_of(event: Any) -> str:
    """An event's role: the keys of its path ("examples"), indices left out."""
    return ".".join(step.key for step in event.path.steps if step.WhichOneof("value") == "key")


def uri_tail(uri: str) -> str:
    """The last non-empty segment of a URI (gs://b/run/model/ -> model)."""
    segments = [segment for segment in uri.replace("\\", "/").split("/") if segment]
    return segments[-1] if segments else ""


def clean(text: str) -> str:
    """Text safe to put on one line: line breaks and tabs become spaces, other control and
    format characters (bidi overrides, zero-width marks) a replacement character."""
    out = []
    for char in text:
        category = unicodedata.category(char)
        if char in "\t\n\r\v\f" or category in ("Zl", "Zp"):
            out.append(" ")
        elif category.startswith("C"):
            out.append("\ufffd")
        else:
            out.append(char)
    return "".join(out)


def clip(text: str, width: int) -> str:
    text = clean(text)
    return text if len(text) <= width else text[: max(width - 1, 1)] + "\u2026"


# -- Graphviz DOT -------------------------------------------------------------------------------

_DOT_LINE = 60


def dot_string(text: str) -> str:
    """A DOT double-quoted string holding `text` literally. Inside one, a backslash starts an
    escape (\\n, \\l, \\N ...) and a quote ends it; line breaks are gone after clean()."""
    return '"' + clean(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_label(lines: Iterable[str]) -> str:
    # Each line escaped on its own, then joined with DOT's centred line break (\n).
    return '"' + "\\n".join(dot_string(line)[1:-1] for line in lines) + '"'


def dot(parts: GraphParts, cluster_by: str | None = None, focus: Iterable[str] = ()) -> str:
    """A Graphviz digraph: artifacts as ellipses, executions as boxes, filled by state;
    events as edges labelled with role and type. `cluster_by` names a context type whose
    contexts become clusters; `focus` node keys (a12, e7) are drawn with a heavy outline."""
    model = _model(parts, cluster_by)
    focused = set(focus)
    out = [
        "digraph lineage {",
        '  graph [rankdir=LR, fontname="Helvetica", fontsize=10];',
        '  node [fontname="Helvetica", fontsize=10, style=filled];',
        '  edge [fontname="Helvetica", fontsize=9, color="#555555"];',
    ]
    clustered = {key for _, _, keys in model.clusters for key in keys}

    def node_line(node: _Node, indent: str) -> str:
        fill, stroke = node.colours
        shape = "ellipse" if node.kind == "artifact" else "box"
        attributes = [
            f"shape={shape}",
            f"label={_dot_label(node.lines(_DOT_LINE))}",
            f'fillcolor="{fill}"',
            f'color="{stroke}"',
            f"tooltip={dot_string(f'{node.kind} {node.id}: {node.state}')}",
        ]
        if node.key in focused:
            attributes.append("penwidth=3")
        return f"{indent}{node.key} [{', '.join(attributes)}];"

    by_key = model.by_key
    for key, label, keys in model.clusters:
        out.append(f"  subgraph cluster_{key} {{")
        out.append(f"    label={dot_string(clip(label, _DOT_LINE))};")
        out.append('    style=rounded; color="#9e9e9e";')
        out.extend(node_line(by_key[member], "    ") for member in keys)
        out.append("  }")
    out.extend(node_line(node, "  ") for node in model.nodes if node.key not in clustered)
    for edge in model.edges:
        style = ", style=dashed" if edge.type not in _DATA_EDGE_TYPES else ""
        out.append(f"  {edge.source} -> {edge.target} [label={dot_string(clip(edge.label, _DOT_LINE))}{style}];")
    out.append("}")
    return "\n".join(out) + "\n"


_DATA_EDGE_TYPES = frozenset(mlmd.Event.Type.Name(t) for t in INPUT_LIKE | OUTPUT_LIKE)


# -- Mermaid --------------------------------------------------------------------------------------

_MERMAID_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,_-:/@+=()")


def mermaid_text(text: str) -> str:
    """Text for inside a quoted Mermaid label: everything but plain letters, digits and a few
    punctuation marks as an entity code (#quot; #35; ...), so no character of the name can
    end the label, start markup, or be read as flowchart syntax."""
    out = []
    for char in clean(text):
        if char in _MERMAID_PLAIN:
            out.append(char)
        elif char == '"':
            out.append("#quot;")
        else:
            out.append(f"#{ord(char)};")
    return "".join(out)


def mermaid(parts: GraphParts, cluster_by: str | None = None, focus: Iterable[str] = ()) -> str:
    """A Mermaid flowchart (LR): artifacts as stadiums, executions as boxes, classes per state."""
    model = _model(parts, cluster_by)
    out = ["flowchart LR"]
    clustered = {key for _, _, keys in model.clusters for key in keys}

    def node_line(node: _Node, indent: str) -> str:
        label = '"' + "<br/>".join(mermaid_text(line) for line in node.lines(_DOT_LINE)) + '"'
        return f"{indent}{node.key}([{label}])" if node.kind == "artifact" else f"{indent}{node.key}[{label}]"

    by_key = model.by_key
    for key, label, keys in model.clusters:
        out.append(f'  subgraph {key} ["{mermaid_text(clip(label, _DOT_LINE))}"]')
        out.extend(node_line(by_key[member], "    ") for member in keys)
        out.append("  end")
    out.extend(node_line(node, "  ") for node in model.nodes if node.key not in clustered)
    for edge in model.edges:
        arrow = "-->" if edge.type in _DATA_EDGE_TYPES else "-.->"
        out.append(f'  {edge.source} {arrow}|"{mermaid_text(clip(edge.label, _DOT_LINE))}"| {edge.target}')
    classes: dict[str, list[str]] = {}
    for node in model.nodes:
        classes.setdefault(f"{node.kind}_{node.state}", []).append(node.key)
    for name, keys in classes.items():
        kind, _, state = name.partition("_")
        fill, stroke = (ARTIFACT_COLOURS if kind == "artifact" else EXECUTION_COLOURS)[state]
        out.append(f"  classDef {name} fill:{fill},stroke:{stroke},color:#000000")
        out.append(f"  class {','.join(keys)} {name}")
    focused = [node.key for node in model.nodes if node.key in set(focus)]
    if focused:
        out.append("  classDef focus stroke-width:3px")
        out.append(f"  class {','.join(focused)} focus")
    return "\n".join(out) + "\n"


# -- SVG: a layered drawing computed here -------------------------------------------------------

NODE_WIDTH, NODE_HEIGHT = 180, 50
WAYPOINT_HEIGHT = 6
COLUMN_GAP, ROW_GAP = 110, 16
MARGIN, LEGEND_HEIGHT = 16, 44
FONT = "Helvetica, Arial, sans-serif"
# Characters of an 11px sans-serif line that fit a node (about 6.4px each).
_SVG_LINE = 26
# Past this many edges their labels clutter more than they tell; they stay as tooltips.
EDGE_LABELS_UP_TO = 150
BARYCENTER_SWEEPS = 4


def layers(keys: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layering: a node sits one column right of its furthest predecessor.
    Edges closing a cycle (metadata may hold one) are ignored; a node nobody feeds is moved
    right next to its first consumer instead of staying in column 0."""
    successors: dict[str, list[str]] = {key: [] for key in keys}
    for source, target in edges:
        if source in successors and target in successors and source != target:
            successors[source].append(target)
    acyclic = _without_back_edges(keys, successors)
    incoming = {key: 0 for key in keys}
    for source in keys:
        for target in acyclic[source]:
            incoming[target] += 1
    layer = {key: 0 for key in keys}
    ready = [key for key in keys if incoming[key] == 0]
    topological: list[str] = []
    while ready:
        key = ready.pop()
        topological.append(key)
        for target in acyclic[key]:
            layer[target] = max(layer[target], layer[key] + 1)
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    has_predecessor = {target for source in keys for target in acyclic[source]}
    for key in reversed(topological):
        if key not in has_predecessor and acyclic[key]:
            layer[key] = min(layer[target] for target in acyclic[key]) - 1
    return layer


def _without_back_edges(keys: Sequence[str], successors: dict[str, list[str]]) -> dict[str, list[str]]:
    """The edges minus those a depth-first search finds closing a cycle (iterative: a graph
    of thousands of nodes would overflow Python's recursion limit)."""
    colour = dict.fromkeys(keys, 0)  # 0 unseen, 1 on the stack, 2 done
    kept: dict[str, list[str]] = {key: [] for key in keys}
    for root in keys:
        if colour[root]:
            continue
        colour[root] = 1
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            key, index = stack.pop()
            if index < len(successors[key]):
                stack.append((key, index + 1))
                target = successors[key][index]
                if colour[target] == 1:
                    continue  # back edge
                kept[key].append(target)
                if colour[target] == 0:
                    colour[target] = 1
                    stack.append((target, 0))
            else:
                colour[key] = 2
    return kept


def order_layers(layer: dict[str, int], keys: Sequence[str], edges: Sequence[tuple[str, str]]) -> list[list[str]]:
    """Nodes per column, ordered to cut crossings: alternate sweeps right and left put each
    node at the mean position (barycenter) of its neighbours in the columns already placed."""
    count = max(layer.values(), default=-1) + 1
    columns: list[list[str]] = [[] for _ in range(count)]
    for key in keys:
        columns[layer[key]].append(key)
    predecessors: dict[str, list[str]] = {key: [] for key in keys}
    successors: dict[str, list[str]] = {key: [] for key in keys}
    for source, target in edges:
        if source in predecessors and target in predecessors and source != target:
            successors[source].append(target)
            predecessors[target].append(source)

    def position() -> dict[str, float]:
        # Centred positions, so columns of different heights line up around the middle.
        return {key: i - (len(column) - 1) / 2 for column in columns for i, key in enumerate(column)}

    for sweep in range(BARYCENTER_SWEEPS):
        forward = sweep % 2 == 0
        neighbours = predecessors if forward else successors
        indices = range(1, count) if forward else range(count - 2, -1, -1)
        for index in indices:
            placed = position()
            columns[index].sort(key=lambda key: _barycenter(key, neighbours, placed))  # stable on ties
    return columns


def _barycenter(key: str, neighbours: dict[str, list[str]], placed: dict[str, float]) -> float:
    near = [placed[other] for other in neighbours[key]]
    return sum(near) / len(near) if near else placed[key]


@dataclass
class _Placed:
    node: _Node | None  # None for a waypoint of a long edge
    x: float
    y: float  # top left
    height: float

    @property
    def middle(self) -> float:
        return self.y + self.height / 2


def svg(parts: GraphParts, focus: Iterable[str] = (), title: str = "Lineage graph") -> str:
    """A self-contained SVG (presentation attributes only, no style elements or scripts):
    columns by longest-path layering, rows by barycenter ordering, shapes per kind, fills
    per state, a legend, every text XML-escaped.

    An edge spanning several columns gets a waypoint in each column it crosses, ordered
    like the nodes, so it runs between them instead of behind them."""
    model = _model(parts, None)
    focused = set(focus)
    keys = [node.key for node in model.nodes]
    pairs = [(edge.source, edge.target) for edge in model.edges]
    layer = layers(keys, pairs)
    all_keys = list(keys)
    hops: list[tuple[str, str]] = []
    routes: list[list[str]] = []
    for index, (source, target) in enumerate(pairs):
        waypoints = [f"~{index}.{column}" for column in range(layer[source] + 1, layer[target])]
        for column, waypoint in enumerate(waypoints, start=layer[source] + 1):
            layer[waypoint] = column
        all_keys.extend(waypoints)
        chain = [source, *waypoints, target]
        hops.extend(itertools.pairwise(chain))
        routes.append(waypoints)
    columns = order_layers(layer, all_keys, hops)

    by_key = model.by_key

    def height_of(key: str) -> float:
        return NODE_HEIGHT if key in by_key else WAYPOINT_HEIGHT

    heights = [sum(height_of(key) for key in column) + ROW_GAP * (len(column) - 1) for column in columns]
    body_height = max([NODE_HEIGHT, *heights])
    legend, legend_width = _legend(model)
    width = max(len(columns) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP, legend_width) + 2 * MARGIN
    height = body_height + LEGEND_HEIGHT + 2 * MARGIN
    placed: dict[str, _Placed] = {}
    for index, members in enumerate(columns):
        y = MARGIN + LEGEND_HEIGHT + (body_height - heights[index]) / 2
        x = MARGIN + index * (NODE_WIDTH + COLUMN_GAP)
        for key in members:
            placed[key] = _Placed(by_key.get(key), x, y, height_of(key))
            y += height_of(key) + ROW_GAP

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{xml_escape(clean(title))}" '
        f'font-family="{FONT}" font-size="11">',
        f"<title>{xml_escape(clean(title))}</title>",
        "<defs>"
        '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555555"/></marker>'
        "</defs>",
        f'<rect x="0" y="0" width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>',
    ]
    out.extend(legend)
    labelled = len(model.edges) <= EDGE_LABELS_UP_TO
    out.append('<g class="edges" fill="none">')
    for edge, waypoints in zip(model.edges, routes, strict=True):
        stops = [placed[edge.source], *(placed[w] for w in waypoints), placed[edge.target]]
        out.append(_svg_edge(stops, edge, labelled))
    out.append("</g>")
    out.append('<g class="nodes">')
    for key in keys:
        out.append(_svg_node(placed[key], key in focused))
    out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _svg_node(place: _Placed, focused: bool) -> str:
    node = place.node
    assert node is not None
    fill, stroke = node.colours
    stroke_width = 3 if focused else 1.2
    x, y, w, h = place.x, place.y, NODE_WIDTH, NODE_HEIGHT
    if node.kind == "artifact":
        shape = (
            f'<ellipse class="shape" cx="{x + w / 2:.1f}" cy="{y + h / 2:.1f}" rx="{w / 2:.1f}" ry="{h / 2:.1f}" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{stroke_width}"/>'
        )
    else:
        shape = (
            f'<rect class="shape" x="{x:.1f}" y="{y:.1f}" width="{w}" height="{h}" rx="3" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{stroke_width}"/>'
        )
    tooltip = f"{node.kind} {node.id} ({node.state})\ntype: {clean(node.type)}\n{clean(node.title)}"
    lines = node.lines(_SVG_LINE if node.kind == "execution" else _SVG_LINE - 3)
    first = y + h / 2 - (len(lines) - 1) * 6.5 + 4
    texts = []
    for i, line in enumerate(lines):
        weight = ' font-weight="bold"' if i == 0 else ""
        colour = "#555555" if i == len(lines) - 1 else "#000000"
        texts.append(
            f'<text x="{x + w / 2:.1f}" y="{first + i * 13:.1f}" text-anchor="middle" fill="{colour}"{weight}>'
            f"{xml_escape(line)}</text>"
        )
    return (
        f'<g class="node {node.kind}" id="{node.key}" data-state="{node.state}">'
        f"<title>{xml_escape(tooltip)}</title>{shape}{''.join(texts)}</g>"
    )


def _svg_edge(stops: list[_Placed], edge: _Edge, labelled: bool) -> str:
    """A curve from the source's right side through each waypoint (crossed straight) to the
    target's left side; the label sits on the segment next to the step it names (an output
    by its producer, an input by its consumer)."""
    segments: list[tuple[float, float, float, float]] = []  # (x1, y1, x2, y2) between columns
    x, y = stops[0].x + NODE_WIDTH, stops[0].middle
    for stop in stops[1:]:
        segments.append((x, y, stop.x, stop.middle))
        x, y = stop.x + NODE_WIDTH, stop.middle
    commands = [f"M{segments[0][0]:.1f},{segments[0][1]:.1f}"]
    for index, (x1, y1, x2, y2) in enumerate(segments):
        if index:
            commands.append(f"L{x1:.1f},{y1:.1f}")
        bend = max(abs(x2 - x1) / 2, 40)
        commands.append(f"C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}")
    dashed = "" if edge.type in _DATA_EDGE_TYPES else ' stroke-dasharray="4 3"'
    output = edge.type in _OUTPUT_NAMES
    colour = "#2e7d32" if output else "#555555"
    path = f'<path d="{" ".join(commands)}" stroke="{colour}" stroke-width="1.2" marker-end="url(#arrow)"{dashed}/>'
    label = ""
    if labelled:
        x1, y1, x2, y2 = segments[0] if output else segments[-1]
        # The segment's midpoint (its curve is symmetric), nudged above the line.
        label = (
            f'<text x="{(x1 + x2) / 2:.1f}" y="{(y1 + y2) / 2 - 3:.1f}" text-anchor="middle" font-size="9" '
            f'fill="#333333" stroke="#ffffff" stroke-width="3" paint-order="stroke">'
            f"{xml_escape(clip(edge.role or edge.type, 22))}</text>"
        )
    return f'<g class="edge"><title>{xml_escape(clip(edge.label, 200))}</title>{path}{label}</g>'


def xml_escape(text: str) -> str:
    """Text for SVG content or a double-quoted attribute: & < > " ' as references, which XML
    and HTML (the SVG may sit inline in a page) read alike."""
    return html.escape(text, quote=True)


_OUTPUT_NAMES = frozenset(mlmd.Event.Type.Name(t) for t in OUTPUT_LIKE)


def _legend(model: _Model) -> tuple[list[str], float]:
    """Shapes for the two kinds, then a swatch per state present in the drawing; and its width."""
    out = [f'<g class="legend" transform="translate({MARGIN},{MARGIN})">']
    out.append('<ellipse cx="22" cy="12" rx="22" ry="10" fill="#ffffff" stroke="#555555"/>')
    out.append('<text x="50" y="16" fill="#000000">artifact</text>')
    out.append('<rect x="110" y="2" width="40" height="20" rx="3" fill="#ffffff" stroke="#555555"/>')
    out.append('<text x="156" y="16" fill="#000000">execution</text>')
    x = 230.0
    seen: list[tuple[str, str]] = []
    for node in model.nodes:
        if (node.kind, node.state) not in seen:
            seen.append((node.kind, node.state))
    for kind, state in sorted(seen):
        fill, stroke = (ARTIFACT_COLOURS if kind == "artifact" else EXECUTION_COLOURS)[state]
        text = f"{kind} {state}"
        out.append(f'<rect x="{x:.0f}" y="4" width="14" height="14" fill="{fill}" stroke="{stroke}"/>')
        out.append(f'<text x="{x + 18:.0f}" y="16" fill="#000000">{xml_escape(text)}</text>')
        x += 26 + math.ceil(len(text) * 6.2)
    out.append("</g>")
    return out, x
