// Screen 1, validation: pick a file and a target table; see the file's encoding, delimiter
// and header mapped onto the table before anything is uploaded; validate it (or dry-run,
// or import it) and see the seed's five metrics and a grid of the bad rows, each bad cell
// marked with its reason.

import { api, download, subscribe } from "../api.js";
import { count, FINAL, h, problemText, scroller, statusBadge, toast, when } from "../dom.js";
import { delimiterName, mapHeader, recordsAt, sniff } from "../csv.js";
import { progressBar } from "../progress.js";
import { discard, sendFile, unfinished } from "../resumable.js";

const megabytes = (bytes) => (bytes / 1e6).toFixed(1);

const IMPORTS = "/api/v1/database/imports";
// The import options, in the API reference's words (README, OpenAPI).
const ROLLBACK_ON_FAILURE = "Roll back on failure: if the import ends failed (a whole chunk failed, or not one row could be loaded), remove every row it loaded; an import that completes with some rows refused keeps the rows it loaded";
const ATOMIC = "All or nothing (atomic): the first row refused by validation, the database or a trigger fails the whole import and every row it loaded is removed";
const GRID_ROWS = 200;

/** How the gateway decided the encoding, as the import will show it. */
function decidedBy(looked) {
  if (looked.decidedBy === "bom") return "byte-order mark";
  const share = looked.confidence === null ? "" : ` (${Math.round(looked.confidence * 100)} % of its non-ASCII characters read plausibly)`;
  return `detected${share}`;
}

