// Long work (rollback, backup, restore, delete) answers 202 with an operation: wait for it.

import { api } from "./api.js";

const DONE = new Set(["completed", "refused", "failed"]);

/** The operation once it has finished (polled every `ms`; operations are short). */
export async function finished(operation, signal, ms = 500) {
  let op = operation;
  while (!DONE.has(op.status)) {
    await new Promise((resolve) => setTimeout(resolve, ms));
    if (signal.aborted) return op;
    op = await api(op.links.self, { signal });
  }
  return op;
}
