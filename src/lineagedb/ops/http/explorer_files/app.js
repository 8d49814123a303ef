// LineageDB explorer: hash-routed pages over the JSON API (POST /api/v1/<Service>/<Method>).
// Metadata is untrusted: every value reaches the page through textContent or a text node
// (h() below), never through innerHTML, and attributes are only ever set from this code's own
// strings and numeric ids.
"use strict";

const MLMD = "ml_metadata.MetadataStoreService";
const LINEAGE = "lineagedb.v1.LineageService";
const PAGE_SIZE = 50;

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// One request's cancellation: a new page (or the Cancel button) aborts the previous one.
let current = new AbortController();

async function call(service, method, body, signal) {
  const headers = { "Content-Type": "application/json" };
  const token = sessionStorage.getItem("lineagedb.token");
  if (token) headers.Authorization = "Bearer " + token;
  const namespace = sessionStorage.getItem("lineagedb.namespace");
  if (namespace) headers["X-LineageDB-Namespace"] = namespace;
  const response = await fetch("/api/v1/" + service + "/" + method, {
    method: "POST", headers, body: JSON.stringify(body || {}), signal: signal || current.signal,
  });
  const text = await response.text();
  let data = null;
  try { data = JSON.parse(text); } catch (e) { data = null; }
  if (!response.ok) {
    throw new ApiError((data && data.status) || String(response.status), (data && data.message) || text);
  }
  return data || {};
}

// h("td", {class: "x"}, "text", childNode, ...): strings become text nodes.
function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) element.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function table(headings, rows) {
  return h("table", {},
    h("thead", {}, h("tr", {}, headings.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => (c instanceof Node && c.tagName === "TD") ? c : h("td", {}, c))))));
}

function valueText(value) {
  if (value === undefined || value === null) return "";
  const keys = Object.keys(value);
  if (keys.length === 0) return "";
  const inner = value[keys[0]];
  return typeof inner === "object" ? JSON.stringify(inner) : String(inner);
}

function time(ms) {
  if (!ms) return "";
  const date = new Date(Number(ms));
  return isNaN(date.getTime()) ? String(ms) : date.toISOString().replace("T", " ").replace(".000Z", "Z");
}

function nodeLink(kind, id, text) {
  return h("a", { href: "#/" + kind + "/" + encodeURIComponent(String(id)) }, text === undefined ? String(id) : text);
}

function showError(error) {
  if (error && error.name === "AbortError") return h("p", { class: "muted" }, "Cancelled.");
  const status = error instanceof ApiError ? error.status + ": " : "";
  return h("p", { class: "error" }, status + (error && error.message ? error.message : String(error)));
}

// ---- types (cached per session settings) ----
let typesPromise = null;
function types() {
  if (!typesPromise) {
    typesPromise = Promise.all([
      call(MLMD, "GetArtifactTypes", {}), call(MLMD, "GetExecutionTypes", {}), call(MLMD, "GetContextTypes", {}),
    ]).then(([a, e, c]) => {
      const byId = (list) => new Map((list || []).map((t) => [String(t.id), t]));
      return {
        artifact: byId(a.artifact_types), execution: byId(e.execution_types), context: byId(c.context_types),
        lists: { artifact: a.artifact_types || [], execution: e.execution_types || [], context: c.context_types || [] },
      };
    });
    typesPromise.catch(() => { typesPromise = null; });
  }
  return typesPromise;
}

function typeName(all, kind, node) {
  if (node.type) return node.type;
  const t = all[kind].get(String(node.type_id));
  return t ? t.name : "type " + node.type_id;
}

function stateOf(kind, node) {
  if (kind === "artifact") return node.state || "UNKNOWN";
  if (kind === "execution") return node.last_known_state || "UNKNOWN";
  return "";
}

// ---- pages ----
const view = () => document.getElementById("view");

function setView(...children) {
  const target = view();
  target.replaceChildren(...children);
}