export function render(root, { can }) {
  const stop = new AbortController();
  let tables = [];
  let looked = null; // what sniff() found in the chosen file

  const table = h("select", { id: "target-table", name: "table", required: true });
  const file = h("input", { id: "csv-file", name: "file", type: "file", accept: ".csv,.tsv,.txt,text/csv", required: true });
  const ignore = h("input", { id: "extra-ignore", type: "checkbox", name: "extra_columns" });
  const undo = h("input", { id: "rollback-on-failure", type: "checkbox", name: "rollback_on_failure", checked: true });
  const atomic = h("input", { id: "atomic", type: "checkbox", name: "atomic" });
  const preview = h("section", { class: "card", id: "preview", "aria-labelledby": "preview-title", hidden: true });
  const result = h("section", { class: "card", id: "result", "aria-labelledby": "result-title", hidden: true });
  const waiting = h("section", { class: "card", id: "unfinished", "aria-labelledby": "unfinished-title", hidden: true });
  const message = h("p", { class: "error", role: "alert", id: "validate-error" });
  const actions = [
    can("validate") && h("button", { type: "button", id: "run-validate", onclick: () => run("validate_only") }, "Validate"),
    can("import") && h("button", { type: "button", id: "run-dry-run", class: "secondary", onclick: () => run("dry_run") }, "Dry run"),
    can("import") && h("button", { type: "button", id: "run-import", class: "secondary", onclick: () => run("import") }, "Import"),
  ];

  root.append(
    h("section", { class: "card" },
      h("h1", {}, "Validate a file"),
      h("form", { id: "validate-form", onsubmit: (e) => e.preventDefault() },
        h("div", { class: "fields" },
          h("div", {}, h("label", { for: "target-table" }, "Target table"), table),
          h("div", {}, h("label", { for: "csv-file" }, "CSV file"), file)),
        h("div", { class: "check" }, ignore,
          h("label", { for: "extra-ignore" }, "Ignore columns the table does not have (otherwise the file is refused)")),
        can("import") ? [
          h("div", { class: "check" }, undo, h("label", { for: "rollback-on-failure" }, ROLLBACK_ON_FAILURE)),
          h("div", { class: "check" }, atomic, h("label", { for: "atomic" }, ATOMIC)),
        ] : "",
        h("div", { class: "actions" }, actions),
        message)),
    waiting,
    preview,
    result,
  );

  const chosen = () => tables.find((t) => t.name === table.value);

  function showPreview() {
    const target = chosen();
    if (!looked || !target) { preview.hidden = true; return; }
    const { mapped, missing, unknown } = mapHeader(looked.header, target);
    const known = new Set(mapped.map((m) => m.column));
    preview.hidden = false;
    preview.replaceChildren(
      h("h2", { id: "preview-title" }, `${file.files[0].name} → ${target.name}`),
      h("dl", { class: "facts" },
        h("dt", {}, "Encoding"), h("dd", { id: "detected-encoding" }, looked.encoding.toUpperCase()),
        h("dt", {}, "Decided by"), h("dd", { id: "encoding-decided-by" }, decidedBy(looked)),
        h("dt", {}, "Delimiter"), h("dd", { id: "detected-delimiter" }, delimiterName(looked.delimiter)),
        h("dt", {}, "Columns"), h("dd", {}, `${mapped.length} in the file, ${mapped.length - unknown.length} matched`)),
      target.rule_file_error ? h("p", { class: "error" }, `The table's rule file is invalid: ${target.rule_file_error}`) : "",
      h("h3", {}, "Header"),
      scroller("Header mapping", h("table", { class: "grid", id: "mapping" },
        h("caption", { class: "visually-hidden" }, "How the file's header maps onto the table"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "In the file"), h("th", { scope: "col" }, "Table column"), h("th", { scope: "col" }, "Match"))),
        h("tbody", {},
          mapped.map((m) => h("tr", { class: m.column ? "" : "warn" },
            h("td", {}, m.raw), h("td", {}, m.column || "–"),
            h("td", {}, m.column ? "matched" : ignore.checked ? "not in the table: ignored" : "not in the table: refused"))),
          missing.map((name) => h("tr", { class: "bad" }, h("td", {}, "–"), h("td", {}, name), h("td", {}, "missing, required"))),
          target.columns.filter((c) => !c.required && !known.has(c.name)).map((c) =>
            h("tr", { class: "muted" }, h("td", {}, "–"), h("td", {}, c.name), h("td", {}, c.has_default ? "not in the file: default" : "not in the file: empty"))),
        ))),
      h("h3", {}, `First ${looked.rows.length} rows`),
      scroller("First rows", h("table", { class: "grid", id: "first-rows" },
        h("caption", { class: "visually-hidden" }, "The file's first rows"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Line"), looked.header.map((name) => h("th", { scope: "col" }, name)))),
        h("tbody", {}, looked.rows.map((r) => h("tr", {}, h("th", { scope: "row" }, r.line), r.cells.map((c) => h("td", {}, c))))))),
    );
  }

  async function look() {
    message.textContent = "";
    looked = null;
    try {
      looked = file.files[0] ? await sniff(file.files[0]) : null;
    } catch (error) {
      message.textContent = problemText(error);
    }
    showPreview();
  }

  async function run(mode) {
    message.textContent = "";
    if (!file.files[0] || !table.value) { message.textContent = "Choose a table and a file first."; return; }
    const query = {
      table: table.value,
      extra_columns: ignore.checked ? "ignore" : undefined,
      rollback_on_failure: mode === "import" ? String(undo.checked) : undefined,
      atomic: mode === "import" && atomic.checked ? "true" : undefined,
    };
    if (mode !== "import") query[mode] = "true";
    const chosenFile = file.files[0];
    const bar = h("progress", { max: String(chosenFile.size), value: "0", "aria-label": "Upload progress" });
    const sent = h("span", { class: "percent" }, "0 %");
    const note = h("p", { class: "muted", role: "status", id: "upload-note" });
    result.hidden = false;
    result.replaceChildren(
      h("h2", { id: "result-title" }, `Uploading ${chosenFile.name}`),
      h("div", { class: "progress", id: "upload-progress" }, bar, sent),
      note,
    );
    let imp;
    try {
      imp = await sendFile(chosenFile, query, {
        signal: stop.signal,
        onProgress: (done, total) => {
          bar.value = done;
          sent.textContent = `${Math.floor((done / total) * 100)} % (${megabytes(done)} of ${megabytes(total)} MB)`;
        },
        onNote: (text) => { note.textContent = text; },
      });
    } catch (error) {
      if (stop.signal.aborted) return;
      result.hidden = true;
      message.textContent = problemText(error);
      showUnfinished();
      return;
    }
    toast(`${mode.replace("_", " ")} started`);
    watch(imp);
    showUnfinished().catch((e) => { message.textContent = problemText(e); });
  }

  /** This tab's uploads cut short (a drop it could not wait out, a reload): choosing the
   * same file with the same options sends the rest. */
  async function showUnfinished() {
    const uploads = await unfinished();
    waiting.hidden = !uploads.length;
    waiting.replaceChildren(
      h("h2", { id: "unfinished-title" }, "Unfinished uploads"),
      h("p", {}, "Choose the same file, with the same table and options, and press the same button: only the rest is sent."),
      h("ul", {}, uploads.map((u) => h("li", { "data-upload": u.id },
        `${u.filename || "a file"} → ${u.table}: ${Math.floor((u.offset / u.length) * 100)} % stored (${megabytes(u.offset)} of ${megabytes(u.length)} MB), kept until ${when(u.expires_at)} `,
        h("button", { type: "button", class: "quiet", onclick: () =>
          discard(u).then(showUnfinished).catch((e) => { message.textContent = problemText(e); }) },
        "Discard")))),
    );
  }

  function watch(imp) {
    const done = new AbortController();
    stop.signal.addEventListener("abort", () => done.abort());
    const show = (current) => {
      result.hidden = false;
      result.replaceChildren(
        h("h2", { id: "result-title" }, `${current.mode.replace("_", " ")} of ${current.filename || "the file"}`),
        h("p", {}, statusBadge(current.status), current.error ? ` — ${current.error}` : ""),
        progressBar(current, "Progress"),
      );
      if (FINAL.has(current.status)) {
        done.abort();
        outcome(current).catch((e) => { message.textContent = problemText(e); });
      }
    };
    show(imp);
    if (!FINAL.has(imp.status)) {
      subscribe(`${IMPORTS}/stream`, { import_id: imp.id, since: imp.created_at }, (type, data) => {
        if (type === "import" && !done.signal.aborted) show(data);
      }, done.signal);
    }
  }

  async function outcome(imp) {
    const [report, errors] = await Promise.all([
      api(`${IMPORTS}/${imp.id}/report`),
      api(`${IMPORTS}/${imp.id}/errors`, { query: { limit: 1000 } }),
    ]);
    const fields = (list) => (list?.length ? list.map((f) => `${f.field} (${count(f.count)})`).join(", ") : "none");
    result.append(
      h("h3", {}, "Metrics"),
      h("dl", { class: "metrics", id: "metrics" },
        h("div", {}, h("dt", {}, "Total records"), h("dd", {}, count(report.total_records))),
        h("div", {}, h("dt", {}, "Failed records"), h("dd", {}, count(report.failed_records))),
        h("div", {}, h("dt", {}, "Duplicates"), h("dd", {}, count(report.duplicate_count))),
        h("div", {}, h("dt", {}, "Missing required fields"), h("dd", {}, fields(report.missing_required_fields))),
        h("div", {}, h("dt", {}, "Invalid format fields"), h("dd", {}, fields(report.invalid_format_fields)))),
    );
    if (errors.total) {
      result.append(
        h("button", { type: "button", class: "quiet", id: "download-errors", onclick: () =>
          download(`${IMPORTS}/${imp.id}/errors`, { format: "csv" }, `errors-${imp.id}.csv`).catch((e) => { message.textContent = problemText(e); }) },
        `Download all ${count(errors.total)} errors (CSV)`),
        await errorGrid(imp, errors.items),
      );
    }
    if (imp.mode === "validate_only" && can("import")) {
      result.append(h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => run("dry_run") }, "Dry run this file"),
        h("button", { type: "button", onclick: () => run("import") }, "Import this file")));
    }
  }

  /** The bad rows as the file has them, each bad cell marked, its reasons on hover/focus. */
  async function errorGrid(imp, items) {
    const byLine = new Map();
    for (const e of items) {
      if (!byLine.has(e.line)) byLine.set(e.line, []);
      byLine.get(e.line).push(e);
    }
    const lines = [...byLine.keys()].filter((l) => l > 1).slice(0, GRID_ROWS);
    const header = looked?.header || imp.columns;
    const target = tables.find((t) => t.name === imp.table);
    const names = looked && target ? mapHeader(looked.header, target).mapped.map((m) => m.column) : imp.columns;
    const records = lines.length && file.files[0] && looked
      ? await recordsAt(file.files[0], looked.label, looked.delimiter, lines) : new Map();
    let tip = 0;
    const row = (line) => {
      const problems = byLine.get(line);
      const whole = problems.filter((p) => !p.column);
      const cells = records.get(line) || [];
      return h("tr", {},
        h("th", { scope: "row", class: whole.length ? "bad" : "" }, line,
          whole.length ? h("span", { class: "reason" }, whole.map((p) => `${p.code}: ${p.message}`).join("; ")) : ""),
        header.map((name, i) => {
          const mine = problems.filter((p) => p.column && p.column === names[i]);
          const text = cells[i] ?? (mine[0]?.value ?? "");
          if (!mine.length) return h("td", {}, text);
          const id = `reason-${imp.id.slice(0, 8)}-${tip++}`;
          const kind = mine.some((p) => p.severity === "error") ? "bad" : "bad warning";
          return h("td", { class: kind, tabindex: "0", "aria-describedby": id },
            text, h("span", { class: "reason", id, role: "tooltip" }, mine.map((p) => `${p.code}: ${p.message}`).join("; ")));
        }));
    };
    return scroller("Rows with errors", h("table", { class: "grid", id: "error-grid" },
      h("caption", {}, `Rows with errors${lines.length < byLine.size ? ` (first ${lines.length})` : ""}; focus or hover a marked cell for its reason (red: refused, amber: a warning, loaded as is)`),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Line"), header.map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, lines.map(row))));
  }

  file.addEventListener("change", () => look().catch((e) => { message.textContent = problemText(e); }));
  table.addEventListener("change", showPreview);
  ignore.addEventListener("change", showPreview);
  api("/api/v1/tables", { signal: stop.signal })
    .then((answer) => {
      tables = answer.items;
      table.replaceChildren(...tables.map((t) => h("option", { value: t.name }, t.name)));
      showPreview();
    })
    .catch((e) => { if (!stop.signal.aborted) message.textContent = problemText(e); });
  showUnfinished().catch((e) => { if (!stop.signal.aborted) message.textContent = problemText(e); });
  return () => stop.abort();
}
