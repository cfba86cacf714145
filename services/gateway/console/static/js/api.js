// The public HTTP API, with the API key from this tab's session storage in a header (never
// in a URL or a cookie). Errors are RFC 9457 problems, thrown as ApiError.

const KEY = "tidegate.api-key";

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

let unauthorized = () => {};

/** Called when the API answers 401 (the key was revoked or has expired). */
export function onUnauthorized(callback) {
  unauthorized = callback;
}

export function url(path, query = {}) {
  const target = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") target.searchParams.set(name, value);
  }
  return target;
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${getKey()}`, ...extra };
}

/** An answer that is not a success as an ApiError (its problem, or its text). */
export function failure(status, type, text) {
  let problem = { detail: text };
  if (type.includes("json")) {
    try {
      problem = JSON.parse(text);
    } catch {
      // not JSON after all: its text is the detail
    }
  }
  if (status === 401) unauthorized();
  return new ApiError(status, problem);
}

async function send(path, { method = "GET", query, body, signal, headers: more = {} } = {}) {
  const extra = { Accept: "application/json, application/problem+json", ...more };
  let payload = body;
  if (body !== undefined && !(body instanceof FormData) && !(body instanceof Blob)) {
    payload = JSON.stringify(body);
    extra["Content-Type"] = "application/json";
  }
  const answer = await fetch(url(path, query), {
    method, body: payload, signal, headers: headers(extra), credentials: "omit", cache: "no-store",
  });
  if (answer.ok) return answer;
  throw failure(answer.status, answer.headers.get("Content-Type") || "", await answer.text());
}

/** The JSON body of a request (null for 204). */
export async function api(path, options = {}) {
  const answer = await send(path, options);
  return answer.status === 204 ? null : answer.json();
}

/** Save what `path` answers as a file named `filename`. */
export async function download(path, query, filename) {
  const blob = await (await send(path, { query })).blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

/**
 * Server-Sent Events from `path`, read with fetch (EventSource cannot send the key in a
 * header): `onEvent(type, data)` per event; reconnects with Last-Event-ID until `signal`
 * aborts.
 */
export async function subscribe(path, query, onEvent, signal) {
  let last = null;
  while (!signal.aborted) {
    try {
      const extra = { Accept: "text/event-stream" };
      if (last) extra["Last-Event-ID"] = last;
      const answer = await fetch(url(path, query), {
        headers: headers(extra), signal, credentials: "omit", cache: "no-store",
      });
      if (answer.status === 401) { unauthorized(); return; }
      if (!answer.ok) throw new ApiError(answer.status, await answer.json());
      const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let type = "message";
          const data = [];
          for (const line of block.split("\n")) {
            const colon = line.indexOf(":");
            if (colon === 0) continue; // a comment (keep-alive)
            const field = colon < 0 ? line : line.slice(0, colon);
            const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") type = text;
            else if (field === "data") data.push(text);
            else if (field === "id") last = text;
          }
          if (data.length) onEvent(type, JSON.parse(data.join("\n")));
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      console.warn("live updates interrupted; reconnecting", error.message);
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}
