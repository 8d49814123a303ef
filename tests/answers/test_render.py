"""Pictures of a lineage graph: DOT, Mermaid and SVG with exact node and edge counts, hostile
names that stay inside their labels, and the layered SVG layout.

DOT is checked with a grammar of the DOT language (from the Graphviz language reference)
and, when Debian's graphviz is installed, with `dot -Tsvg`. Mermaid is checked line by
line: every line must have one of the few shapes the renderer writes, so any syntax a
name smuggled in would show up as a line of another shape."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

import pytest
from lark import Lark, Token, Tree

from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service.answers import render
from lineagedb.service.answers.service import LineageAnswers

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = (
    'q"uo\'te \\back\\slash\\" {brace} [sq] <img src=x onerror=alert(1)>\n</script>#quot; --> |pipe|; end %% a1-->e1'
)


# -- graphs -------------------------------------------------------------------------------------


def artifact(node_id: int, type_name: str = "Data", name: str = "", uri: str = "", state: int = 0) -> Any:
    found = mlmd.Artifact(id=node_id, type=type_name, uri=uri or f"s3://bucket/data/{node_id}", state=state or 2)
    if name:
        found.name = name
    return found


def execution(node_id: int, type_name: str = "Step", name: str = "", state: int = 0) -> Any:
    found = mlmd.Execution(id=node_id, type=type_name, last_known_state=state or mlmd.Execution.COMPLETE)
    if name:
        found.name = name
    return found


def event(artifact_id: int, execution_id: int, kind: int, role: str = "") -> Any:
    found = mlmd.Event(artifact_id=artifact_id, execution_id=execution_id, type=kind)
    if role:
        found.path.steps.add().key = role
        found.path.steps.add().index = 0
    return found


IN, OUT = mlmd.Event.INPUT, mlmd.Event.OUTPUT


def hostile_graph() -> render.Parts:
    """One artifact, one execution and one context named with everything that can break a
    format, an output with a hostile URI tail, and events whose role is hostile too."""
    return render.Parts(
        artifacts=[
            artifact(1, type_name=HOSTILE, name=HOSTILE, state=mlmd.Artifact.LIVE),
            artifact(2, type_name="Out", uri="s3://b/{x}\"y'z<w>/", state=mlmd.Artifact.DELETED),
        ],
        executions=[execution(1, type_name=HOSTILE, name=HOSTILE, state=mlmd.Execution.FAILED)],
        events=[event(1, 1, IN, HOSTILE), event(2, 1, OUT, "out")],
        contexts=[mlmd.Context(id=3, type="run", name=HOSTILE)],
        attributions=[mlmd.Attribution(artifact_id=1, context_id=3)],
        associations=[mlmd.Association(execution_id=1, context_id=3)],
    )


def expected_lines(node: Any, kind: str, width: int) -> list[str]:
    title = node.name if node.HasField("name") else render.uri_tail(node.uri)
    return [render.clip(node.type, width), *([render.clip(title, width)] if title else []), f"{kind} {node.id}"]


# -- DOT ----------------------------------------------------------------------------------------

# The DOT language (graphviz.org/doc/info/lang.html); keywords are case-insensitive, a quoted
# string's only lexical escape is \" (other backslashes are left to the attribute's reader).
DOT_GRAMMAR = r"""
start: STRICT? (GRAPH | DIGRAPH) id? "{" stmt_list "}"
stmt_list: (stmt ";"?)*
?stmt: node_stmt | edge_stmt | attr_stmt | assignment | subgraph
assignment: id "=" id
attr_stmt: (GRAPH | NODE | EDGE) attr_list
attr_list: ("[" a_list? "]")+
a_list: (id "=" id (";" | ",")?)+
edge_stmt: (node_id | subgraph) (EDGEOP (node_id | subgraph))+ attr_list?
node_stmt: node_id attr_list?
node_id: id (":" id (":" id)?)?
subgraph: (SUBGRAPH id?)? "{" stmt_list "}"
id: NAME | NUMERAL | QUOTED
STRICT: "strict"i
GRAPH: "graph"i
DIGRAPH: "digraph"i
NODE: "node"i
EDGE: "edge"i
SUBGRAPH: "subgraph"i
EDGEOP: "->" | "--"
NAME: /[A-Za-z_\u0080-\uffff][A-Za-z_0-9\u0080-\uffff]*/
NUMERAL: /-?(\.[0-9]+|[0-9]+(\.[0-9]*)?)/
QUOTED: /"(?:[^"\\]|\\.)*"/s
%import common.WS
%ignore WS
"""
DOT_PARSER = Lark(DOT_GRAMMAR, parser="lalr")


def dot_id(tree: Tree[Any]) -> str:
    """An ID's value: a quoted string without its quotes and with \\" unescaped."""
    token = tree.children[0]
    assert isinstance(token, Token)
    if token.type == "QUOTED":
        return re.sub(r'\\"', '"', token[1:-1])
    return str(token)


