// Gregor's web console: a single page, no framework, no build step. Pages are
// chosen by the URL hash (#/topics/orders/messages); every page renders from
// the JSON API under /api/. Text from the cluster is only ever put into the
// page as text nodes (h() below), never as HTML.
"use strict";

const app = document.getElementById("app");
const errorBox = document.getElementById("error");
// Timers of the current page (live tail, lag polling), stopped on navigation.
let timers = [];
// Lag samples per group, kept while the page is open: {t, lag}[].
const lagHistory = new Map();
const LAG_POINTS = 120;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function showError(msg) {
  errorBox.textContent = msg;
  errorBox.hidden = !msg;
}

async function api(path, opts = {}) {
  const init = { method: opts.method || "GET", headers: {} };
  if (opts.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  }
  const resp = await fetch(path, init);
  let data = null;
  try { data = await resp.json(); } catch (_) { /* not JSON */ }
  if (!resp.ok) {
    const err = new Error((data && data.error) || `${resp.status} ${resp.statusText}`);
    err.status = resp.status;
    throw err;
  }
  return data;
}

const enc = encodeURIComponent;
const fmtNum = (n) => (n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US"));
const fmtBytes = (n) => {
  if (n === null || n === undefined) return "-";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0; let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${u[i]}`;
};
const fmtTime = (ms) => (ms >= 0 ? new Date(ms).toISOString().replace("T", " ").replace("Z", " UTC") : "-");

function table(columns, rows, attrs) {
  return h("table", attrs || {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.title)))),
    h("tbody", {}, rows.length
      ? rows.map((r) => h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : null }, c.cell(r)))))
      : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "None"))));
}

function pager(total, page, size, go) {
  const pages = Math.max(1, Math.ceil(total / size));
  return h("div", { class: "pager" },
    h("button", { class: "secondary", disabled: page <= 0, onclick: () => go(page - 1) }, "‹ Prev"),
    h("span", { class: "muted" }, `page ${page + 1} of ${pages} (${fmtNum(total)} total)`),
    h("button", { class: "secondary", disabled: page + 1 >= pages, onclick: () => go(page + 1) }, "Next ›"));
}

function card(k, v, id) {
  return h("div", { class: "card" }, h("div", { class: "v", id }, v), h("div", { class: "k" }, k));
}

// ---------------------------------------------------------------- routing
const routes = [
  [/^#\/brokers$/, pageBrokers, "brokers"],
  [/^#\/topics$/, pageTopics, "topics"],
  [/^#\/topics\/([^/]+)(?:\/(partitions|configs|messages|produce))?$/, pageTopic, "topics"],
  [/^#\/groups$/, pageGroups, "groups"],
  [/^#\/groups\/([^/]+)$/, pageGroup, "groups"],
];

async function route() {
  timers.forEach((t) => clearInterval(t));
  timers = [];
  showError("");
  const hash = location.hash.split("?")[0] || "#/brokers";
  for (const [re, page, nav] of routes) {
    const m = hash.match(re);
    if (!m) continue;
    document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.dataset.nav === nav));
    app.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      await page(...m.slice(1).map((s) => (s === undefined ? s : decodeURIComponent(s))));
    } catch (e) {
      app.replaceChildren();
      showError(e.message);
    }
    app.dataset.loaded = hash;
    return;
  }
  location.hash = "#/brokers";
}

function query() {
  return new URLSearchParams(location.hash.split("?")[1] || "");
}

// ---------------------------------------------------------------- brokers
async function pageBrokers() {
  const c = await api("/api/cluster");
  const q = c.quorum;
  app.replaceChildren(
    h("h1", {}, "Brokers"),
    h("div", { class: "cards" },
      card("cluster id", c.cluster_id || "-"),
      card("brokers", c.brokers.length, "broker-count"),
      card("active controller", c.controller_id >= 0 ? c.controller_id : "-"),
      card("console connects to", c.bootstrap)),
    table([
      { title: "Node", cell: (b) => b.node_id },
      { title: "Host", cell: (b) => b.host },
      { title: "Port", cell: (b) => b.port },
      { title: "Rack", cell: (b) => b.rack || "-" },
      { title: "Role", cell: (b) => (b.is_controller ? "controller" : "") },
    ], c.brokers, { id: "brokers" }),
    h("h2", {}, "Controller quorum"),
    q ? h("div", {},
      h("p", {}, `Leader ${q.leader_id}, epoch ${q.leader_epoch}, high watermark ${fmtNum(q.high_watermark)}`),
      table([
        { title: "Replica", cell: (r) => r.replica_id },
        { title: "Role", cell: (r) => r.role },
        { title: "Log end offset", num: true, cell: (r) => fmtNum(r.log_end_offset) },
        { title: "Lag", num: true, cell: (r) => fmtNum(r.lag) },
        { title: "Last caught up", cell: (r) => fmtTime(r.last_caught_up_timestamp) },
      ], [...q.voters.map((v) => ({ ...v, role: v.replica_id === q.leader_id ? "leader" : "voter" })),
        ...q.observers.map((o) => ({ ...o, role: "observer" }))], { id: "quorum" }))
      : h("p", { class: "muted" }, `No Raft quorum described (${c.quorum_error || "single node"}).`));
}

// ---------------------------------------------------------------- topics
async function pageTopics() {
  const params = query();
  const q = params.get("q") || "";
  const page = Number(params.get("page") || 0);
  const size = 50;
  const data = await api(`/api/topics?q=${enc(q)}&page=${page}&size=${size}`);
  const go = (p, text = q) => { location.hash = `#/topics?q=${enc(text)}&page=${p}`; };
  const search = h("input", { type: "search", id: "topic-search", placeholder: "Search topics", value: q,
    onkeydown: (e) => { if (e.key === "Enter") go(0, search.value); } });
  const form = createTopicForm();
  app.replaceChildren(
    h("h1", {}, "Topics"),
    h("div", { class: "toolbar" }, search,
      h("button", { onclick: () => go(0, search.value) }, "Search"),
      h("button", { class: "secondary", onclick: () => { form.hidden = !form.hidden; } }, "New topic")),
    form,
    table([
      { title: "Topic", cell: (t) => h("a", { href: `#/topics/${enc(t.name)}` }, t.name) },
      { title: "Partitions", num: true, cell: (t) => t.partitions },
      { title: "Replication", num: true, cell: (t) => t.replication_factor },
      { title: "Under-replicated", num: true, cell: (t) => h("span", { class: t.under_replicated ? "bad" : null }, t.under_replicated) },
      { title: "Offline", num: true, cell: (t) => h("span", { class: t.offline ? "bad" : null }, t.offline) },
      { title: "", cell: (t) => (t.internal ? h("span", { class: "muted" }, "internal") : "") },
    ], data.topics, { id: "topics" }),
    pager(data.total, page, size, (p) => go(p)));
}

function createTopicForm() {
  const name = h("input", { id: "new-topic-name", placeholder: "name" });
  const parts = h("input", { id: "new-topic-partitions", type: "number", min: 1, placeholder: "broker default" });
  const rf = h("input", { id: "new-topic-rf", type: "number", min: 1, placeholder: "broker default" });
  const out = h("div");
  const form = h("div", { class: "form", hidden: true },
    h("label", {}, "Name"), name,
    h("label", {}, "Partitions"), parts,
    h("label", {}, "Replication factor"), rf,
    h("span"), h("div", {}, h("button", { onclick: async () => {
      try {
        await api("/api/topics", { method: "POST", body: {
          name: name.value,
          partitions: parts.value ? Number(parts.value) : null,
          replication_factor: rf.value ? Number(rf.value) : null,
        } });
        location.hash = `#/topics/${enc(name.value)}`;
      } catch (e) { out.replaceChildren(h("div", { class: "notice bad" }, e.message)); }
    } }, "Create"), out));
  return form;
}

async function pageTopic(name, tab = "partitions") {
  const base = `#/topics/${enc(name)}`;
  const tabs = h("div", { class: "tabs" }, ["partitions", "configs", "messages", "produce"].map((t) =>
    h("a", { href: `${base}/${t}`, class: t === tab ? "active" : null, id: `tab-${t}` }, t[0].toUpperCase() + t.slice(1))));
  const body = h("div", { id: `topic-${tab}` });
  const del = h("button", { class: "danger", onclick: () => {
    del.replaceWith(h("span", {}, `Delete topic ${name} and all its records? `,
      h("button", { class: "danger", onclick: async () => {
        try { await api(`/api/topics/${enc(name)}`, { method: "DELETE" }); location.hash = "#/topics"; } catch (e) { showError(e.message); }
      } }, "Yes, delete"), " ",
      h("button", { class: "secondary", onclick: () => route() }, "Cancel")));
  } }, "Delete topic");
  app.replaceChildren(h("div", { class: "toolbar" }, h("h1", { id: "topic-name" }, name), h("span", { style: "flex:1" }), del), tabs, body);
  await ({ partitions: topicPartitions, configs: topicConfigs, messages: topicMessages, produce: topicProduce })[tab](name, body);
}

async function topicPartitions(name, body) {
  const page = Number(query().get("page") || 0);
  const size = 100;
  const d = await api(`/api/topics/${enc(name)}?page=${page}&size=${size}`);
  const total = d.partitions.reduce((s, p) => s + Math.max(0, (p.latest_offset ?? 0) - (p.earliest_offset ?? 0)), 0);
  body.replaceChildren(
    h("div", { class: "cards" },
      card("partitions", d.total),
      card("topic id", d.topic_id),
      card("records (this page)", fmtNum(total))),
    table([
      { title: "Partition", num: true, cell: (p) => p.partition },
      { title: "Leader", num: true, cell: (p) => (p.leader >= 0 ? p.leader : h("span", { class: "bad" }, "none")) },
      { title: "Replicas", cell: (p) => p.replicas.join(", ") },
      { title: "ISR", cell: (p) => h("span", { class: p.isr.length < p.replicas.length ? "bad" : null }, p.isr.join(", ")) },
      { title: "Earliest", num: true, cell: (p) => fmtNum(p.earliest_offset) },
      { title: "Latest", num: true, cell: (p) => fmtNum(p.latest_offset) },
      { title: "Size", num: true, cell: (p) => fmtBytes(p.size_bytes) },
      { title: "", cell: (p) => h("a", { href: `#/topics/${enc(name)}/messages?partition=${p.partition}&offset=${p.earliest_offset ?? 0}` }, "browse") },
    ], d.partitions, { id: "partitions" }),
    pager(d.total, page, size, (p) => { location.hash = `#/topics/${enc(name)}/partitions?page=${p}`; }));
}

async function topicConfigs(name, body) {
  const configs = await api(`/api/topics/${enc(name)}/configs`);
  const inputs = new Map();
  const out = h("div", { id: "config-result" });
  const rows = configs.map((c) => {
    const input = h("input", { value: c.value ?? "", disabled: c.read_only, "data-config": c.name, size: 28 });
    inputs.set(c.name, { input, original: c.value ?? "" });
    return { ...c, input };
  });
  const changes = () => {
    const set = {};
    for (const [k, { input, original }] of inputs) if (input.value !== original) set[k] = input.value;
    return set;
  };
  const review = async () => {
    const set = changes();
    if (!Object.keys(set).length) { out.replaceChildren(h("div", { class: "notice" }, "Nothing changed.")); return; }
    try {
      await api(`/api/topics/${enc(name)}/configs`, { method: "POST", body: { set, validate_only: true } });
    } catch (e) { out.replaceChildren(h("div", { class: "notice bad" }, `The broker refuses this change: ${e.message}`)); return; }
    out.replaceChildren(h("div", { class: "notice" },
      h("p", {}, "The broker accepts these changes. Apply them?"),
      table([
        { title: "Config", cell: (r) => r[0] },
        { title: "From", cell: (r) => inputs.get(r[0]).original },
        { title: "To", cell: (r) => r[1] },
      ], Object.entries(set), { id: "config-diff" }),
      h("div", { class: "toolbar" },
        h("button", { id: "config-confirm", onclick: async () => {
          try {
            await api(`/api/topics/${enc(name)}/configs`, { method: "POST", body: { set } });
            await topicConfigs(name, body);
            document.getElementById("config-result").replaceChildren(h("div", { class: "notice", id: "config-applied" }, `Applied ${Object.keys(set).length} change(s).`));
          } catch (e) { out.replaceChildren(h("div", { class: "notice bad" }, e.message)); }
        } }, "Confirm"),
        h("button", { class: "secondary", onclick: () => out.replaceChildren() }, "Cancel"))));
  };
  body.replaceChildren(
    h("div", { class: "toolbar" }, h("button", { id: "config-review", onclick: review }, "Review changes"),
      h("span", { class: "muted" }, "Edit values, then review: nothing is changed before you confirm.")),
    out,
    table([
      { title: "Config", cell: (c) => c.name },
      { title: "Value", cell: (c) => c.input },
      { title: "Source", cell: (c) => h("span", { class: "muted" }, c.source) },
    ], rows, { id: "configs" }));
}

function renderValue(v) {
  if (!v || v.kind === "null") return h("span", { class: "muted" }, "null");
  return h("div", {}, h("div", { class: "kind" }, `${v.kind} · ${fmtBytes(v.size)}${v.truncated ? " · cut" : ""}`), h("pre", {}, v.text));
}

async function topicMessages(name, body) {
  const params = query();
  const d = await api(`/api/topics/${enc(name)}?size=500`);
  const partSel = h("select", { id: "browse-partition" }, d.partitions.map((p) => h("option", { value: p.partition }, `partition ${p.partition}`)));
  partSel.value = params.get("partition") || "0";
  const mode = h("select", { id: "browse-mode" },
    h("option", { value: "latest" }, "latest"), h("option", { value: "offset" }, "from offset"), h("option", { value: "timestamp" }, "from time"));
  const at = h("input", { id: "browse-at", placeholder: "offset, or 2024-01-01T00:00:00Z", size: 26 });
  if (params.get("offset")) { mode.value = "offset"; at.value = params.get("offset"); }
  const limit = h("select", { id: "browse-limit" }, [20, 50, 100, 500].map((n) => h("option", { value: n }, `${n} records`)));
  const tail = h("input", { type: "checkbox", id: "browse-tail" });
  const status = h("span", { class: "muted", id: "browse-status" });
  const tbody = h("tbody");
  const tbl = h("table", { id: "messages" },
    h("thead", {}, h("tr", {}, ["Offset", "Time", "Key", "Value", "Headers"].map((t) => h("th", {}, t)))), tbody);
  let next = 0;
  const addRows = (records) => {
    for (const r of records) {
      tbody.append(h("tr", { "data-offset": r.offset },
        h("td", { class: "num" }, r.offset),
        h("td", {}, fmtTime(r.timestamp), h("div", { class: "kind" }, r.timestamp_type)),
        h("td", {}, renderValue(r.key)),
        h("td", {}, renderValue(r.value)),
        h("td", {}, r.headers.length ? r.headers.map((x) => h("div", {}, h("b", {}, x.key), renderValue(x.value))) : h("span", { class: "muted" }, "-"))));
    }
  };
  const load = async () => {
    let q = `partition=${partSel.value}&limit=${limit.value}`;
    if (mode.value === "offset") q += `&offset=${enc(at.value || "0")}`;
    if (mode.value === "timestamp") {
      const ms = Date.parse(at.value);
      if (Number.isNaN(ms)) { showError(`Not a time: ${at.value}`); return; }
      q += `&timestamp=${ms}`;
    }
    try {
      const page = await api(`/api/topics/${enc(name)}/messages?${q}`);
      tbody.replaceChildren();
      addRows(page.records);
      next = page.next_offset;
      status.textContent = `${page.records.length} record(s) from offset ${page.start_offset}; partition offsets ${page.earliest_offset}..${page.latest_offset}`;
      showError("");
    } catch (e) { showError(e.message); }
  };
  const poll = async () => {
    if (!tail.checked) return;
    try {
      const page = await api(`/api/topics/${enc(name)}/messages?partition=${partSel.value}&offset=${next}&limit=100`);
      addRows(page.records);
      next = page.next_offset;
      status.textContent = `live: up to offset ${page.latest_offset}`;
    } catch (e) { showError(e.message); }
  };
  timers.push(setInterval(poll, 2000));
  body.replaceChildren(
    h("div", { class: "toolbar" }, partSel, mode, at, limit, h("button", { id: "browse-go", onclick: load }, "Show"),
      h("label", {}, tail, " live tail"), status),
    tbl);
  await load();
}

async function topicProduce(name, body) {
  const d = await api(`/api/topics/${enc(name)}?size=500`);
  const part = h("select", { id: "produce-partition" }, h("option", { value: "" }, "(partitioner)"),
    d.partitions.map((p) => h("option", { value: p.partition }, `partition ${p.partition}`)));
  const key = h("input", { id: "produce-key", placeholder: "key (empty: null)", size: 40 });
  const value = h("textarea", { id: "produce-value", placeholder: "value" });
  const headers = h("textarea", { id: "produce-headers", placeholder: "one header a line: name=value" });
  const out = h("div", { id: "produce-result" });
  body.replaceChildren(h("div", { class: "form" },
    h("label", {}, "Partition"), part,
    h("label", {}, "Key"), key,
    h("label", {}, "Value"), value,
    h("label", {}, "Headers"), headers,
    h("span"), h("div", {}, h("button", { id: "produce-send", onclick: async () => {
      const hs = headers.value.split("\n").filter((l) => l.trim()).map((l) => {
        const i = l.indexOf("=");
        return i < 0 ? { key: l.trim(), value: null } : { key: l.slice(0, i).trim(), value: l.slice(i + 1) };
      });
      try {
        const r = await api(`/api/topics/${enc(name)}/produce`, { method: "POST", body: {
          partition: part.value === "" ? null : Number(part.value),
          key: key.value === "" ? null : key.value,
          value: value.value,
          headers: hs,
        } });
        out.replaceChildren(h("div", { class: "notice" }, `Written to partition ${r.partition} at offset ${r.offset}. `,
          h("a", { href: `#/topics/${enc(name)}/messages?partition=${r.partition}&offset=${r.offset}` }, "show it")));
      } catch (e) { out.replaceChildren(h("div", { class: "notice bad" }, e.message)); }
    } }, "Produce"), out)));
}

// ---------------------------------------------------------------- groups
async function pageGroups() {
  const params = query();
  const q = params.get("q") || "";
  const page = Number(params.get("page") || 0);
  const size = 50;
  const data = await api(`/api/groups?q=${enc(q)}&page=${page}&size=${size}`);
  const go = (p, text = q) => { location.hash = `#/groups?q=${enc(text)}&page=${p}`; };
  const search = h("input", { type: "search", id: "group-search", placeholder: "Search groups", value: q,
    onkeydown: (e) => { if (e.key === "Enter") go(0, search.value); } });
  app.replaceChildren(
    h("h1", {}, "Consumer groups"),
    h("div", { class: "toolbar" }, search, h("button", { onclick: () => go(0, search.value) }, "Search")),
    table([
      { title: "Group", cell: (g) => h("a", { href: `#/groups/${enc(g.group_id)}` }, g.group_id) },
      { title: "State", cell: (g) => g.state || "Unknown" },
      { title: "Coordinator", num: true, cell: (g) => g.coordinator },
    ], data.groups, { id: "groups" }),
    pager(data.total, page, size, (p) => go(p)));
}

function lagChart(samples) {
  const W = 600; const H = 140; const P = 30;
  const svg = (tag, attrs) => { const el = document.createElementNS("http://www.w3.org/2000/svg", tag); for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v); return el; };
  const root = svg("svg", { class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, id: "lag-chart" });
  const max = Math.max(1, ...samples.map((s) => s.lag));
  const t0 = samples.length ? samples[0].t : 0;
  const t1 = samples.length ? samples[samples.length - 1].t : 1;
  const x = (t) => P + ((t - t0) / Math.max(1, t1 - t0)) * (W - 2 * P);
  const y = (v) => H - P + 10 - (v / max) * (H - 2 * P);
  root.append(svg("line", { x1: P, y1: y(0), x2: W - P, y2: y(0), stroke: "#d9dee7" }));
  const label = (tx, ty, s) => { const t = svg("text", { x: tx, y: ty, "font-size": 11, fill: "#667085" }); t.textContent = s; return t; };
  root.append(label(4, y(max) + 4, fmtNum(max)), label(4, y(0) + 4, "0"));
  root.append(label(P, H - 4, `total lag, last ${samples.length} sample(s), every 5 s`));
  if (samples.length) {
    const pts = samples.map((s) => `${x(s.t).toFixed(1)},${y(s.lag).toFixed(1)}`).join(" ");
    root.append(svg("polyline", { points: samples.length > 1 ? pts : `${pts} ${(W - P).toFixed(1)},${y(samples[0].lag).toFixed(1)}`, fill: "none", stroke: "#2457c5", "stroke-width": 2 }));
  }
  return root;
}

