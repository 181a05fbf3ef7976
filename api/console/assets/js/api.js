// The browser's client of the Watchpost API: sign-in, JSON requests with the token, and the
// live feed (Server-Sent Events read with fetch, so the token travels in a header, not a URL).

const SESSION_KEY = "wp.session";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

/** The stored sign-in (token, who, until when), or null when absent or expired. */
export function loadSession() {
  try {
    const session = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    if (session && session.expires_at > Date.now() + 5000) return session;
  } catch {
    /* a damaged entry is as good as none */
  }
  localStorage.removeItem(SESSION_KEY);
  return null;
}

export function clearSession() {
  localStorage.removeItem(SESSION_KEY);
}

/** Sign in with a username and password; the session is stored for the next page load. */
export async function signIn(username, password) {
  const body = new URLSearchParams({ username, password });
  const r = await fetch("/auth/token", { method: "POST", body });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, data.detail);
  const session = {
    token: data.access_token,
    role: data.role,
    unit: data.unit,
    username,
    expires_at: Date.now() + data.expires_in * 1000,
  };
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
  return session;
}

export class Api {
  constructor(session, { onUnauthorized } = {}) {
    this.session = session;
    this.onUnauthorized = onUnauthorized || (() => {});
  }

  headers(extra) {
    return { Authorization: `Bearer ${this.session.token}`, ...extra };
  }

  /** A JSON request; ApiError with the API's reason on failure (401 also signs out). */
  async request(method, path, body) {
    const init = { method, headers: this.headers() };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const r = await fetch(path, init);
    if (r.status === 401) this.onUnauthorized();
    const data = r.status === 204 ? null : await r.json().catch(() => null);
    if (!r.ok) throw new ApiError(r.status, data && data.detail);
    return data;
  }

  get(path, params) {
    return this.request("GET", params ? `${path}?${query(params)}` : path);
  }

  post(path, body) {
    return this.request("POST", path, body);
  }

  /** A binary resource (an image) as an object URL, or null when there is none (404). */
  async blobUrl(path) {
    const r = await fetch(path, { headers: this.headers() });
    if (!r.ok) return null;
    return URL.createObjectURL(await r.blob());
  }

  /**
   * Follow the live feed: onEntry(entry) for each entry, onState("live" | "reconnecting" | "refused").
   * Resumes after the last id it received, so nothing is missed or repeated across reconnects.
   * Returns a function that stops it.
   */
  stream(onEntry, onState) {
    let stopped = false;
    let controller = null;
    let after = null;
    const run = async () => {
      while (!stopped) {
        controller = new AbortController();
        try {
          const url = after === null ? "/stream" : `/stream?after=${after}`;
          const r = await fetch(url, { headers: this.headers({ Accept: "text/event-stream" }), signal: controller.signal });
          if (r.status === 401) {
            this.onUnauthorized();
            return;
          }
          if (r.status === 403) {
            onState("refused");
            return;
          }
          if (!r.ok) throw new ApiError(r.status);
          onState("live");
          await readEvents(r.body, (id, data) => {
            if (id !== null) after = id;
            onEntry(data);
          });
        } catch (err) {
          if (stopped) return;
        }
        if (stopped) return;
        onState("reconnecting");
        await new Promise((resolve) => setTimeout(resolve, 1500));
      }
    };
    run();
    return () => {
      stopped = true;
      if (controller) controller.abort();
    };
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) q.append(key, v);
  }
  return q.toString();
}

async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let id = null;
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") id = Number(text);
        else if (field === "data") data.push(text);
      }
      if (data.length) {
        try {
          onEvent(id, JSON.parse(data.join("\n")));
        } catch (err) {
          console.error("feed entry not handled", err);
        }
      }
    }
  }
}