def shown(label: str) -> list[str]:
    """The lines Graphviz shows for an escString label: \\\\ is a backslash, \\n \\l \\r end a
    line; any other escape (\\N, \\G: names substituted in) must not occur."""
    lines, current, index = [], "", 0
    while index < len(label):
        char = label[index]
        if char == "\\":
            following = label[index + 1]
            assert following in '\\nlr"', f"unexpected escape \\{following} in {label!r}"
            if following in "nlr":
                lines.append(current)
                current = ""
            else:
                current += following
            index += 2
        else:
            current += char
            index += 1
    return [*lines, current]


def parse_dot(text: str) -> tuple[dict[str, dict[str, str]], list[tuple[str, str, dict[str, str]]], list[str]]:
    """Nodes (id -> attributes), edges (tail, head, attributes) and cluster labels of a DOT text."""
    tree = DOT_PARSER.parse(text)
    nodes: dict[str, dict[str, str]] = {}
    edges: list[tuple[str, str, dict[str, str]]] = []
    clusters: list[str] = []

    def attributes(node: Tree[Any] | None) -> dict[str, str]:
        found: dict[str, str] = {}
        if node is None:
            return found
        for a_list in node.find_data("a_list"):
            values = [dot_id(child) for child in a_list.children if isinstance(child, Tree)]
            found.update(zip(values[::2], values[1::2], strict=True))
        return found

    for statement in tree.find_data("node_stmt"):
        name = dot_id(statement.children[0].children[0])
        nodes[name] = attributes(statement.children[1] if len(statement.children) > 1 else None)
    for statement in tree.find_data("edge_stmt"):
        ends = [dot_id(c.children[0]) for c in statement.children if isinstance(c, Tree) and c.data == "node_id"]
        last = statement.children[-1]
        edge_attributes = attributes(last if isinstance(last, Tree) and last.data == "attr_list" else None)
        edges.extend((tail, head, edge_attributes) for tail, head in itertools.pairwise(ends))
    for subgraph in tree.find_data("subgraph"):
        for assignment in subgraph.children[-1].children:
            if isinstance(assignment, Tree) and assignment.data == "assignment":
                key, value = (dot_id(child) for child in assignment.children)
                if key == "label":
                    clusters.append(value)
    return nodes, edges, clusters


