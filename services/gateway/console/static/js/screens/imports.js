// Screen 2, import progress: every import the key can see, newest first, each with its
// state, a live progress bar (Server-Sent Events), rows/s, time left, counts and timeline.

import { api, download, subscribe } from "../api.js";
import { count, h, problemText, scroller, statusBadge, when } from "../dom.js";
import { progressBar, rateText } from "../progress.js";

const LIST = "/api/v1/database/imports";
const COUNTS = ["valid", "loaded", "updated", "skipped", "failed", "duplicates"];

export function render(root, { args }) {
  const stop = new AbortController();
  const rows = new Map(); // import id → { imp, tr }
  let cursor = null;
  let newest = null; // the latest updated_at seen: the stream starts there

  const body = h("tbody");
  const more = h("button", { type: "button", class: "quiet", hidden: true }, "Load older imports");
  const detail = h("section", { class: "card", id: "import-detail", "aria-live": "polite", hidden: true });
  const status = h("p", { class: "muted", role: "status" }, "Loading…");
  root.append(
    h("section", { class: "card" },
      h("h1", {}, "Imports"),
      status,
      scroller("Imports",
        h("table", { class: "grid", id: "imports" },
          h("caption", { class: "visually-hidden" }, "Imports, newest first, updated live"),
          h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, "Import"), h("th", { scope: "col" }, "Status"),
            h("th", { scope: "col" }, "Progress"), h("th", { scope: "col" }, "Rows/s"),
            h("th", { scope: "col" }, "Time left"),
            COUNTS.map((c) => h("th", { scope: "col", class: "num" }, c[0].toUpperCase() + c.slice(1))))),
          body)),
      more),
    detail,
  );

  function cells(imp) {
    const { rate, eta } = rateText(imp);
    const name = imp.filename || imp.id.slice(0, 8);
    return [
      h("th", { scope: "row" },
        h("a", { href: `#/imports/${imp.id}` }, name),
        h("div", { class: "muted small" }, `${imp.table} · ${imp.mode.replace("_", " ")} · ${when(imp.created_at)}`)),
      h("td", {}, statusBadge(imp.status)),
      h("td", {}, progressBar(imp, `Progress of ${name}`)),
      h("td", { class: "num" }, rate),
      h("td", { class: "num" }, eta),
      COUNTS.map((c) => h("td", { class: "num" }, count(imp.counts[c]))),
    ];
  }

  function show(imp, { prepend = false } = {}) {
    if (!newest || imp.updated_at > newest) newest = imp.updated_at;
    const known = rows.get(imp.id);
    if (known) {
      known.imp = imp;
      known.tr.replaceChildren(...cells(imp).flat());
    } else {
      const tr = h("tr", { "data-import": imp.id, "data-status": imp.status }, cells(imp));
      rows.set(imp.id, { imp, tr });
      if (prepend) body.prepend(tr);
      else body.append(tr);
      status.textContent = `${rows.size} imports shown; progress updates live.`;
    }
    rows.get(imp.id).tr.dataset.status = imp.status;
    if (args[0] === imp.id) showDetail(imp);
  }

  async function page() {
    const answer = await api(LIST, { query: { limit: 100, cursor }, signal: stop.signal });
    for (const imp of answer.items) show(imp);
    cursor = answer.next_cursor;
    more.hidden = !cursor;
    if (!rows.size) status.textContent = "No imports yet.";
  }

  async function showDetail(imp) {
    detail.hidden = false;
    const events = await api(`${LIST}/${imp.id}/events`, { signal: stop.signal }).catch(() => null);
    const timeline = h("ol", { class: "timeline" },
      (events?.items || []).map((e) => h("li", {},
        h("time", { datetime: e.at }, `+${e.elapsed.toFixed(2)} s`), " ", h("strong", {}, e.kind),
        ` (${e.service}${e.seq === null ? "" : `, chunk ${e.seq}`})`,
        e.detail ? ` — ${Object.entries(e.detail).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(", ")}` : "")));
    const errors = h("button", { type: "button", class: "quiet", onclick: () =>
      download(imp.links.errors, { format: "csv" }, `errors-${imp.id}.csv`).catch((e) => alert(problemText(e))) },
    "Download row errors (CSV)");
    detail.replaceChildren(
      h("h2", {}, `Import ${imp.filename || imp.id}`),
      h("dl", { class: "facts" },
        h("dt", {}, "Id"), h("dd", {}, h("code", {}, imp.id)),
        h("dt", {}, "Table"), h("dd", {}, imp.table),
        h("dt", {}, "Status"), h("dd", {}, statusBadge(imp.status), imp.error ? ` — ${imp.error}` : ""),
        h("dt", {}, "Rows in file"), h("dd", {}, count(imp.counts.file_rows)),
        h("dt", {}, "Chunks"), h("dd", {}, `${count(imp.chunks.loaded)} loaded, ${count(imp.chunks.validated)} validated of ${count(imp.chunks.total)}`)),
      progressBar(imp, `Progress of import ${imp.filename || imp.id}`),
      imp.counts.failed ? errors : "",
      h("h3", {}, "Timeline"),
      timeline,
    );
  }

  more.addEventListener("click", () => page().catch((e) => { status.textContent = problemText(e); }));
  page()
    .then(() => subscribe(`${LIST}/stream`, { since: newest }, (type, imp) => {
      if (type === "import") show(imp, { prepend: !rows.has(imp.id) });
    }, stop.signal))
    .catch((e) => { if (!stop.signal.aborted) status.textContent = problemText(e); });
  if (args[0]) api(`${LIST}/${args[0]}`, { signal: stop.signal }).then(showDetail).catch(() => {});
  return () => stop.abort();
}
