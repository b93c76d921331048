// The service's HTTP API as the page uses it: one place that adds the API key and turns the
// uniform error body {"error": {code, message, param, allowed}} into an ApiError.

const KEY_STORAGE = "sentiric.apiKey";

export class ApiError extends Error {
  constructor(status, code, message, param = null, allowed = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.param = param;
    this.allowed = allowed;
  }
}

export function storedApiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return ""; // storage can be blocked (privacy settings): then the key lives only in the field
  }
}

let currentKey = storedApiKey();

export function setApiKey(key) {
  currentKey = key.trim();
  try {
    if (currentKey) localStorage.setItem(KEY_STORAGE, currentKey);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    /* kept in memory for this page only */
  }
}

function authHeaders(extra = {}) {
  const headers = new Headers(extra);
  if (currentKey) headers.set("Authorization", `Bearer ${currentKey}`);
  return headers;
}

/** Turn a failed response into an ApiError carrying the API's own message. */
export async function errorFrom(response) {
  let body = null;
  const text = await response.text().catch(() => "");
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  const detail = body && typeof body === "object" ? body.error : null;
  let message = detail && detail.message
    ? String(detail.message)
    : `The service answered ${response.status} ${response.statusText}${text ? `: ${text.slice(0, 200)}` : "."}`;
  if (response.status === 401) {
    message += " Enter the service's key in the API key field at the top of the page.";
    window.dispatchEvent(new CustomEvent("sentiric:unauthorized"));
  }
  const retry = response.headers.get("Retry-After");
  if ((response.status === 429 || response.status === 503) && retry) message += ` (retry in ${retry} s)`;
  return new ApiError(response.status, detail?.code ?? `http_${response.status}`, message, detail?.param ?? null, detail?.allowed ?? null);
}

/**
 * fetch() against the service: resolves with the (ok) Response, rejects with an ApiError.
 * `json` sends a JSON body, `form` a FormData body.
 */
export async function call(path, { method = "GET", json, form, signal } = {}) {
  const headers = authHeaders(json !== undefined ? { "Content-Type": "application/json" } : {});
  const body = json !== undefined ? JSON.stringify(json) : form;
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "network", `Cannot reach the service (${err.message}). Is it running?`);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function getJson(path, options) {
  const response = await call(path, options);
  return response.json();
}