def run_dot(text: str) -> str | None:
    """Graphviz's SVG of `text`, or None when graphviz is not installed."""
    binary = shutil.which("dot")
    if binary is None:
        return None
    done = subprocess.run([binary, "-Tsvg"], input=text.encode(), capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert not done.stderr, done.stderr.decode()  # warnings too: a label Graphviz misread
    return done.stdout.decode()


def test_dot_of_a_tfx_run_has_a_shape_per_kind_and_an_edge_per_event(
    answers: LineageAnswers, two_runs: dict[str, dict[str, int]]
) -> None:
    run = two_runs["run-1"]
    closure = answers.provenance(pb.ClosureRequest(node=pb.NodeRef(artifact_id=run["model"])))
    text = render.dot(closure, focus=[f"a{run['model']}"])
    nodes, edges, clusters = parse_dot(text)
    artifacts = {f"a{run[k]}" for k in ("examples", "statistics", "schema", "transform_graph")}
    artifacts |= {f"a{run['transformed_examples']}", f"a{run['model']}"}
    steps = {f"e{run[k]}" for k in ("ExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer")}
    assert set(nodes) == artifacts | steps
    assert {nodes[k]["shape"] for k in artifacts} == {"ellipse"}
    assert {nodes[k]["shape"] for k in steps} == {"box"}
    assert shown(nodes[f"a{run['model']}"]["label"]) == ["Model", "model", f"artifact {run['model']}"]
    assert shown(nodes[f"e{run['Trainer']}"]["label"]) == ["Trainer", "run-1.Trainer", f"execution {run['Trainer']}"]
    assert nodes[f"a{run['model']}"]["penwidth"] == "3"
    assert "penwidth" not in nodes[f"a{run['examples']}"]
    # LIVE artifacts and COMPLETE executions in their colours.
    assert {nodes[k]["fillcolor"] for k in artifacts} == {render.ARTIFACT_COLOURS["LIVE"][0]}
    assert {nodes[k]["fillcolor"] for k in steps} == {render.EXECUTION_COLOURS["COMPLETE"][0]}
    # 13 events, each an edge in the direction data flows, labelled role (TYPE).
    assert len(edges) == 13 == len(closure.events)
    assert (f"e{run['Trainer']}", f"a{run['model']}", "model (OUTPUT)") in {(t, h, a["label"]) for t, h, a in edges}
    assert (f"a{run['schema']}", f"e{run['Trainer']}", "schema (INPUT)") in {(t, h, a["label"]) for t, h, a in edges}
    assert clusters == []
    svg = run_dot(text)
    if svg is not None:
        assert svg.count('class="node"') == 11 and svg.count('class="edge"') == 13


def test_dot_clusters_by_a_context_type(answers: LineageAnswers, two_runs: dict[str, dict[str, int]]) -> None:
    closure = answers.provenance(pb.ClosureRequest(node=pb.NodeRef(context_id=two_runs["run-1"]["pipeline"])))
    nodes, edges, clusters = parse_dot(render.dot(closure, cluster_by="pipeline_run"))
    assert clusters == ["pipeline_run run-1", "pipeline_run run-2"]
    assert len(nodes) == 2 * 16 and len(edges) == 2 * 20


def test_hostile_names_stay_inside_dot_labels() -> None:
    parts = hostile_graph()
    text = render.dot(parts, cluster_by="run")
    nodes, edges, clusters = parse_dot(text)  # a broken string would not parse
    assert set(nodes) == {"a1", "a2", "e1"}
    assert shown(nodes["a1"]["label"]) == expected_lines(parts.artifacts[0], "artifact", 60)
    assert shown(nodes["e1"]["label"]) == expected_lines(parts.executions[0], "execution", 60)
    # The URI tail of an unnamed artifact, quotes and braces included.
    assert shown(nodes["a2"]["label"]) == ["Out", "{x}\"y'z<w>", "artifact 2"]
    assert [(t, h, shown(a["label"])) for t, h, a in edges] == [
        ("a1", "e1", [render.clip(f"{HOSTILE} (INPUT)", 60)]),
        ("e1", "a2", ["out (OUTPUT)"]),
    ]
    assert [shown(label) for label in clusters] == [[render.clip(f"run {HOSTILE}", 60)]]
    # The newline in the name became a space: a name cannot forge a label line.
    assert "\n" not in render.clip(HOSTILE, 200) and len(shown(nodes["a1"]["label"])) == 3
    svg = run_dot(text)
    if svg is not None:
        assert svg.count('class="node"') == 3 and svg.count('class="edge"') == 2


@pytest.mark.parametrize("name", ["ends with a backslash \\", '\\"', '"', "\\\\n", "\\N", "\\G \\E \\T \\H \\L"])
def test_dot_backslashes_and_quotes_are_literal(name: str) -> None:
    parts = render.Parts(artifacts=[artifact(1, name=name)])
    nodes, _, _ = parse_dot(render.dot(parts))
    assert shown(nodes["a1"]["label"]) == ["Data", name, "artifact 1"]


# -- Mermaid ------------------------------------------------------------------------------------

MERMAID_NODE = re.compile(r'^ {2,4}([ae][0-9]+)(\(\[|\[)"([^"<>\n]*(?:<br/>[^"<>\n]*)*)"(\]\)|\])$')
MERMAID_EDGE = re.compile(r'^ {2}([ae][0-9]+) (-->|-\.->)\|"([^"<>|\n]*)"\| ([ae][0-9]+)$')
MERMAID_OTHER = [
    re.compile(r"^flowchart LR$"),
    re.compile(r'^ {2}subgraph c[0-9]+ \["[^"<>\n]*"\]$'),
    re.compile(r"^ {2}end$"),
    re.compile(r"^ {2}classDef [a-z_A-Z]+ [a-z-]+:[#0-9a-z]+(,[a-z-]+:[#0-9a-z]+)*$"),
    re.compile(r"^ {2}class [ae][0-9]+(,[ae][0-9]+)* [a-z_A-Z]+$"),
]


def mermaid_decoded(text: str) -> str:
    """A label as Mermaid shows it: #quot; and #NNN; entity codes decoded."""
    return re.sub(r"#(quot|[0-9]+);", lambda m: '"' if m.group(1) == "quot" else chr(int(m.group(1))), text)


def parse_mermaid(text: str) -> tuple[dict[str, tuple[str, list[str]]], list[tuple[str, str, str, str]]]:
    nodes: dict[str, tuple[str, list[str]]] = {}
    edges: list[tuple[str, str, str, str]] = []
    for line in text.splitlines():
        if match := MERMAID_NODE.match(line):
            shape = "stadium" if match.group(2) == "([" else "box"
            nodes[match.group(1)] = (shape, [mermaid_decoded(part) for part in match.group(3).split("<br/>")])
        elif match := MERMAID_EDGE.match(line):
            edges.append((match.group(1), match.group(4), match.group(2), mermaid_decoded(match.group(3))))
        else:
            assert any(shape.match(line) for shape in MERMAID_OTHER), f"unexpected Mermaid line {line!r}"
    return nodes, edges


def test_mermaid_of_a_tfx_run(answers: LineageAnswers, two_runs: dict[str, dict[str, int]]) -> None:
    run = two_runs["run-1"]
    closure = answers.provenance(pb.ClosureRequest(node=pb.NodeRef(artifact_id=run["model"])))
    text = render.mermaid(closure, focus=[f"a{run['model']}"])
    assert text.startswith("flowchart LR\n")
    nodes, edges = parse_mermaid(text)
    assert Counter(shape for shape, _ in nodes.values()) == {"stadium": 6, "box": 5}
    assert nodes[f"e{run['Trainer']}"] == ("box", ["Trainer", "run-1.Trainer", f"execution {run['Trainer']}"])
    assert len(edges) == 13
    assert (f"e{run['Trainer']}", f"a{run['model']}", "-->", "model (OUTPUT)") in edges
    assert f"  class a{run['model']} focus" in text.splitlines()


def test_hostile_names_stay_inside_mermaid_labels() -> None:
    parts = hostile_graph()
    nodes, edges = parse_mermaid(render.mermaid(parts, cluster_by="run"))
    assert nodes == {
        "a1": ("stadium", expected_lines(parts.artifacts[0], "artifact", 60)),
        "a2": ("stadium", ["Out", "{x}\"y'z<w>", "artifact 2"]),
        "e1": ("box", expected_lines(parts.executions[0], "execution", 60)),
    }
    assert edges == [
        ("a1", "e1", "-->", render.clip(f"{HOSTILE} (INPUT)", 60)),
        ("e1", "a2", "-->", "out (OUTPUT)"),
    ]


def test_mermaid_text_encodes_everything_but_plain_characters() -> None:
    assert render.mermaid_text('a "b" #c <d> |e| ;') == "a #quot;b#quot; #35;c #60;d#62; #124;e#124; #59;"
    assert render.mermaid_text("line\nbreak\u202eend") == "line break#65533;end"


# -- SVG ----------------------------------------------------------------------------------------


def svg_nodes(text: str) -> dict[str, ET.Element]:
    root = ET.fromstring(text)
    return {g.get("id", ""): g for g in root.iter(f"{SVG}g") if "node" in (g.get("class") or "").split()}


def centre(group: ET.Element) -> tuple[float, float]:
    shape = group.find(f"{SVG}ellipse")
    if shape is not None:
        return float(shape.get("cx", "0")), float(shape.get("cy", "0"))
    rect = group.find(f"{SVG}rect")
    assert rect is not None
    x, y = float(rect.get("x", "0")), float(rect.get("y", "0"))
    return x + float(rect.get("width", "0")) / 2, y + float(rect.get("height", "0")) / 2


def test_svg_of_a_tfx_run_is_layered_left_to_right(
    answers: LineageAnswers, two_runs: dict[str, dict[str, int]]
) -> None:
    run = two_runs["run-1"]
    closure = answers.provenance(pb.ClosureRequest(node=pb.NodeRef(artifact_id=run["model"])))
    text = render.svg(closure, focus=[f"a{run['model']}"])
    root = ET.fromstring(text)  # well-formed XML
    assert root.tag == f"{SVG}svg"
    nodes = svg_nodes(text)
    assert Counter(g.get("class") for g in nodes.values()) == {"node artifact": 6, "node execution": 5}
    assert all(g.find(f"{SVG}ellipse") is not None for k, g in nodes.items() if k.startswith("a"))
    assert all(g.find(f"{SVG}rect") is not None for k, g in nodes.items() if k.startswith("e"))
    edges = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]
    assert len(edges) == 13
    # Every edge runs left to right: the longest chain (ExampleGen, examples, StatisticsGen,
    # statistics, SchemaGen, schema, Transform, transform_graph, Trainer, model) makes 10 columns.
    columns = sorted({centre(g)[0] for g in nodes.values()})
    assert len(columns) == 10
    order = ["ExampleGen", "examples", "StatisticsGen", "statistics", "SchemaGen", "schema", "Transform"]
    keys = [f"e{run[k]}" if k[0].isupper() else f"a{run[k]}" for k in order]
    assert [columns.index(centre(nodes[k])[0]) for k in keys] == list(range(7))
    for source, target in [(f"e{run['Trainer']}", f"a{run['model']}"), (f"a{run['examples']}", f"e{run['Transform']}")]:
        assert centre(nodes[source])[0] < centre(nodes[target])[0]
    # The model is drawn heavier; the legend names the states present.
    model_shape = nodes[f"a{run['model']}"].find(f"{SVG}ellipse")
    assert model_shape is not None and model_shape.get("stroke-width") == "3"
    legend = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "legend")
    assert [t.text for t in legend.iter(f"{SVG}text")] == [
        "artifact",
        "execution",
        "artifact LIVE",
        "execution COMPLETE",
    ]