async function pageGroup(group) {
  const history = lagHistory.get(group) || [];
  lagHistory.set(group, history);
  const chartBox = h("div");
  const info = h("div");
  const render = (d) => {
    history.push({ t: Date.now(), lag: d.total_lag });
    while (history.length > LAG_POINTS) history.shift();
    chartBox.replaceChildren(lagChart(history));
    info.replaceChildren(
      h("div", { class: "cards" },
        card("state", d.state, "group-state"),
        card("members", d.members.length),
        card("total lag", fmtNum(d.total_lag), "group-total-lag"),
        card("assignor", d.protocol || "-"),
        card("coordinator", d.coordinator)),
      h("h2", {}, "Lag per partition"),
      table([
        { title: "Topic", cell: (r) => h("a", { href: `#/topics/${enc(r.topic)}` }, r.topic) },
        { title: "Partition", num: true, cell: (r) => r.partition },
        { title: "Committed", num: true, cell: (r) => fmtNum(r.current_offset) },
        { title: "Log end", num: true, cell: (r) => fmtNum(r.log_end_offset) },
        { title: "Lag", num: true, cell: (r) => h("span", { class: "lag" }, fmtNum(r.lag)) },
        { title: "Consumer", cell: (r) => r.member_id || "-" },
        { title: "Host", cell: (r) => r.client_host || "-" },
      ], d.partitions, { id: "group-lag" }),
      h("h2", {}, "Members"),
      table([
        { title: "Member", cell: (m) => m.member_id },
        { title: "Client id", cell: (m) => m.client_id },
        { title: "Host", cell: (m) => m.client_host },
        { title: "Assignment", cell: (m) => m.assignment.map((a) => `${a.topic}-${a.partition}`).join(", ") || "-" },
      ], d.members, { id: "group-members" }));
  };
  const refresh = async () => {
    try { render(await api(`/api/groups/${enc(group)}?size=500`)); } catch (e) { showError(e.message); }
  };
  const d = await api(`/api/groups/${enc(group)}?size=500`);
  app.replaceChildren(h("h1", { id: "group-name" }, group), chartBox, info, resetForm(group, d));
  render(d);
  timers.push(setInterval(refresh, 5000));
}

