// The console's shell: sign-in with an API key (checked with GET /api/v1/me), the screens
// the key's role may use, and a router on the location's hash (#/imports, #/validate/…).

import { api, getKey, onUnauthorized, setKey } from "./api.js";
import { h } from "./dom.js";
import * as imports from "./screens/imports.js";
import * as recovery from "./screens/recovery.js";
import * as troubleshoot from "./screens/troubleshoot.js";
import * as validate from "./screens/validate.js";
import * as verify from "./screens/verify.js";

// A screen is offered when the key holds any one of `needs`.
const SCREENS = [
  { path: "validate", title: "Validation", needs: ["validate"], module: validate },
  { path: "imports", title: "Imports", needs: ["import", "validate"], module: imports },
  { path: "verify", title: "Verification", needs: ["validate"], module: verify },
  { path: "troubleshoot", title: "Troubleshooting", needs: ["validate"], module: troubleshoot },
  { path: "recovery", title: "Recovery", needs: ["import"], module: recovery },
];

let me = null;
let leave = null; // the current screen's cleanup

const $ = (id) => document.getElementById(id);
const allowed = (screen) => screen.needs.some((p) => me.permissions.includes(p));

function showSignIn(message = "") {
  me = null;
  leave?.();
  leave = null;
  $("screen").replaceChildren();
  $("nav").hidden = $("who").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message;
  $("api-key").focus();
}

function showShell() {
  $("sign-in").hidden = true;
  $("nav").replaceChildren(
    ...SCREENS.filter(allowed).map((s) => h("a", { href: `#/${s.path}`, "data-screen": s.path }, s.title)),
  );
  $("nav").hidden = false;
  $("who-name").textContent = `${me.name} · ${me.role}`;
  $("who").hidden = false;
}

function route() {
  if (!me) return;
  const hash = location.hash;
  if (hash && !hash.startsWith("#/")) return; // an in-page link
  const [name, ...rest] = hash.slice(2).split("/").map(decodeURIComponent);
  const offered = SCREENS.filter(allowed);
  const screen = offered.find((s) => s.path === name) || offered[0];
  leave?.();
  leave = null;
  $("toast").classList.remove("shown");
  const root = $("screen");
  root.replaceChildren();
  for (const link of $("nav").querySelectorAll("a")) {
    if (link.dataset.screen === screen?.path) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!screen) {
    root.append(h("section", { class: "card" }, h("h1", {}, "Nothing to show"),
      h("p", {}, `A ${me.role} key may not validate or import; the console has no screen for it.`)));
    return;
  }
  document.title = `${screen.title} · tidegate`;
  leave = screen.module.render(root, { me, can: (p) => me.permissions.includes(p), args: rest }) || null;
}

async function signIn(key) {
  setKey(key);
  try {
    me = await api("/api/v1/me");
  } catch (error) {
    setKey(null);
    showSignIn(error.status === 401 ? "This key is not valid (unknown, revoked or expired)." : error.message);
    return;
  }
  showShell();
  route();
}

$("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  $("api-key").value = "";
  signIn(key);
});
$("sign-out").addEventListener("click", () => {
  setKey(null);
  showSignIn();
});
onUnauthorized(() => {
  setKey(null);
  showSignIn("The key is no longer valid; sign in again.");
});
window.addEventListener("hashchange", route);

if (getKey()) signIn(getKey());
else showSignIn();