def test_hostile_names_are_text_in_the_svg() -> None:
    parts = hostile_graph()
    text = render.svg(parts, title=HOSTILE)
    root = ET.fromstring(text)
    assert not [e for e in root.iter() if e.tag.split("}")[-1] in ("img", "script", "foreignObject", "style")]
    nodes = svg_nodes(text)
    assert set(nodes) == {"a1", "a2", "e1"}
    lines = [t.text for t in nodes["a1"].iter(f"{SVG}text")]
    assert lines == expected_lines(parts.artifacts[0], "artifact", 23)
    tooltip = nodes["e1"].find(f"{SVG}title")
    assert (
        tooltip is not None
        and tooltip.text == f"execution 1 (FAILED)\ntype: {render.clean(HOSTILE)}\n" + render.clean(HOSTILE)
    )
    assert nodes["e1"].get("data-state") == "FAILED" and nodes["a2"].get("data-state") == "DELETED"
    assert root.get("aria-label") == render.clean(HOSTILE)


def test_barycenter_ordering_removes_a_crossing() -> None:
    # s1 feeds t2 and s2 feeds t1: in input order the two edges cross; ordered, they do not.
    keys = ["s1", "s2", "t1", "t2"]
    edges = [("s1", "t2"), ("s2", "t1")]
    layer = render.layers(keys, edges)
    assert layer == {"s1": 0, "s2": 0, "t1": 1, "t2": 1}
    assert render.order_layers(layer, keys, edges) == [["s1", "s2"], ["t2", "t1"]]


