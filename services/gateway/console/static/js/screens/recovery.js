// Screen 5, recovery and backups: back tables up, restore or delete a backup (admin), and
// roll back or cancel an import, each after a confirmation that says what will change
// (a rollback's dry run first).

import { api } from "../api.js";
import { confirmDialog, count, FINAL, h, problemText, statusBadge, table, toast, when } from "../dom.js";
import { finished } from "../operations.js";

const API = "/api/v1/database";

function size(bytes) {
  if (bytes === null || bytes === undefined) return "–";
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function render(root, { can }) {
  const stop = new AbortController();
  const signal = stop.signal;
  const admin = can("admin");
  const choices = h("fieldset", { id: "backup-tables" }, h("legend", {}, "Tables to back up"));
  const reason = h("input", { id: "backup-reason", type: "text", maxlength: "500" });
  const backups = h("div", { id: "backups" });
  const imports = h("div", { id: "recovery-imports" });
  const message = h("p", { class: "error", role: "alert", id: "recovery-error" });
  const said = h("p", { role: "status", id: "recovery-status" });

  root.append(
    h("section", { class: "card", "aria-labelledby": "backups-title" },
      h("h1", { id: "backups-title" }, "Recovery and backups"),
      message, said,
      h("h2", {}, "Back up"),
      h("form", { onsubmit: (e) => { e.preventDefault(); backUp(); } },
        choices,
        h("div", { class: "fields" }, h("div", {}, h("label", { for: "backup-reason" }, "Reason (optional)"), reason)),
        h("div", { class: "actions" }, h("button", { type: "submit", id: "backup-run" }, "Back up"))),
      h("h2", {}, "Backups"),
      backups),
    h("section", { class: "card", "aria-labelledby": "rollback-title" },
      h("h2", { id: "rollback-title" }, "Roll back or cancel an import"),
      imports),
  );

  async function run(what, request) {
    message.textContent = "";
    said.textContent = `${what}…`;
    try {
      const answer = await request();
      const op = answer.links?.self?.includes("/operations/") ? await finished(answer, signal) : answer;
      const ok = op.status !== "failed" && op.status !== "refused";
      said.textContent = ok ? `${what}: done.` : "";
      if (!ok) message.textContent = `${what} ${op.status}: ${op.error}`;
      else toast(`${what}: done`);
    } catch (error) {
      said.textContent = "";
      message.textContent = problemText(error);
    }
    await Promise.all([listBackups(), listImports()]);
  }

  async function backUp() {
    const tables = [...choices.querySelectorAll("input:checked")].map((c) => c.value);
    if (!tables.length) { message.textContent = "Choose at least one table."; return; }
    await run(`Backup of ${tables.join(", ")}`, () =>
      api(`${API}/backups`, { method: "POST", body: { tables, reason: reason.value || undefined }, signal }));
  }

  async function restore(b) {
    const ok = await confirmDialog({
      title: "Restore this backup?",
      body: [h("p", {}, `Every row of ${b.tables.join(", ")} is replaced by the backup's (taken ${when(b.created_at)}): `,
        Object.entries(b.row_counts || {}).map(([t, n]) => `${t}: ${count(n)} rows`).join(", "), "."),
        h("p", {}, "Rows written since then are lost.")],
      confirm: "Restore", danger: true,
    });
    if (ok) await run("Restore", () => api(b.links.restore, { method: "POST", signal }));
  }

  async function remove(b) {
    const ok = await confirmDialog({
      title: "Delete this backup?",
      body: [h("p", {}, `The backup of ${b.tables.join(", ")} taken ${when(b.created_at)} is deleted for good.`)],
      confirm: "Delete", danger: true,
    });
    if (ok) await run("Delete", () => api(b.links.self, { method: "DELETE", signal }));
  }

  async function rollBack(imp) {
    let plan;
    try {
      plan = await api(`${API}/imports/${imp.id}/rollback`, { method: "POST", query: { dry_run: "true" }, signal });
    } catch (error) {
      message.textContent = problemText(error);
      return;
    }
    const force = h("input", { type: "checkbox", id: "rollback-force" });
    const ok = await confirmDialog({
      title: `Roll back ${imp.filename || imp.id}?`,
      body: [
        h("p", { id: "rollback-plan" }, `It would delete ${count(plan.delete)} rows it inserted and restore ${count(plan.restore)} rows it updated.`),
        plan.conflicts ? [
          h("p", { class: "error" }, `${count(plan.conflicts)} of those rows were changed since the import.`),
          h("div", { class: "check" }, force, h("label", { for: "rollback-force" }, "Overwrite the changed rows too (force)")),
        ] : "",
      ],
      confirm: "Roll back", danger: true,
    });
    if (ok) {
      await run("Rollback", () => api(`${API}/imports/${imp.id}/rollback`, {
        method: "POST", query: { force: force.checked ? "true" : undefined }, signal,
      }));
    }
  }

  async function cancel(imp) {
    const ok = await confirmDialog({
      title: `Cancel ${imp.filename || imp.id}?`,
      body: [h("p", {}, "The import stops; what it loaded so far is rolled back.")],
      confirm: "Cancel the import", danger: true,
    });
    if (ok) await run("Cancel", () => api(`${API}/imports/${imp.id}/cancel`, { method: "POST", signal }));
  }

  async function listBackups() {
    const answer = await api(`${API}/backups`, { signal });
    backups.replaceChildren(answer.items.length ? table("Backups", ["Taken", "Tables", "Status", "Reason", "Size", "Rows", "Actions"],
      answer.items.map((b) => [
        when(b.created_at), b.tables.join(", "), b.status, b.reason ?? "", size(b.size_bytes),
        Object.values(b.row_counts || {}).reduce((a, n) => a + n, 0).toLocaleString("en"),
        admin && b.status === "completed" ? h("div", { class: "actions tight" },
          h("button", { type: "button", class: "secondary", onclick: () => restore(b) }, "Restore"),
          h("button", { type: "button", class: "quiet", onclick: () => remove(b) }, "Delete")) : "",
      ]), { id: "backup-list" }) : h("p", {}, "No backups."));
  }

  async function listImports() {
    const answer = await api(`${API}/imports`, { query: { limit: 50 }, signal });
    const loads = answer.items.filter((i) => i.mode === "import");
    imports.replaceChildren(loads.length ? table("Imports", ["Started", "File", "Table", "Status", "Loaded", "Rollback", "Action"],
      loads.map((i) => [
        when(i.created_at), i.filename || i.id.slice(0, 8), i.table, statusBadge(i.status), count(i.counts.loaded),
        i.recovery?.rollback ? i.recovery.rollback.status : "–",
        FINAL.has(i.status)
          ? (["rolled_back", "cancelled"].includes(i.status) ? "–"
            : h("button", { type: "button", class: "secondary", "data-rollback": i.id, onclick: () => rollBack(i) }, "Roll back…"))
          : h("button", { type: "button", class: "secondary", "data-cancel": i.id, onclick: () => cancel(i) }, "Cancel…"),
      ]), { id: "rollback-list" }) : h("p", {}, "No imports that loaded data."));
  }

  api("/api/v1/tables", { signal }).then((answer) => {
    choices.append(...answer.items.map((t, n) => h("div", { class: "check" },
      h("input", { type: "checkbox", id: `backup-table-${n}`, value: t.name }),
      h("label", { for: `backup-table-${n}` }, t.name))));
  }).catch((e) => { if (!signal.aborted) message.textContent = problemText(e); });
  Promise.all([listBackups(), listImports()]).catch((e) => { if (!signal.aborted) message.textContent = problemText(e); });
  return () => stop.abort();
}
