// Screen 4, troubleshooting: one import's timeline, row errors and failed records (export,
// retry with a corrected file); a record's history by table and key; the system's status.

import { api, download } from "../api.js";
import { count, h, problemText, statusBadge, table, toast, when } from "../dom.js";

const IMPORTS = "/api/v1/database/imports";

export function render(root, { can, args }) {
  const stop = new AbortController();
  const signal = stop.signal;
  const pick = h("select", { id: "trouble-import" });
  const importPane = h("div", { id: "trouble-detail", "aria-live": "polite" });
  const recordTable = h("select", { id: "record-table" });
  const keyFields = h("div", { class: "fields", id: "record-key" });
  const recordPane = h("div", { id: "record-detail", "aria-live": "polite" });
  const statusPane = h("div", { id: "system-status" });
  const message = h("p", { class: "error", role: "alert" });
  let tables = [];
  let importTable = null; // the table of the import being viewed

  root.append(
    h("section", { class: "card", "aria-labelledby": "trouble-title" },
      h("h1", { id: "trouble-title" }, "Troubleshooting"),
      message,
      h("h2", {}, "An import"),
      h("div", { class: "fields" }, h("div", {}, h("label", { for: "trouble-import" }, "Import"), pick)),
      importPane),
    (can("import") || can("export")) ? h("section", { class: "card", "aria-labelledby": "record-title" },
      h("h2", { id: "record-title" }, "Record history"),
      h("form", { onsubmit: (e) => { e.preventDefault(); lookUp(); } },
        h("div", { class: "fields" }, h("div", {}, h("label", { for: "record-table" }, "Table"), recordTable)),
        keyFields,
        h("div", { class: "actions" }, h("button", { type: "submit", id: "record-look-up" }, "Look up"))),
      recordPane) : "",
    h("section", { class: "card", "aria-labelledby": "status-title" },
      h("h2", { id: "status-title" }, "System status"),
      h("button", { type: "button", class: "quiet", onclick: () => systemStatus() }, "Refresh"),
      statusPane),
  );

  async function showImport(id) {
    if (!id) { importPane.replaceChildren(); return; }
    const [imp, events, errors] = await Promise.all([
      api(`${IMPORTS}/${id}`, { signal }),
      api(`${IMPORTS}/${id}/events`, { signal }),
      api(`${IMPORTS}/${id}/errors`, { query: { limit: 100 }, signal }),
    ]);
    const corrected = h("input", { id: "retry-file", type: "file", accept: ".csv,text/csv" });
    const retried = h("p", { role: "status" });
    const retry = async () => {
      if (!corrected.files[0]) { retried.textContent = "Choose the corrected file first."; return; }
      const form = new FormData();
      form.append("file", corrected.files[0], corrected.files[0].name);
      try {
        const child = await api(`${IMPORTS}/${id}/retry`, { method: "POST", body: form, signal });
        retried.replaceChildren("Retry started: ", h("a", { href: `#/imports/${child.id}`, id: "retry-link" }, child.filename || child.id));
        toast("Retry started");
      } catch (error) {
        retried.textContent = problemText(error);
      }
    };
    importTable = imp.table;
    pickRecordTable();
    importPane.replaceChildren(
      h("p", {}, statusBadge(imp.status), ` ${imp.table} · ${imp.mode.replace("_", " ")} · ${count(imp.counts.file_rows)} rows · `,
        `${count(imp.counts.loaded)} loaded, ${count(imp.counts.failed)} failed`, imp.error ? ` — ${imp.error}` : ""),
      h("h3", {}, "Timeline"),
      table("Timeline", ["After", "Service", "Event", "Chunk", "Detail"], events.items.map((e) => [
        `${e.elapsed.toFixed(2)} s`, e.service, e.kind, e.seq ?? "–",
        e.detail ? Object.entries(e.detail).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(", ") : "",
      ]), { id: "trouble-timeline" }),
      h("h3", {}, `Row errors (${count(errors.total)})`),
      errors.total ? table("Row errors", ["Line", "Column", "Severity", "Code", "Message", "Value"],
        errors.items.map((e) => [e.line, e.column || "–", e.severity, e.code, e.message, e.value ?? ""]),
        { id: "trouble-errors" }) : h("p", {}, "None."),
      imp.counts.failed ? h("div", {},
        h("h3", {}, "Failed records"),
        h("p", {}, "Download the failed rows as they were in the file, with their line and errors; fix them and upload the corrected file here."),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "secondary", id: "download-failed", onclick: () =>
            download(`${IMPORTS}/${id}/failed`, {}, `failed-${id}.csv`).catch((e) => { message.textContent = problemText(e); }) },
          "Download failed rows (CSV)")),
        (can("import") || can("validate")) ? h("div", {},
          h("label", { for: "retry-file" }, "Corrected file"),
          h("div", { class: "beside" }, corrected,
            h("button", { type: "button", id: "retry-run", onclick: retry }, "Retry with this file"))) : "",
        retried) : "",
    );
  }

  /** Record history looks in the table of the import being viewed, when there is one. */
  function pickRecordTable() {
    if (importTable && tables.some((t) => t.name === importTable) && recordTable.value !== importTable) {
      recordTable.value = importTable;
      keyInputs();
    }
  }

  function keyInputs() {
    const target = tables.find((t) => t.name === recordTable.value);
    keyFields.replaceChildren(...(target?.primary_key || []).map((name) =>
      h("div", {}, h("label", { for: `key-${name}` }, `Key: ${name}`), h("input", { id: `key-${name}`, type: "text", "data-key": name, required: true }))));
  }

  async function lookUp() {
    const ids = [...keyFields.querySelectorAll("input")].map((input) => input.value);
    const url = new URLSearchParams({ table: recordTable.value });
    for (const id of ids) url.append("id", id);
    try {
      const record = await api(`/api/v1/database/records?${url}`, { signal });
      recordPane.replaceChildren(
        h("h3", {}, "Now in the table"),
        record.current ? table("Current row", ["Column", "Value"],
          Object.entries(record.current).map(([k, v]) => [k, v === null ? "NULL" : String(v)]), { id: "record-current" })
          : h("p", {}, "No such row in the table now."),
        h("h3", {}, "Written by"),
        record.history.length ? table("History", ["When", "Action", "Import", "Line", "By", "Before"], record.history.map((w) => [
          when(w.loaded_at), w.action, h("a", { href: `#/troubleshoot/${w.import_id}` }, w.filename || w.import_id),
          w.line ?? "–", w.uploaded_by?.name ?? "–", w.before ? JSON.stringify(w.before) : "",
        ]), { id: "record-history" }) : h("p", {}, "No import wrote this row."),
        h("h3", {}, "Rows refused with this key"),
        record.row_errors.length ? table("Refused rows", ["Import", "Line", "Column", "Code", "Message"], record.row_errors.map((e) => [
          h("a", { href: `#/troubleshoot/${e.import_id}` }, e.import_id.slice(0, 8)), e.line, e.column, e.code, e.message,
        ])) : h("p", {}, "None."),
      );
    } catch (error) {
      recordPane.replaceChildren(h("p", { class: "error" }, problemText(error)));
    }
  }

  async function systemStatus() {
    const s = await api("/api/v1/status", { signal });
    const lag = Object.entries(s.consumer_lag.groups || {}).flatMap(([group, topics]) =>
      Object.entries(topics).map(([topic, n]) => [group, topic, count(n)]));
    statusPane.replaceChildren(
      h("p", {}, h("span", { class: `badge ${s.healthy ? "status-completed" : "status-failed"}` },
        h("span", { "aria-hidden": "true" }, s.healthy ? "✓" : "✕"), s.healthy ? " Healthy" : " Not healthy"),
        s.services_down.length ? ` — down: ${s.services_down.join(", ")}` : ""),
      h("dl", { class: "metrics" },
        h("div", {}, h("dt", {}, "Outbox pending"), h("dd", {}, count(s.outbox.pending))),
        h("div", {}, h("dt", {}, "Oldest unpublished"), h("dd", {}, `${s.outbox.oldest_seconds} s`)),
        h("div", {}, h("dt", {}, "Dead letters, last hour"), h("dd", {}, count(s.dead_letters.last_hour))),
        h("div", {}, h("dt", {}, "Dead letters, last day"), h("dd", {}, count(s.dead_letters.last_day))),
        h("div", {}, h("dt", {}, "Imports running"), h("dd", {}, count(s.imports_running.length)))),
      h("h3", {}, "Services"),
      table("Service instances", ["Service", "Instance", "Up", "Silent for", "Consumers"], s.instances.map((i) => [
        i.service, i.instance, i.up ? "yes" : "lost", `${i.silent_seconds} s`,
        (i.consumers || []).map((c) => `${c.group}: ${c.running ? "running" : "stopped"}, lag ${count(c.lag)}`).join("; "),
      ]), { id: "status-instances" }),
      h("h3", {}, "Consumer lag"),
      s.consumer_lag.ok ? table("Consumer lag", ["Group", "Topic", "Lag"], lag, { id: "status-lag" })
        : h("p", { class: "error" }, `Not measured: ${s.consumer_lag.error}`),
      // replaceChildren takes nodes, not an array of them: spread the optional part.
      ...(s.recent_failures.length ? [h("h3", {}, "Recent failures"),
        table("Recent failures", ["What", "Target", "Status", "Error", "At"], s.recent_failures.map((f) => [
          f.what, f.target, f.status, f.error ?? "", when(f.at)]), { id: "status-failures" })] : []),
    );
  }

  pick.addEventListener("change", () => {
    history.replaceState(null, "", `#/troubleshoot/${pick.value}`);
    showImport(pick.value).catch((e) => { message.textContent = problemText(e); });
  });
  recordTable.addEventListener("change", keyInputs);
  api(`${IMPORTS}`, { query: { limit: 100 }, signal })
    .then((answer) => {
      pick.replaceChildren(h("option", { value: "" }, "Choose an import…"),
        ...answer.items.map((i) => h("option", { value: i.id }, `${when(i.created_at)} · ${i.filename || i.id.slice(0, 8)} · ${i.status}`)));
      if (args[0]) {
        if (!answer.items.some((i) => i.id === args[0])) pick.append(h("option", { value: args[0] }, args[0]));
        pick.value = args[0];
        return showImport(args[0]);
      }
      return null;
    })
    .catch((e) => { if (!signal.aborted) message.textContent = problemText(e); });
  if (can("import") || can("export")) {
    api("/api/v1/tables", { signal }).then((answer) => {
      tables = answer.items;
      recordTable.replaceChildren(...tables.map((t) => h("option", { value: t.name }, t.name)));
      keyInputs();
      pickRecordTable();
    }).catch(() => {});
  }
  systemStatus().catch((e) => { if (!signal.aborted) statusPane.replaceChildren(h("p", { class: "error" }, problemText(e))); });
  return () => stop.abort();
}
