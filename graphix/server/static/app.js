// The playground: pick a database, read its schema, ask a question, show SQL, rows and graph.
"use strict";

const $ = (id) => document.getElementById(id);
let graphUrl = null;

async function request(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "muted";
}

async function loadHealth() {
  try {
    const health = await (await request("/health")).json();
    $("health").textContent = `model: ${health.model}`;
  } catch (error) {
    $("health").textContent = `not ready: ${error.message}`;
  }
}

async function loadDialects() {
  const { dialects } = await (await request("/dialects")).json();
  const select = $("dialect");
  select.replaceChildren(...dialects.map((name) => element("option", name)));
  select.value = "sqlite";
}

async function loadDatabases() {
  const { databases } = await (await request("/databases")).json();
  const select = $("database");
  select.replaceChildren(...databases.map((db) => {
    const option = element("option", db.db_id);
    option.value = db.db_id;
    return option;
  }));
  if (databases.length === 0) {
    setStatus("The database folder contains no SQLite files.", true);
    return;
  }
  select.disabled = false;
  $("ask").disabled = false;
  await loadSchema();
}

async function loadSchema() {
  const dbId = $("database").value;
  const box = $("schema");
  box.replaceChildren(element("p", "loading…", "muted"));
  try {
    const schema = await (await request(`/databases/${encodeURIComponent(dbId)}/schema`)).json();
    box.replaceChildren(...schema.tables.map((table) => {
      const part = element("div");
      part.append(element("h3", table.name));
      const list = element("ul");
      for (const column of table.columns) {
        const item = element("li", column.primary_key ? `${column.name} (key)` : column.name);
        item.append(" ", element("span", column.type, "type"));
        list.append(item);
      }
      part.append(list);
      return part;
    }));
    for (const key of schema.foreign_keys) {
      box.append(element("p", `${key.table}.${key.column} → ${key.ref_table}.${key.ref_column}`, "fk"));
    }
  } catch (error) {
    box.replaceChildren(element("p", error.message, "error"));
  }
}

function showTable(columns, rows, truncated) {
  const box = $("result");
  if (columns.length === 0) {
    box.replaceChildren(element("p", "No result.", "muted"));
    return;
  }
  const table = element("table");
  table.id = "result-table";
  const head = element("tr");
  head.append(...columns.map((name) => element("th", name)));
  table.append(element("thead"));
  table.tHead.append(head);
  const body = element("tbody");
  for (const row of rows) {
    const line = element("tr");
    line.append(...row.map((value) => element("td", value === null ? "NULL" : String(value))));
    body.append(line);
  }
  table.append(body);
  const parts = [table];
  if (rows.length === 0) parts.push(element("p", "(no rows)", "muted"));
  if (truncated) parts.push(element("p", `First ${rows.length} rows shown.`, "muted"));
  box.replaceChildren(...parts);
}

function showAnswer(answer) {
  $("answer").hidden = false;
  $("sql").textContent = answer.sql;
  const beams = $("beams-list");
  beams.hidden = answer.beams.length < 2;
  beams.querySelector("ol").replaceChildren(
    ...answer.beams.map((beam) => element("li", `${beam.sql}  (score ${beam.score.toFixed(3)})`)));
  $("error").hidden = !answer.error;
  $("error").textContent = answer.error || "";
  showTable(answer.columns, answer.rows, answer.truncated);
  const timings = Object.entries(answer.timings_ms).map(([step, ms]) => `${step} ${ms} ms`);
  $("timings").textContent = `${timings.join(", ")}; batch of ${answer.batch_size}`;
}

async function drawGraph(dbId, question) {
  const box = $("graph-box");
  try {
    const blob = await (await request("/graph", { db_id: dbId, question, format: "svg" })).blob();
    if (graphUrl) URL.revokeObjectURL(graphUrl);
    graphUrl = URL.createObjectURL(blob);
    $("graph").src = graphUrl;
    box.hidden = false;
  } catch (error) {
    box.hidden = true;
    setStatus(`Link graph failed: ${error.message}`, true);
  }
}

async function ask(event) {
  event.preventDefault();
  const dbId = $("database").value;
  const question = $("question").value.trim();
  if (!question) {
    setStatus("Type a question first.", true);
    return;
  }
  const body = {
    db_id: dbId,
    question,
    dialect: $("dialect").value,
    execute: $("execute").checked,
    beams: Number($("beams").value) || 1,
  };
  $("ask").disabled = true;
  setStatus("Asking…");
  try {
    const answer = await (await request("/ask", body)).json();
    showAnswer(answer);
    setStatus("");
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    $("ask").disabled = false;
  }
  if ($("draw-graph").checked) await drawGraph(dbId, question);
}

async function start() {
  $("database").addEventListener("change", loadSchema);
  $("ask-form").addEventListener("submit", ask);
  loadHealth();
  try {
    await Promise.all([loadDialects(), loadDatabases()]);
  } catch (error) {
    setStatus(`Cannot reach the server: ${error.message}`, true);
  }
  document.body.dataset.ready = "true";
}

start();