function resetForm(group, d) {
  const topics = [...new Set(d.partitions.map((p) => p.topic))].sort();
  const topic = h("select", { id: "reset-topic" }, h("option", { value: "" }, "all topics with offsets"), topics.map((t) => h("option", { value: t }, t)));
  const to = h("select", { id: "reset-to" }, ["earliest", "latest", "offset", "shift", "timestamp", "current"].map((t) => h("option", { value: t }, t)));
  const value = h("input", { id: "reset-value", placeholder: "offset / shift / 2024-01-01T00:00:00Z", size: 30 });
  const out = h("div", { id: "reset-result" });
  const body = (execute) => {
    let v = null;
    if (to.value === "timestamp") v = Date.parse(value.value);
    else if (value.value !== "") v = Number(value.value);
    return { topic: topic.value || null, to: to.value, value: v, execute };
  };
  const run = async (execute) => {
    try {
      const r = await api(`/api/groups/${enc(group)}/reset`, { method: "POST", body: body(execute) });
      const tbl = table([
        { title: "Topic", cell: (p) => p.topic },
        { title: "Partition", num: true, cell: (p) => p.partition },
        { title: "Committed", num: true, cell: (p) => fmtNum(p.current_offset) },
        { title: "New offset", num: true, cell: (p) => fmtNum(p.new_offset) },
      ], r.plan, { id: execute ? "reset-done" : "reset-plan" });
      if (execute) {
        out.replaceChildren(h("div", { class: "notice", id: "reset-executed" }, `Offsets of ${r.plan.length} partition(s) reset.`), tbl);
      } else {
        out.replaceChildren(h("p", {}, "Dry run: nothing changed yet."), tbl,
          h("div", { class: "toolbar" }, h("button", { class: "danger", id: "reset-execute", onclick: () => run(true) }, "Execute reset")));
      }
    } catch (e) {
      out.replaceChildren(h("div", { class: "notice bad", id: "reset-error" }, e.message));
    }
  };
  return h("div", {},
    h("h2", {}, "Reset offsets"),
    h("p", { class: "muted" }, "Only an inactive group (no members) can be reset. A dry run shows the plan first."),
    h("div", { class: "toolbar" }, topic, to, value, h("button", { class: "secondary", id: "reset-dry-run", onclick: () => run(false) }, "Dry run")),
    out);
}

window.addEventListener("hashchange", route);
route();
