// A first look at a CSV file in the browser, before anything is uploaded: its encoding (as
// the gateway decides it: the preview asks), delimiter, header and first records.

import { api } from "./api.js";

const DELIMITERS = [",", ";", "\t", "|"];
const NAMES = { ",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe" };

export function delimiterName(delimiter) {
  return NAMES[delimiter] || delimiter;
}

/** The candidate that splits the first line (outside quotes) most often. */
export function detectDelimiter(text) {
  const counts = new Map(DELIMITERS.map((d) => [d, 0]));
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && (ch === "\n" || ch === "\r")) break;
    else if (!quoted && counts.has(ch)) counts.set(ch, counts.get(ch) + 1);
  }
  let best = ",";
  for (const [d, n] of counts) if (n > counts.get(best)) best = d;
  return best;
}

/** Up to `limit` records as {line, cells}; `line` is the file line a record starts on. */
export function parse(text, delimiter, limit = Infinity) {
  const records = [];
  let cells = [];
  let cell = "";
  let quoted = false;
  let line = 1;
  let start = 1;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const finish = () => {
    cells.push(cell);
    records.push({ line: start, cells });
    cells = [];
    cell = "";
  };
  for (; i < text.length && records.length < limit; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { cell += '"'; i++; }
      else if (ch === '"') quoted = false;
      else { if (ch === "\n") line++; cell += ch; }
    } else if (ch === '"') quoted = true;
    else if (ch === delimiter) { cells.push(cell); cell = ""; }
    else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      finish();
      line++;
      start = line;
    } else cell += ch;
  }
  if (records.length < limit && (cell !== "" || cells.length)) finish();
  return records.filter((r) => !(r.cells.length === 1 && r.cells[0] === ""));
}

/** How the header's names map onto the table's columns (as the gateway maps them). */
export function mapHeader(header, table) {
  const exact = new Set(table.columns.map((c) => c.name));
  const folded = new Map();
  const add = (name, target) => folded.set(name, [...(folded.get(name) || []), target]);
  for (const c of table.columns) add(c.name.toLowerCase(), c.name);
  for (const [alias, target] of Object.entries(table.aliases)) add(alias.trim().toLowerCase(), target);
  const mapped = header.map((raw) => {
    const name = raw.trim();
    if (exact.has(name)) return { raw, column: name };
    const options = folded.get(name.toLowerCase()) || [];
    return { raw, column: options.length === 1 ? options[0] : null };
  });
  const present = new Set(mapped.map((m) => m.column).filter(Boolean));
  const missing = table.columns.filter((c) => c.required && !present.has(c.name)).map((c) => c.name);
  return { mapped, missing, unknown: mapped.filter((m) => !m.column).map((m) => m.raw) };
}

/** Encoding, delimiter, header and the first records of `file`. */
const SNIFF_BYTES = 64 * 1024;

/**
 * The encoding the gateway decides for `file` (it is asked, with the file's first 64 KiB,
 * so the preview tells the same story as the import), then its delimiter, header and first
 * `rows` records. Throws the gateway's problem when it cannot tell the encoding.
 */
export async function sniff(file, rows = 5) {
  const decided = await api("/api/v1/database/encodings/detect", {
    method: "POST",
    query: { complete: file.size <= SNIFF_BYTES ? "true" : "false" },
    body: new Blob([file.slice(0, SNIFF_BYTES)], { type: "text/csv" }),
  });
  const bytes = new Uint8Array(await file.slice(0, 256 * 1024).arrayBuffer());
  const text = new TextDecoder(decided.label).decode(bytes);
  const delimiter = detectDelimiter(text);
  const [head, ...first] = parse(text, delimiter, rows + 1);
  return {
    encoding: decided.encoding,
    decidedBy: decided.decided_by,
    confidence: decided.confidence,
    label: decided.label,
    delimiter,
    header: head ? head.cells : [],
    rows: first,
  };
}

/** The records of `file` that start on the given lines (for the error grid). */
export async function recordsAt(file, encoding, delimiter, lines) {
  const wanted = new Set(lines);
  const last = Math.max(...lines);
  const text = new TextDecoder(encoding).decode(await file.arrayBuffer());
  const found = new Map();
  for (const record of parse(text, delimiter)) {
    if (wanted.has(record.line)) found.set(record.line, record.cells);
    if (record.line >= last) break;
  }
  return found;
}
