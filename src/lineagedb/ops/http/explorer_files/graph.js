// The lineage graph: nodes fetched hop by hop from events, drawn as SVG with createElementNS.
// The layout (longest-path layers, one barycentre ordering sweep) runs once per expansion or
// collapse, never per frame; highlighting a path only toggles classes.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const COLUMN = 230; // px between layer columns
  const ROW = 32;     // px between nodes of a column
  const MAX_ROWS = 40; // a wider layer wraps into several columns
  const NODE_W = 186, NODE_H = 22;

  function s(tag, attrs, text) {
    const element = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) element.setAttribute(name, String(value));
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function isInput(type) { return /INPUT/.test(type || ""); }
  function isOutput(type) { return /OUTPUT/.test(type || ""); }

  function shorten(text, n) { return text.length > n ? text.slice(0, n - 1) + "…" : text; }

  async function page(root, api, kind, id) {
    const { h, call, types, typeName, stateOf, fetchNodes, showError, MLMD } = api;
    const all = await types();
    const nodes = new Map(); // key -> {key, kind, id, label, state, parent, expanded}
    const edges = new Map(); // "from>to" -> {from, to} (data flows from -> to)
    const focusKey = kind[0] + ":" + id;
    let selected = null;
    let controller = null;

    const direction = h("select", { id: "direction" },
      h("option", { value: "both" }, "upstream and downstream"),
      h("option", { value: "upstream" }, "upstream (provenance)"),
      h("option", { value: "downstream" }, "downstream (impact)"));
    const expandAll = h("button", { type: "button", id: "expand-level" }, "Expand one level");
    const cancel = h("button", { type: "button", id: "cancel", hidden: "" }, "Cancel");
    const status = h("span", { id: "graph-status", class: "muted" });
    const chosen = h("div", { class: "selected", id: "selected" });
    const box = h("div", { class: "graph-box", id: "graph" });
    root.replaceChildren(
      h("h1", {}, "Lineage of " + kind + " " + id),
      h("div", { class: "toolbar" }, h("label", {}, "Direction ", direction), expandAll, cancel, status,
        h("a", { href: "#/" + kind + "/" + id }, "Node page")),
      legend(), chosen, box);

    function makeNode(k, n, parent) {
      const key = k[0] + ":" + n.id;
      return { key, kind: k, id: String(n.id), label: typeName(all, k, n) + (n.name ? " " + n.name : "") + " #" + n.id,
        state: stateOf(k, n), parent, expanded: false };
    }

    // Adds the neighbours of the given nodes (one events request per kind, one fetch per kind).
    async function expand(keys) {
      const mode = direction.value;
      controller = new AbortController();
      const signal = controller.signal;
      cancel.hidden = false;
      status.replaceChildren(h("span", { class: "spinner" }), " Loading…");
      const started = performance.now();
      try {
        const byKind = { artifact: [], execution: [] };
        for (const key of keys) byKind[nodes.get(key).kind].push(nodes.get(key).id);
        const found = []; // [from, to, parentKey, newKind, newId]
        const requests = [];
        if (byKind.artifact.length) requests.push(call(MLMD, "GetEventsByArtifactIDs", { artifact_ids: byKind.artifact }, signal));
        if (byKind.execution.length) requests.push(call(MLMD, "GetEventsByExecutionIDs", { execution_ids: byKind.execution }, signal));
        const answers = await Promise.all(requests);
        const wantArtifacts = new Set(byKind.artifact), wantExecutions = new Set(byKind.execution);
        for (const answer of answers) {
          for (const event of answer.events || []) {
            const a = "a:" + event.artifact_id, e = "e:" + event.execution_id;
            const flow = isInput(event.type) ? [a, e] : isOutput(event.type) ? [e, a] : null;
            if (!flow) continue;
            // Which endpoint is being expanded, and is its neighbour in the chosen direction?
            for (const [self, other, wanted] of [[a, e, wantArtifacts.has(String(event.artifact_id))], [e, a, wantExecutions.has(String(event.execution_id))]]) {
              if (!wanted) continue;
              const upstream = flow[1] === self;
              if ((upstream && mode === "downstream") || (!upstream && mode === "upstream")) continue;
              found.push({ flow, self, other });
            }
          }
        }
        const missing = { artifact: new Set(), execution: new Set() };
        for (const f of found) {
          if (!nodes.has(f.other)) missing[f.other[0] === "a" ? "artifact" : "execution"].add(f.other.slice(2));
        }
        const [artifacts, executions] = await Promise.all([
          fetchNodes("artifact", [...missing.artifact], signal), fetchNodes("execution", [...missing.execution], signal)]);
        const fetched = new Map();
        for (const n of artifacts) fetched.set("a:" + n.id, ["artifact", n]);
        for (const n of executions) fetched.set("e:" + n.id, ["execution", n]);
        for (const f of found) {
          if (!nodes.has(f.other)) {
            const entry = fetched.get(f.other);
            if (!entry) continue; // not readable by this caller, or gone: never shown
            nodes.set(f.other, makeNode(entry[0], entry[1], f.self));
          }
          edges.set(f.flow[0] + ">" + f.flow[1], { from: f.flow[0], to: f.flow[1] });
        }
        for (const key of keys) nodes.get(key).expanded = true;
        const fetchedAt = performance.now();
        draw();
        const drawnAt = performance.now();
        const timing = { nodes: nodes.size, edges: edges.size, fetchMs: fetchedAt - started, drawMs: drawnAt - fetchedAt, totalMs: drawnAt - started };
        (window.explorerTimings = window.explorerTimings || []).push(timing);
        status.replaceChildren(nodes.size + " nodes, " + edges.size + " edges (drawn in " + Math.round(timing.drawMs) + " ms)");
      } catch (error) {
        status.replaceChildren(showError(error));
      } finally {
        cancel.hidden = true;
        controller = null;
      }
    }

    function collapse(key) {
      // Remove what this node's expansion brought in, transitively (the discovery tree under it).
      const children = new Map();
      for (const n of nodes.values()) {
        if (n.parent) {
          if (!children.has(n.parent)) children.set(n.parent, []);
          children.get(n.parent).push(n.key);
        }
      }
      const stack = [...(children.get(key) || [])];
      while (stack.length) {
        const k = stack.pop();
        if (k === focusKey) continue;
        nodes.delete(k);
        stack.push(...(children.get(k) || []));
      }
      for (const [edgeKey, edge] of edges) {
        if (!nodes.has(edge.from) || !nodes.has(edge.to)) edges.delete(edgeKey);
      }
      nodes.get(key).expanded = false;
      if (selected && !nodes.has(selected)) selected = null;
      draw();
      status.replaceChildren(nodes.size + " nodes, " + edges.size + " edges");
    }

    function layout() {
      // Longest-path layering over the visible edges (Kahn); nodes left in a cycle keep layer 0.
      const incoming = new Map(), outgoing = new Map();
      for (const k of nodes.keys()) { incoming.set(k, []); outgoing.set(k, []); }
      for (const e of edges.values()) { outgoing.get(e.from).push(e.to); incoming.get(e.to).push(e.from); }
      const layer = new Map(), pending = new Map();
      const queue = [];
      for (const k of nodes.keys()) { pending.set(k, incoming.get(k).length); layer.set(k, 0); if (!incoming.get(k).length) queue.push(k); }
      for (let i = 0; i < queue.length; i++) {
        const k = queue[i];
        for (const next of outgoing.get(k)) {
          layer.set(next, Math.max(layer.get(next), layer.get(k) + 1));
          pending.set(next, pending.get(next) - 1);
          if (pending.get(next) === 0) queue.push(next);
        }
      }
      const layers = [];
      for (const [k, l] of layer) (layers[l] = layers[l] || []).push(k);
      const order = new Map();
      const position = new Map();
      let x = 20;
      for (const members of layers) {
        if (!members) continue;
        // Barycentre of the predecessors' rows, then id, so a node sits near what produced it.
        const weight = (k) => {
          const rows = incoming.get(k).filter((p) => order.has(p)).map((p) => order.get(p));
          return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : -1;
        };
        const weights = new Map(members.map((k) => [k, weight(k)]));
        members.sort((p, q) => weights.get(p) - weights.get(q) || p.localeCompare(q, "en", { numeric: true }));
        members.forEach((k, i) => {
          order.set(k, i);
          position.set(k, { x: x + Math.floor(i / MAX_ROWS) * COLUMN, y: 20 + (i % MAX_ROWS) * ROW });
        });
        x += Math.ceil(members.length / MAX_ROWS) * COLUMN;
      }
      return { position, width: x, height: 20 + Math.min(MAX_ROWS, Math.max(1, ...layers.map((m) => (m ? m.length : 0)))) * ROW + 10 };
    }

    function draw() {
      const { position, width, height } = layout();
      const svg = s("svg", { class: "lineage", width, height, viewBox: "0 0 " + width + " " + height, role: "img" });
      const defs = s("defs");
      const marker = s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, markerUnits: "userSpaceOnUse", orient: "auto" });
      marker.append(s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }));
      defs.append(marker);
      const edgeLayer = s("g", { class: "edges" });
      const nodeLayer = s("g", { class: "nodes" });
      for (const [edgeKey, e] of edges) {
        const p = position.get(e.from), q = position.get(e.to);
        const x1 = p.x + NODE_W, y1 = p.y + NODE_H / 2, x2 = q.x, y2 = q.y + NODE_H / 2;
        const mid = (x1 + x2) / 2;
        edgeLayer.append(s("path", { class: "edge", "data-key": edgeKey, d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)" }));
      }
      for (const n of nodes.values()) {
        const p = position.get(n.key);
        const state = "s-" + (n.state || "unknown").toLowerCase().replace(/[^a-z_]/g, "");
        const g = s("g", { class: "node " + n.kind + (n.key === focusKey ? " focus" : "") + (n.expanded ? " expanded" : " frontier"),
          "data-key": n.key, transform: `translate(${p.x},${p.y})` });
        g.append(s("title", {}, n.label + " — " + (n.state || "")));
        g.append(n.kind === "artifact"
          ? s("ellipse", { cx: NODE_W / 2, cy: NODE_H / 2, rx: NODE_W / 2, ry: NODE_H / 2, class: state })
          : s("rect", { x: 0, y: 0, width: NODE_W, height: NODE_H, rx: 3, class: state }));
        g.append(s("text", { x: NODE_W / 2, y: NODE_H / 2 + 4, "text-anchor": "middle" }, shorten(n.label, 30)));
        nodeLayer.append(g);
      }
      svg.append(defs, edgeLayer, nodeLayer);
      svg.addEventListener("click", onClick);
      box.replaceChildren(svg);
      highlight();
    }

    function highlight() {
      const svg = box.querySelector("svg");
      if (!svg) return;
      for (const element of svg.querySelectorAll(".on-path")) element.classList.remove("on-path");
      chosen.replaceChildren();
      if (!selected || !nodes.has(selected)) return;
      const path = [];
      for (let k = selected; k; k = nodes.get(k) && nodes.get(k).parent) path.push(k);
      const onPath = new Set(path);
      for (const g of svg.querySelectorAll("g.node")) if (onPath.has(g.getAttribute("data-key"))) g.classList.add("on-path");
      for (const edge of svg.querySelectorAll("path.edge")) {
        const [from, to] = edge.getAttribute("data-key").split(">");
        if (onPath.has(from) && onPath.has(to) && (nodes.get(from).parent === to || nodes.get(to).parent === from)) edge.classList.add("on-path");
      }
      const n = nodes.get(selected);
      chosen.append("Selected: ", h("strong", { id: "selected-label" }, n.label), " (" + (n.state || "") + ", " + (path.length - 1) + " hops from the start) ",
        h("a", { href: "#/" + n.kind + "/" + n.id }, "open node page"), " · ", h("a", { href: "#/lineage/" + n.kind + "/" + n.id }, "lineage from here"));
    }

    async function onClick(event) {
      const g = event.target.closest("g.node");
      if (!g || controller) return;
      const key = g.getAttribute("data-key");
      selected = key;
      if (nodes.get(key).expanded) collapse(key);
      else await expand([key]);
      highlight();
    }

    expandAll.addEventListener("click", () => {
      if (controller) return;
      const frontier = [...nodes.values()].filter((n) => !n.expanded).map((n) => n.key);
      if (frontier.length) expand(frontier);
    });
    cancel.addEventListener("click", () => { if (controller) controller.abort(); });

    const [start] = await fetchNodes(kind, [id]);
    if (!start) {
      box.replaceChildren(h("p", { class: "error" }, "NOT_FOUND: no " + kind + " with id " + id));
      return;
    }
    nodes.set(focusKey, makeNode(kind, start, null));
    await expand([focusKey]);
  }

  function legend() {
    const svg = s("svg", { class: "legend", width: 1100, height: 30, role: "img" });
    let x = 4;
    const item = (shape, cls, text) => {
      svg.append(shape === "ellipse" ? s("ellipse", { cx: x + 14, cy: 15, rx: 14, ry: 9, class: cls }) : s("rect", { x, y: 6, width: 28, height: 18, rx: 3, class: cls }));
      svg.append(s("text", { x: x + 32, y: 19 }, text));
      x += 44 + text.length * 7;
    };
    item("ellipse", "s-unknown", "artifact");
    item("rect", "s-unknown", "execution");
    item("rect", "s-live", "LIVE / COMPLETE");
    item("rect", "s-pending", "PENDING / NEW");
    item("rect", "s-running", "RUNNING");
    item("rect", "s-cached", "CACHED");
    item("rect", "s-failed", "FAILED");
    item("rect", "s-deleted", "DELETED / ABANDONED / CANCELED");
    return svg;
  }

  window.LineageGraph = { page };
})();
