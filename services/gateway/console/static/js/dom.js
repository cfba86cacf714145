// Building the page from data. Every value goes in as text (textContent), never as HTML,
// so a cell holding "<script>" or "=HYPERLINK(...)" is shown as the characters it is.

/** An element: h("td", { class: "bad", onclick: f }, "text", child, [more]) */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

/** A wide table in a box that scrolls sideways on narrow screens (reachable by keyboard). */
export function scroller(label, table) {
  return h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": label }, table);
}

export function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

const numbers = new Intl.NumberFormat("en");

export function count(value) {
  return value === null || value === undefined ? "–" : numbers.format(value);
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}

export function seconds(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  if (value < 60) return `${value.toFixed(value < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(value / 60);
  return minutes < 60 ? `${minutes} min ${Math.round(value % 60)} s` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

let toastTimer;

/** A short message read out by screen readers (role=status). */
export function toast(message) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.classList.add("shown");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("shown"), 5000);
}

/** The problem's detail, and its row/column when it names one. */
export function problemText(error) {
  const problem = error.problem || {};
  const where = [];
  if (problem.line) where.push(`line ${problem.line}`);
  if (problem.column) where.push(`column ${problem.column}`);
  return (where.length ? `${where.join(", ")}: ` : "") + (error.message || String(error));
}

export const FINAL = new Set(["completed", "completed_with_errors", "failed", "cancelled", "rolled_back"]);

const STATUS = {
  pending: ["◷", "Pending"],
  validating: ["◔", "Validating"],
  loading: ["◑", "Loading"],
  completed: ["✓", "Completed"],
  completed_with_errors: ["⚠", "Completed with errors"],
  failed: ["✕", "Failed"],
  cancelled: ["⊘", "Cancelled"],
  rolled_back: ["↶", "Rolled back"],
};

/** A status indicator: a symbol and a word, never colour alone. */
export function statusBadge(status) {
  const [symbol, label] = STATUS[status] || ["?", status];
  return h("span", { class: `badge status-${status}` }, h("span", { "aria-hidden": "true" }, symbol), ` ${label}`);
}

/**
 * Ask before doing something that cannot be taken back: a modal <dialog> (focus moves into
 * it; Escape cancels). Resolves to true when confirmed.
 */
export function confirmDialog({ title, body = [], confirm = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, title),
      h("div", {}, body),
      h("div", { class: "actions" },
        h("button", { type: "button", class: danger ? "danger" : "", value: "yes",
          onclick: () => dialog.close("yes") }, confirm),
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close("no") }, "Cancel")));
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "yes");
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A small table: headers, and rows of cells (text or nodes). */
export function table(caption, headers, rows, attrs = {}) {
  return scroller(caption, h("table", { class: "grid", ...attrs },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c)))))));
}
