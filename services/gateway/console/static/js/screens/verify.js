// Screen 3, data verification: per table, the latest verify-data result and its history,
// the seed's five metrics, the offending rows found, and a button to verify again.

import { api } from "../api.js";
import { count, FINAL, h, problemText, scroller, toast, when } from "../dom.js";

const VERIFICATIONS = "/api/v1/database/verifications";
const POLL_MS = 1000;

/** A row's key (or a shared value) as `id=101, …`. */
function keyText(key) {
  return Object.entries(key).map(([k, v]) => `${k}=${v}`).join(", ");
}

function fields(list) {
  return list?.length ? list.map((f) => `${f.field} (${count(f.count)})`).join(", ") : "none";
}

function metrics(report) {
  return h("dl", { class: "metrics" },
    h("div", {}, h("dt", {}, "Total records"), h("dd", {}, count(report.total_records))),
    h("div", {}, h("dt", {}, "Failed records"), h("dd", {}, count(report.failed_records))),
    h("div", {}, h("dt", {}, "Duplicates"), h("dd", {}, count(report.duplicate_count))),
    h("div", {}, h("dt", {}, "Missing required fields"), h("dd", {}, fields(report.missing_required_fields))),
    h("div", {}, h("dt", {}, "Invalid format fields"), h("dd", {}, fields(report.invalid_format_fields))));
}

function verdict(passed) {
  return h("span", { class: `badge ${passed ? "status-completed" : "status-failed"}` },
    h("span", { "aria-hidden": "true" }, passed ? "✓" : "✕"), passed ? " Passes" : " Findings");
}

export function render(root, { can }) {
  const stop = new AbortController();
  const target = h("select", { id: "verify-table" });
  const message = h("p", { class: "error", role: "alert" });
  const running = h("div", { id: "verify-running", "aria-live": "polite" });
  const tables = h("div", { id: "verify-tables" });
  root.append(
    h("section", { class: "card" },
      h("h1", {}, "Data verification"),
      h("p", { class: "muted" }, "Checks every row of a table again: the rule file's rules, unique keys, references, and that what imports loaded is unchanged."),
      can("validate") ? h("form", { onsubmit: (e) => { e.preventDefault(); start(); } },
        h("div", { class: "fields" }, h("div", {}, h("label", { for: "verify-table" }, "Table to verify"), target)),
        h("div", { class: "actions" }, h("button", { type: "submit", id: "run-verify" }, "Verify")),
        message) : "",
      running),
    tables);

  function tableCard(name, history) {
    const latest = history.find((v) => v.status === "completed");
    const report = latest?.result?.find((r) => r.table === name);
    const sample = report?.sample || [];
    return h("section", { class: "card", "aria-labelledby": `t-${name}`, "data-table": name },
      h("h2", { id: `t-${name}` }, name, " ", report ? verdict(report.failed_records === 0 && report.duplicate_count === 0 && sample.length === 0) : ""),
      report ? [
        h("p", { class: "muted small" }, `Verified ${when(latest.finished_at)} · ${count(Math.round(report.rows_per_second))} rows/s`),
        metrics(report),
        h("h3", {}, "Checks"),
        h("p", {}, Object.entries(report.checks).map(([check, n]) => `${check}: ${count(n)}`).join(" · ")),
        sample.length ? [
          h("h3", {}, `Offending rows (first ${sample.length})`),
          scroller(`Offending rows of ${name}`, h("table", { class: "grid findings" },
            h("thead", {}, h("tr", {}, ["Row key", "Check", "Column", "Code", "Reason"].map((c) => h("th", { scope: "col" }, c)))),
            h("tbody", {}, sample.map((f) => h("tr", {},
              h("td", {}, f.key ? keyText(f.key) : "–"),
              h("td", {}, f.check), h("td", {}, f.column || "–"), h("td", {}, f.code),
              h("td", {}, f.rows?.length ? `${f.message}: ${f.rows.map(keyText).join("; ")}` : f.message)))))),
        ] : "",
      ] : h("p", {}, "Not verified yet."),
      h("h3", {}, "History"),
      scroller(`Verification history of ${name}`, h("table", { class: "grid history" },
        h("thead", {}, h("tr", {}, ["When", "Status", "Total", "Failed", "Duplicates"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, history.map((v) => {
          const r = v.result?.find((x) => x.table === name);
          return h("tr", {}, h("td", {}, when(v.created_at)), h("td", {}, v.status),
            h("td", { class: "num" }, count(r?.total_records)), h("td", { class: "num" }, count(r?.failed_records)),
            h("td", { class: "num" }, count(r?.duplicate_count)));
        })))));
  }

  async function load() {
    const [known, answer] = await Promise.all([
      api("/api/v1/tables", { signal: stop.signal }),
      api(VERIFICATIONS, { query: { limit: 100 }, signal: stop.signal }),
    ]);
    target.replaceChildren(...known.items.map((t) => h("option", { value: t.name }, t.name)));
    const byTable = new Map();
    for (const v of answer.items) {
      if (v.key) continue; // one row's verification (record history), not the table's
      for (const name of v.tables) {
        if (!byTable.has(name)) byTable.set(name, []);
        byTable.get(name).push(v);
      }
    }
    tables.replaceChildren(...(byTable.size
      ? [...byTable].sort(([a], [b]) => a.localeCompare(b)).map(([name, history]) => tableCard(name, history))
      : [h("section", { class: "card" }, h("p", {}, "No verification yet."))]));
  }

  async function start() {
    message.textContent = "";
    let v;
    try {
      v = await api(VERIFICATIONS, { method: "POST", body: { tables: [target.value] }, signal: stop.signal });
    } catch (error) {
      message.textContent = problemText(error);
      return;
    }
    toast(`Verifying ${target.value}`);
    while (!stop.signal.aborted && !FINAL.has(v.status)) {
      const p = v.progress;
      const share = p && p.rows_estimated ? Math.min(1, p.rows_checked / p.rows_estimated) : 0;
      running.replaceChildren(h("div", { class: "progress" },
        h("progress", { max: "100", value: String(Math.round(share * 100)), "aria-label": "Verification progress" }),
        h("span", { class: "percent" }, p ? `${count(p.rows_checked)} rows checked` : "waiting")));
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      v = await api(v.links.self, { signal: stop.signal });
    }
    running.replaceChildren(h("p", {}, `Verification ${v.status}${v.error ? `: ${v.error}` : ""}.`));
    await load();
  }

  load().catch((e) => { if (!stop.signal.aborted) message.textContent = problemText(e); });
  return () => stop.abort();
}
