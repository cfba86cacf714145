// An import's progress as a person reads it: share done, rows/s and time left.

import { FINAL, h, seconds } from "./dom.js";

/** {share 0..1, rate rows/s, eta s} from the import resource. */
export function measure(imp, now = Date.now()) {
  const chunks = imp.chunks || {};
  const final = FINAL.has(imp.status);
  let share = final ? 1 : 0;
  if (!final && chunks.total) {
    const done = imp.mode === "validate_only" ? chunks.validated : chunks.loaded;
    share = Math.min(1, done / chunks.total);
  }
  const rows = imp.counts?.file_rows ?? imp.counts?.total ?? 0;
  const end = imp.finished_at ? Date.parse(imp.finished_at) : now;
  const elapsed = Math.max(0.001, (end - Date.parse(imp.created_at)) / 1000);
  const rate = share > 0 && rows ? (share * rows) / elapsed : null;
  const eta = !final && rate ? ((1 - share) * rows) / rate : null;
  return { share, rate, eta, final };
}

/** A labelled progress bar with its percentage as text. */
export function progressBar(imp, label) {
  const { share } = measure(imp);
  const percent = Math.round(share * 100);
  return h("div", { class: "progress" },
    h("progress", { max: "100", value: String(percent), "aria-label": label }),
    h("span", { class: "percent" }, `${percent} %`));
}

export function rateText(imp) {
  const { rate, eta, final } = measure(imp);
  return {
    rate: rate ? `${Math.round(rate).toLocaleString("en")}/s` : "–",
    eta: final ? "done" : seconds(eta),
  };
}