def test_layers_pull_a_late_source_next_to_its_consumer_and_survive_cycles() -> None:
    keys = ["a", "b", "c", "d", "late"]
    edges = [("a", "b"), ("b", "c"), ("c", "d"), ("late", "d")]
    assert render.layers(keys, edges) == {"a": 0, "b": 1, "c": 2, "d": 3, "late": 2}
    # Recorded metadata may hold a cycle (an execution reading its own output).
    cyclic = render.layers(["x", "y", "z"], [("x", "y"), ("y", "z"), ("z", "x")])
    assert sorted(cyclic.values()) == [0, 1, 2]
    parts = render.Parts(
        artifacts=[artifact(1)], executions=[execution(1)], events=[event(1, 1, IN, "in"), event(1, 1, OUT, "out")]
    )
    assert len(svg_nodes(render.svg(parts))) == 2


def test_a_long_edge_runs_between_the_columns_it_crosses() -> None:
    """examples feeds both the next step and one four columns later: its edge bends around
    the nodes in between rather than through them."""
    parts = render.Parts(
        artifacts=[artifact(i) for i in (1, 2, 3)],
        executions=[execution(i) for i in (1, 2, 3)],
        events=[
            event(1, 1, IN, "a"),
            event(2, 1, OUT, "b"),
            event(2, 2, IN, "b"),
            event(3, 2, OUT, "c"),
            event(3, 3, IN, "c"),
            event(1, 3, IN, "long"),
        ],
    )
    root = ET.fromstring(render.svg(parts))
    boxes = {key: centre(g) for key, g in svg_nodes(ET.tostring(root, "unicode")).items()}
    long_edge = next(
        g for g in root.iter(f"{SVG}g") if g.get("class") == "edge" and g.findtext(f"{SVG}title") == "long (INPUT)"
    )
    path = long_edge.find(f"{SVG}path")
    assert path is not None
    d = path.get("d", "")
    start = re.match(r"M([0-9.]+),([0-9.]+)", d)
    assert start is not None and float(start.group(2)) == boxes["a1"][1]
    assert d.endswith(f"{boxes['e3'][0] - render.NODE_WIDTH / 2:.1f},{boxes['e3'][1]:.1f}")
    # Each "L" crosses a column at a waypoint: never at the height of the node in that column.
    crossings = [(float(x), float(y)) for x, y in re.findall(r"L([0-9.]+),([0-9.]+)", d)]
    assert len(crossings) == 4  # the columns of e1, a2, e2 and a3
    for x, y in crossings:
        (key,) = [k for k, (cx, _) in boxes.items() if abs(cx + render.NODE_WIDTH / 2 - x) < 1]
        assert abs(y - boxes[key][1]) >= render.NODE_HEIGHT / 2, key


def test_a_few_hundred_nodes_render_quickly() -> None:
    """300 steps in 30 parallel chains of 10, each step also reading a shared input."""
    artifacts = [artifact(i) for i in range(1, 331)]
    executions = [execution(i) for i in range(1, 301)]
    events = []
    for chain in range(30):
        for step in range(10):
            execution_id = chain * 10 + step + 1
            source = 301 + chain if step == 0 else execution_id - 1
            events.append(event(source, execution_id, IN, "in"))
            events.append(event(execution_id, execution_id, OUT, "out"))
    parts = render.Parts(artifacts=artifacts, executions=executions, events=events)
    started = time.perf_counter()
    text = render.svg(parts)
    elapsed = time.perf_counter() - started
    nodes = svg_nodes(text)
    assert len(nodes) == 630
    assert sum(1 for _ in ET.fromstring(text).iter(f"{SVG}path")) == 600 + 1  # edges plus the arrow marker
    assert elapsed < 5, f"{elapsed:.2f} s"
    nodes_dot, edges_dot, _ = parse_dot(render.dot(parts))
    assert (len(nodes_dot), len(edges_dot)) == (630, 600)