async function typesPage() {
  setView(h("h1", {}, "Types"), h("p", { class: "muted" }, "Loading…"));
  const all = await types();
  const sections = [h("h1", {}, "Types")];
  for (const kind of ["artifact", "execution", "context"]) {
    sections.push(h("h2", {}, kind[0].toUpperCase() + kind.slice(1) + " types"));
    const rows = all.lists[kind].map((t) => [
      String(t.id),
      h("a", { href: "#/list/" + kind + "s?filter=" + encodeURIComponent("type = '" + t.name.replace(/'/g, "\\'") + "'") }, t.name),
      t.version || "",
      Object.entries(t.properties || {}).map(([n, v]) => n + ": " + v).join(", "),
      t.base_type || "",
    ]);
    sections.push(rows.length ? table(["id", "name", "version", "properties", "base type"], rows) : h("p", { class: "muted" }, "None."));
  }
  setView(...sections);
}

const LIST = {
  artifacts: { kind: "artifact", method: "GetArtifacts", field: "artifacts" },
  executions: { kind: "execution", method: "GetExecutions", field: "executions" },
  contexts: { kind: "context", method: "GetContexts", field: "contexts" },
};

// The page tokens of the pages before the current one, for "Previous".
let pageTrail = { key: "", tokens: [] };

async function listPage(what, params) {
  const spec = LIST[what];
  if (!spec) return notFound();
  const filter = params.get("filter") || "";
  const token = params.get("page") || "";
  const key = what + "\u0000" + filter;
  if (pageTrail.key !== key) pageTrail = { key, tokens: [] };
  const input = h("input", { type: "text", id: "filter", placeholder: "filter_query, e.g. type = 'Model'" });
  input.value = filter;
  const form = h("form", { class: "toolbar", id: "filter-form" }, input, h("button", { type: "submit" }, "Filter"));
  const status = h("div", { id: "list-status" }, h("span", { class: "spinner" }), " Loading…");
  const body = h("div", { id: "list" });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = "#/list/" + what + (input.value ? "?filter=" + encodeURIComponent(input.value) : "");
  });
  setView(h("h1", {}, spec.field[0].toUpperCase() + spec.field.slice(1)), form, status, body);
  const options = { max_result_size: PAGE_SIZE, order_by_field: { field: "ID", is_asc: true } };
  if (filter) options.filter_query = filter;
  if (token) options.next_page_token = token;
  let answer, all;
  try {
    [answer, all] = await Promise.all([call(MLMD, spec.method, { options }), types()]);
  } catch (error) {
    const shown = showError(error);
    shown.id = "filter-error";
    status.replaceChildren(shown);
    return;
  }
  const nodes = answer[spec.field] || [];
  const headings = ["id", "type", "name"].concat(spec.kind === "artifact" ? ["uri", "state"] : spec.kind === "execution" ? ["state"] : []).concat(["created"]);
  const rows = nodes.map((n) => [nodeLink(spec.kind, n.id), typeName(all, spec.kind, n), n.name || ""]
    .concat(spec.kind === "artifact" ? [n.uri || "", stateOf("artifact", n)] : spec.kind === "execution" ? [stateOf("execution", n)] : [])
    .concat([time(n.create_time_since_epoch)]));
  status.replaceChildren(h("span", { class: "muted" }, nodes.length + " shown"));
  const pager = h("div", { class: "toolbar" });
  const base = "#/list/" + what + "?filter=" + encodeURIComponent(filter);
  const trailIndex = pageTrail.tokens.indexOf(token);
  // The first page has nothing before it; a page reached by Next has the trail so far before it.
  const previousTokens = !token ? [] : trailIndex >= 0 ? pageTrail.tokens.slice(0, trailIndex) : pageTrail.tokens.slice();
  if (token) {
    const previous = previousTokens.length ? previousTokens[previousTokens.length - 1] : "";
    pager.append(h("a", { href: base + (previous ? "&page=" + encodeURIComponent(previous) : ""), id: "previous" }, "← Previous"));
  }
  if (answer.next_page_token) {
    pageTrail.tokens = previousTokens.concat(token ? [token] : []);
    pager.append(h("a", { href: base + "&page=" + encodeURIComponent(answer.next_page_token), id: "next" }, "Next →"));
  }
  body.replaceChildren(nodes.length ? table(headings, rows) : h("p", { class: "muted" }, "No " + what + "."), pager);
}

async function fetchNodes(kind, ids, signal) {
  if (!ids.length) return [];
  const method = { artifact: "GetArtifactsByID", execution: "GetExecutionsByID", context: "GetContextsByID" }[kind];
  const field = kind + "_ids";
  const out = [];
  for (let i = 0; i < ids.length; i += 1000) {
    const answer = await call(MLMD, method, { [field]: ids.slice(i, i + 1000) }, signal);
    out.push(...(answer[kind + "s"] || []));
  }
  return out;
}

function named(id, element) {
  element.id = id;
  return element;
}

function propertiesTable(properties) {
  const entries = Object.entries(properties || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (!entries.length) return h("p", { class: "muted" }, "None.");
  return table(["name", "value"], entries.map(([name, value]) => [name, h("td", { class: "value" }, valueText(value))]));
}

function download(name, type, bytes) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const anchor = h("a", { href: url, download: name });
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function base64Bytes(text) {
  const binary = atob(text || "");
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function downloads(id) {
  const message = h("span", { id: "download-status" });
  const manifest = h("button", { type: "button", id: "download-manifest" }, "Download manifest (JSON)");
  const report = h("button", { type: "button", id: "download-report" }, "Download report (HTML)");
  manifest.addEventListener("click", async () => {
    message.replaceChildren(h("span", { class: "spinner" }));
    try {
      const answer = await call(LINEAGE, "Manifest", { artifact_id: String(id) });
      download("manifest-artifact-" + id + ".json", "application/json", answer.manifest_json || "");
      message.replaceChildren("sha256 " + (answer.sha256 || ""));
    } catch (error) { message.replaceChildren(showError(error)); }
  });
  report.addEventListener("click", async () => {
    message.replaceChildren(h("span", { class: "spinner" }));
    try {
      const answer = await call(LINEAGE, "Report", { artifact_id: String(id), format: "html" });
      download("report-artifact-" + id + ".html", "text/html", base64Bytes(answer.content));
      message.replaceChildren("");
    } catch (error) { message.replaceChildren(showError(error)); }
  });
  return h("div", { class: "toolbar" }, manifest, report, message);
}

async function nodePage(kind, id) {
  setView(h("p", { class: "muted" }, h("span", { class: "spinner" }), " Loading…"));
  const all = await types();
  const [node] = await fetchNodes(kind, [id]);
  if (!node) {
    setView(h("h1", {}, kind + " " + id), h("p", { class: "error" }, "NOT_FOUND: no " + kind + " with id " + id));
    return;
  }
  const sections = [h("h1", {}, [typeName(all, kind, node), node.name].filter(Boolean).join(" ") + " (" + kind + " " + node.id + ")")];
  const links = h("div", { class: "toolbar" });
  if (kind !== "context") links.append(h("a", { href: "#/lineage/" + kind + "/" + node.id, id: "open-lineage" }, "Lineage graph"));
  if (kind !== "context") links.append(h("a", { href: "#/impact/" + kind + "/" + node.id, id: "open-impact" }, "Impact"));
  links.append(h("a", { href: "#/completeness/" + kind + "/" + node.id, id: "open-completeness" }, "Completeness"));
  if (kind !== "artifact") links.append(h("a", { href: "#/diff?a=" + kind + ":" + node.id, id: "open-diff" }, "Compare with…"));
  sections.push(links);
  if (kind === "artifact") sections.push(downloads(node.id));
  const fields = [["id", String(node.id)], ["type", typeName(all, kind, node) + " (id " + node.type_id + ")"], ["name", node.name || ""]];
  if (kind === "artifact") fields.push(["uri", node.uri || ""]);
  if (kind !== "context") fields.push(["state", stateOf(kind, node)]);
  fields.push(["external_id", node.external_id || ""], ["created", time(node.create_time_since_epoch)], ["updated", time(node.last_update_time_since_epoch)]);
  sections.push(h("h2", {}, "Fields"), named("fields", table(["field", "value"], fields.map(([n, v]) => [n, h("td", { class: "value" }, v)]))));
  sections.push(h("h2", {}, "Properties"), named("properties", propertiesTable(node.properties)));
  sections.push(h("h2", {}, "Custom properties"), named("custom-properties", propertiesTable(node.custom_properties)));
  if (kind === "context") {
    const [artifacts, executions] = await Promise.all([
      call(MLMD, "GetArtifactsByContext", { context_id: String(id) }), call(MLMD, "GetExecutionsByContext", { context_id: String(id) }),
    ]);
    sections.push(h("h2", {}, "Artifacts"), named("artifacts", table(["id", "type", "name"], (artifacts.artifacts || []).map((a) => [nodeLink("artifact", a.id), typeName(all, "artifact", a), a.name || ""]))));
    sections.push(h("h2", {}, "Executions"), named("executions", table(["id", "type", "name"], (executions.executions || []).map((e) => [nodeLink("execution", e.id), typeName(all, "execution", e), e.name || ""]))));
  } else {
    const other = kind === "artifact" ? "execution" : "artifact";
    const [events, contexts] = await Promise.all([
      call(MLMD, kind === "artifact" ? "GetEventsByArtifactIDs" : "GetEventsByExecutionIDs", { [kind + "_ids"]: [String(id)] }),
      call(MLMD, kind === "artifact" ? "GetContextsByArtifact" : "GetContextsByExecution", { [kind + "_id"]: String(id) }),
    ]);
    const list = events.events || [];
    const neighbours = new Map((await fetchNodes(other, [...new Set(list.map((e) => String(e[other + "_id"])))])).map((n) => [String(n.id), n]));
    const pathText = (event) => ((event.path && event.path.steps) || []).map((s) => (s.key !== undefined ? s.key : s.index)).join("/");
    sections.push(h("h2", {}, "Events"), named("events", list.length ? table(["type", other, "path", "time"], list.map((e) => {
      const n = neighbours.get(String(e[other + "_id"]));
      return [e.type || "UNKNOWN", nodeLink(other, e[other + "_id"], n ? typeName(all, other, n) + " " + (n.name || "") + " (" + n.id + ")" : String(e[other + "_id"])), pathText(e), time(e.milliseconds_since_epoch)];
    })) : h("p", { class: "muted" }, "None.")));
    const ctx = contexts.contexts || [];
    sections.push(h("h2", {}, "Contexts"), named("contexts", ctx.length ? table(["id", "type", "name"], ctx.map((c) => [nodeLink("context", c.id), typeName(all, "context", c), c.name || ""])) : h("p", { class: "muted" }, "None.")));
  }
  setView(...sections);
}

// The Completeness answer: which records the node's provenance lacks (digests, versions, code
// versions, parameters, unfinished steps, artifacts without a producer).
async function completenessPage(kind, id) {
  setView(h("h1", {}, "Completeness of " + kind + " " + id), h("p", { class: "muted" }, h("span", { class: "spinner" }), " Loading…"));
  const answer = await call(LINEAGE, "Completeness", { node: { [kind + "_id"]: String(id) } });
  const gaps = answer.gaps || [];
  const score = Number(answer.score || 0);
  const refLink = (ref) => {
    for (const k of ["artifact", "execution", "context"]) {
      if (ref && ref[k + "_id"] !== undefined) return nodeLink(k, ref[k + "_id"], k + " " + ref[k + "_id"]);
    }
    return "";
  };
  const summary = h("p", { id: "completeness-score" }, "Score " + (score * 100).toFixed(1) + "% (" + (answer.checks || 0) + " checks, " + gaps.length + " gaps)");
  const sections = [h("h1", {}, "Completeness of " + kind + " " + id), h("div", { class: "toolbar" }, nodeLink(kind, id, "Node page")), summary];
  if (answer.truncated && answer.truncated !== "TRUNCATION_UNSPECIFIED") sections.push(h("p", { class: "error" }, "Truncated: " + answer.truncated));
  sections.push(gaps.length ? named("gaps", table(["kind", "node", "message"], gaps.map((g) => [g.kind || "", refLink(g.node), h("td", { class: "value" }, g.message || "")])))
    : h("p", { class: "muted" }, "Nothing missing."));
  setView(...sections);
}

// The Impact answer: everything downstream of a node, summarized for a decision (affected
// artifacts by type and state, the runs and pipelines they belong to, a shortest path to each).
function refKey(ref) {
  for (const k of ["artifact", "execution", "context"]) {
    if (ref && ref[k + "_id"] !== undefined) return k + ":" + ref[k + "_id"];
  }
  return "";
}

function keyLink(key) {
  const [k, id] = key.split(":");
  return nodeLink(k, id, k + " " + id);
}

const listParam = (text) => (text || "").split(",").map((t) => t.trim()).filter(Boolean);

async function impactPage(kind, id, params) {
  const typesBox = h("input", { type: "text", id: "impact-types", size: 24, placeholder: "e.g. Model, PushedModel" });
  const statesBox = h("input", { type: "text", id: "impact-states", size: 16, placeholder: "e.g. LIVE" });
  typesBox.value = params.get("types") || "";
  statesBox.value = params.get("states") || "";
  const form = h("form", { class: "toolbar", id: "impact-form" }, h("label", {}, "Artifact types ", typesBox),
    h("label", {}, "States ", statesBox), h("button", { type: "submit" }, "Filter"), nodeLink(kind, id, "Node page"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    if (typesBox.value.trim()) query.set("types", typesBox.value.trim());
    if (statesBox.value.trim()) query.set("states", statesBox.value.trim());
    location.hash = "#/impact/" + kind + "/" + id + (query.toString() ? "?" + query.toString() : "");
  });
  const result = h("div", { id: "impact" }, h("span", { class: "spinner" }), " Walking downstream…");
  setView(h("h1", {}, "Impact of " + kind + " " + id), form, result);
  let answer;
  try {
    answer = await call(LINEAGE, "Impact", {
      node: { [kind + "_id"]: String(id) }, artifact_types: listParam(params.get("types")), artifact_states: listParam(params.get("states")),
    });
  } catch (error) {
    const shown = showError(error);
    shown.id = "impact-error";
    result.replaceChildren(shown);
    return;
  }
  const all = await types();
  const artifacts = answer.artifacts || [], executions = answer.executions || [], contexts = answer.contexts || [];
  const from = new Map((answer.tree || []).map((step) => [refKey(step.node), refKey(step.reached_from)]));
  const start = kind + ":" + id;
  // A shortest path from the start: follow reached_from back (the tree has one entry per node).
  const pathTo = (key) => {
    const keys = [key];
    while (from.has(keys[0]) && keys[0] !== start && keys.length <= from.size) keys.unshift(from.get(keys[0]));
    return h("span", { class: "path" }, keys.flatMap((k, i) => (i ? [" → ", keyLink(k)] : [keyLink(k)])));
  };
  const parts = [h("p", { id: "impact-summary" }, artifacts.length + " affected artifacts, " + executions.length + " executions, " +
    contexts.length + " contexts, depth " + (answer.depth || 0))];
  if (answer.truncated && answer.truncated !== "TRUNCATION_UNSPECIFIED") {
    parts.push(h("p", { class: "error", id: "impact-truncated" }, "Cut short (" + answer.truncated + "): " + (answer.frontier || []).length + " nodes not walked past"));
  }
  parts.push(h("h2", {}, "Affected artifacts by type and state"), named("impact-groups", table(["type", "state", "count"],
    (answer.groups || []).map((g) => [g.type || "", g.state || "", String(g.count || 0)]))));
  parts.push(h("h2", {}, "Affected artifacts"), named("impact-artifacts", artifacts.length ? table(["artifact", "type", "state", "uri", "path from " + kind + " " + id],
    artifacts.map((a) => [nodeLink("artifact", a.id, (a.name ? a.name + " " : "") + "(" + a.id + ")"), typeName(all, "artifact", a), stateOf("artifact", a),
      h("td", { class: "value" }, a.uri || ""), pathTo("artifact:" + a.id)])) : h("p", { class: "muted" }, "None.")));
  parts.push(h("h2", {}, "Pipelines and runs"), named("impact-contexts", contexts.length ? table(["context", "type", "name"],
    contexts.map((c) => [nodeLink("context", c.id), typeName(all, "context", c), c.name || ""])) : h("p", { class: "muted" }, "None.")));
  result.replaceChildren(...parts);
}

// Run comparison (the Diff answer) of two executions or two contexts (runs).
function refOf(text) {
  const match = /^(context|execution):(\d+)$/.exec(text || "");
  return match ? { kind: match[1], id: match[2] } : null;
}

async function diffPage(params) {
  const a = refOf(params.get("a")), b = refOf(params.get("b"));
  const kind = h("select", { id: "diff-kind" }, h("option", { value: "context" }, "runs (contexts)"), h("option", { value: "execution" }, "executions"));
  const first = h("input", { type: "text", id: "diff-a", size: 8, placeholder: "id" });
  const second = h("input", { type: "text", id: "diff-b", size: 8, placeholder: "id" });
  const upstream = h("input", { type: "checkbox", id: "diff-upstream" });
  if (a) { kind.value = a.kind; first.value = a.id; }
  if (b) second.value = b.id;
  upstream.checked = params.get("upstream") === "1";
  const form = h("form", { class: "toolbar", id: "diff-form" }, h("label", {}, "Compare ", kind), h("label", {}, "A ", first),
    h("label", {}, "B ", second), h("label", {}, upstream, " and their upstream closures"), h("button", { type: "submit" }, "Compare"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = "#/diff?a=" + kind.value + ":" + encodeURIComponent(first.value.trim()) + "&b=" + kind.value + ":" +
      encodeURIComponent(second.value.trim()) + (upstream.checked ? "&upstream=1" : "");
  });
  const result = h("div", { id: "diff" });
  setView(h("h1", {}, "Compare runs"), form, result);
  if (!a || !b) {
    if (params.get("b")) result.replaceChildren(h("p", { class: "error", id: "diff-error" }, "Give two numeric ids of the same kind."));
    return;
  }
  result.replaceChildren(h("span", { class: "spinner" }), " Comparing…");
  const ref = (r) => ({ [r.kind + "_id"]: r.id });
  let answer;
  try {
    answer = await call(LINEAGE, "Diff", { a: ref(a), b: ref(b), upstream: upstream.checked });
  } catch (error) {
    const shown = showError(error);
    shown.id = "diff-error";
    result.replaceChildren(shown);
    return;
  }
  const changes = answer.changes || [];
  const parts = [h("p", { id: "diff-summary" }, changes.length + " differences between " + a.kind + " " + a.id + " and " + b.kind + " " + b.id +
    (upstream.checked ? " (" + (answer.upstream_executions_compared || 0) + " upstream executions and " + (answer.upstream_artifacts_compared || 0) + " artifacts compared)" : ""))];
  if (answer.truncated && answer.truncated !== "TRUNCATION_UNSPECIFIED") parts.push(h("p", { class: "error" }, "Truncated: " + answer.truncated));
  if (changes.length) {
    parts.push(named("changes", table(["section", "key", "change", "A", "B", "fields"], changes.map((c) => [
      c.section || "", c.key || "", c.kind || "", h("td", { class: "value" }, c.before || ""), h("td", { class: "value" }, c.after || ""), (c.fields || []).join(", "),
    ]))));
  }
  result.replaceChildren(...parts);
}

function notFound() {
  setView(h("h1", {}, "Not found"), h("p", {}, "No such page. Start from ", h("a", { href: "#/types" }, "the types"), "."));
}

async function route() {
  current.abort();
  current = new AbortController();
  const hash = location.hash.replace(/^#/, "") || "/list/artifacts";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts[0] === "types") return await typesPage();
    if (parts[0] === "list" && parts.length === 2) return await listPage(parts[1], params);
    if (["artifact", "execution", "context"].includes(parts[0]) && /^\d+$/.test(parts[1] || "")) return await nodePage(parts[0], parts[1]);
    if (parts[0] === "diff") return await diffPage(params);
    if (parts[0] === "impact" && ["artifact", "execution"].includes(parts[1]) && /^\d+$/.test(parts[2] || "")) {
      return await impactPage(parts[1], parts[2], params);
    }
    if (parts[0] === "completeness" && ["artifact", "execution", "context"].includes(parts[1]) && /^\d+$/.test(parts[2] || "")) {
      return await completenessPage(parts[1], parts[2]);
    }
    if (parts[0] === "lineage" && ["artifact", "execution"].includes(parts[1]) && /^\d+$/.test(parts[2] || "")) {
      return await window.LineageGraph.page(view(), { call, h, types, typeName, stateOf, fetchNodes, showError, MLMD }, parts[1], parts[2]);
    }
    notFound();
  } catch (error) {
    if (error && error.name === "AbortError") return;
    setView(showError(error));
  }
}

function setupSession() {
  const token = document.getElementById("token");
  const namespace = document.getElementById("namespace");
  token.value = sessionStorage.getItem("lineagedb.token") || "";
  namespace.value = sessionStorage.getItem("lineagedb.namespace") || "";
  document.getElementById("session").addEventListener("submit", (event) => {
    event.preventDefault();
    for (const [key, input] of [["lineagedb.token", token], ["lineagedb.namespace", namespace]]) {
      if (input.value) sessionStorage.setItem(key, input.value.trim());
      else sessionStorage.removeItem(key);
    }
    typesPromise = null;
    route();
  });
}

window.addEventListener("hashchange", route);
setupSession();
route();
