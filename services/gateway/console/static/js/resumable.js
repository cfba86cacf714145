// A file sent as a resumable upload (tus 1.0, /api/v1/database/uploads) with the tus
// project's own client (vendor/tus.min.js): upload progress, retries, a network drop
// waited out, and the upload's URL kept in this tab (sessionStorage) so that after a
// reload the same file, chosen again, goes on where it stopped.

import { api, failure, getKey, url } from "./api.js";

export const UPLOADS = "/api/v1/database/uploads";
const PART = 8 * 1024 * 1024; // bytes per PATCH (each one request of the key's rate limit)
const RETRY_MS = [0, 1000, 3000, 5000, 10000, 20000, 30000];
const PREFIX = "tidegate.upload::";

/** tus-js-client's URL storage in this tab's sessionStorage (its own is localStorage:
 * shared by every tab, and kept after the tab is closed). */
export const tabUploads = {
  async findAllUploads() {
    return entries(PREFIX);
  },
  async findUploadsByFingerprint(fingerprint) {
    return entries(`${PREFIX}${fingerprint}::`);
  },
  async removeUpload(key) {
    sessionStorage.removeItem(key);
  },
  async addUpload(fingerprint, upload) {
    const key = `${PREFIX}${fingerprint}::${crypto.randomUUID()}`;
    sessionStorage.setItem(key, JSON.stringify(upload));
    return key;
  },
};

function entries(prefix) {
  const found = [];
  for (let i = 0; i < sessionStorage.length; i++) {
    const key = sessionStorage.key(i);
    if (!key.startsWith(prefix)) continue;
    try {
      found.push({ ...JSON.parse(sessionStorage.getItem(key)), urlStorageKey: key });
    } catch {
      sessionStorage.removeItem(key); // not ours to read: forget it
    }
  }
  return found;
}

function forget(uploadUrl) {
  for (const entry of entries(PREFIX)) {
    if (entry.uploadUrl === uploadUrl) sessionStorage.removeItem(entry.urlStorageKey);
  }
}

const statusOf = (error) => error.originalResponse?.getStatus() ?? 0;
// No answer, a busy or restarting gateway, another PATCH first, the rate limit.
const passing = (status) => [0, 409, 423, 429].includes(status) || status >= 500;

/** A tus client's error as the API's problem (ApiError), or as it is. */
function problemOf(error) {
  const response = error.originalResponse;
  if (!response) return error;
  return failure(response.getStatus(), response.getHeader("Content-Type") || "", response.getBody() || "");
}

/**
 * Send `file` as a new upload with the import's options `query`, or go on with this tab's
 * earlier upload of the same file and options. Resolves with the import it became.
 * `onProgress(sent, total)`; `onNote(text)` tells of waits (an empty text: none).
 */
export function sendFile(file, query, { onProgress, onNote, signal }) {
  return new Promise((resolve, reject) => {
    let waiting = null; // the listener that resumes once the network is back
    const upload = new window.tus.Upload(file, {
      endpoint: url(UPLOADS, query).toString(),
      chunkSize: PART,
      retryDelays: RETRY_MS,
      headers: { Authorization: `Bearer ${getKey()}` },
      metadata: { filename: file.name },
      urlStorage: tabUploads,
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      onProgress,
      // Asked again after a pause (the offset first), while online.
      onShouldRetry: (error) => passing(statusOf(error)) && navigator.onLine,
      onError: (error) => {
        if (!navigator.onLine) {
          onNote("The network is down. The upload waits, and goes on by itself when it is back.");
          waiting = () => {
            waiting = null;
            onNote("The network is back: the upload goes on from what the gateway has.");
            upload.start();
          };
          window.addEventListener("online", waiting, { once: true });
          return;
        }
        if (!passing(statusOf(error))) forget(upload.url); // refused: it is over
        reject(problemOf(error));
      },
      onSuccess: () => {
        onNote("");
        api(upload.url, { signal })
          .then((done) => api(done.import_url, { signal }))
          .then(resolve, reject);
      },
    });
    signal.addEventListener("abort", () => {
      if (waiting) window.removeEventListener("online", waiting);
      upload.abort(false); // the URL stays in this tab: the same file goes on later
      reject(new DOMException("left the screen", "AbortError"));
    });
    upload.findPreviousUploads().then((previous) => {
      if (previous.length) {
        upload.resumeFromPreviousUpload(previous[0]);
        onNote("Going on with this file's earlier upload from where it stopped.");
      }
      upload.start();
    }, reject);
  });
}

/** This tab's unfinished uploads, as the gateway has them (forgotten once they are gone
 * or have become imports). */
export async function unfinished() {
  const found = [];
  for (const entry of await tabUploads.findAllUploads()) {
    try {
      const status = await api(entry.uploadUrl);
      if (status.import_id) tabUploads.removeUpload(entry.urlStorageKey);
      else found.push({ ...status, url: entry.uploadUrl, key: entry.urlStorageKey });
    } catch (error) {
      if (error.status === 404 || error.status === 410) tabUploads.removeUpload(entry.urlStorageKey);
      else throw error;
    }
  }
  return found;
}

/** End an unfinished upload (tus termination): its bytes are deleted. */
export async function discard(upload) {
  await api(upload.url, { method: "DELETE", headers: { "Tus-Resumable": "1.0.0" } });
  tabUploads.removeUpload(upload.key);
}
