"use strict";
// Every value is placed with textContent: event data is never read as HTML.
const $ = (id) => document.getElementById(id);
function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}
async function getJson(path) {
  const answer = await fetch(path, { cache: "no-store" });
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.error || answer.status);
  return body;
}
function fail(node, error) { node.replaceChildren(el("span", "could not load: " + error.message, { class: "error" })); }

function queueRows(tbody, queues, deadLetters) {
  tbody.replaceChildren(...queues.map((q) => {
    const depth = q.waiting + q.in_flight + (q.delayed || 0);
    const row = el("tr", null, { "data-queue": q.name, "data-depth": depth });
    if (deadLetters && depth > 0) row.className = "nonempty";
    row.append(el("td", q.name), el("td", q.waiting, { class: "n" }), el("td", q.in_flight, { class: "n" }));
    return row;
  }));
}
async function refreshStatus() {
  try {
    const status = await getJson("/api/status");
    $("services").tBodies[0].replaceChildren(...Object.entries(status.services).map(([name, s]) => {
      const row = el("tr");
      row.append(el("td", name), el("td", s.api_url || "—"), el("td", Object.keys(s.functions).join(", ")));
      return row;
    }));
    queueRows($("queues").tBodies[0], status.messaging.queues, false);
    queueRows($("dead-letter-queues").tBodies[0], status.messaging.dead_letter_queues, true);
    $("topics").replaceChildren(...status.messaging.topics.map((t) => el("li", t)));
    $("alarm").replaceChildren(status.dead_letters > 0
      ? el("span", status.dead_letters + " message(s) in dead-letter queues", { class: "error", id: "dead-letter-alarm" })
      : el("span", "no dead letters", { class: "muted" }));
    $("refreshed").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) { $("refreshed").textContent = "status: " + error.message; }
}
async function refreshOrders() {
  try {
    const orders = await getJson("/api/orders?limit=20");
    $("orders").tBodies[0].replaceChildren(...orders.map((o) => {
      const row = el("tr", null, { "data-order": o.id });
      const open = el("button", o.id, { class: "link" });
      open.addEventListener("click", () => showTimeline(o.id));
      const cell = el("td"); cell.append(open);
      row.append(cell, el("td", o.status, { class: "status-" + o.status }), el("td", o.placed_at),
                 el("td", (o.total_cents / 100).toFixed(2) + " " + (o.currency || ""), { class: "n" }));
      return row;
    }));
  } catch (error) { fail($("orders").tBodies[0], error); }
}
async function showTimeline(orderId) {
  $("timeline-title").textContent = orderId;
  try {
    const history = await getJson("/api/orders/" + encodeURIComponent(orderId) + "/events");
    const list = el("ol");
    for (const event of history.events || []) {
      const item = el("li");
      const trace = el("button", event.correlation_id, { class: "link" });
      trace.addEventListener("click", () => showTrace(event.correlation_id));
      item.append(el("code", event.time + "  "), el("strong", event.type), el("span", "  correlation "), trace);
      list.append(item);
    }
    $("timeline").replaceChildren(list);
  } catch (error) { fail($("timeline"), error); }
}
function hopLabel(hop) {
  const parts = [hop.kind || hop.hop, hop.service, hop.peer || hop.name, hop.outcome];
  if (hop.duration_ms !== undefined && hop.duration_ms !== null) parts.push(hop.duration_ms + " ms");
  return parts.filter((p) => p !== undefined && p !== null && p !== "").join(" · ");
}
function hopTree(hops) {
  const list = el("ul", null, { class: "tree" });
  for (const hop of hops) {
    const item = el("li", hopLabel(hop));
    const children = hop.children || [];
    if (children.length) item.append(hopTree(children));
    list.append(item);
  }
  return list;
}
async function showTrace(correlationId) {
  $("trace-title").textContent = correlationId;
  try {
    const trace = await getJson("/api/trace/" + encodeURIComponent(correlationId));
    const roots = Array.isArray(trace) ? trace : (trace.roots || trace.trees || trace.hops || []);
    $("trace").replaceChildren(hopTree(roots));
  } catch (error) { fail($("trace"), error); }
}
async function loadTopology() {
  try {
    const picture = await getJson("/api/topology");
    // The SVG is the project's own rendering of the deployed topology (no script in it).
    $("topology").innerHTML = picture.svg;
  } catch (error) { fail($("topology"), error); }
}
loadTopology();
refreshStatus();
refreshOrders();
setInterval(refreshStatus, 2000);
setInterval(refreshOrders, 5000);
