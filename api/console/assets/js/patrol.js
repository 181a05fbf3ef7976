// The patrol view (phone-sized): my assignments, accept, on scene, clear with an outcome, where to go.

import { Api, clearSession, loadSession, signIn } from "./api.js";
import { applyI18n, getLang, onLangChange, setLang, t } from "./i18n.js";
import { ACTIVE_ASSIGNMENT } from "./model.js";
import { bearing, beep, clock, debounce, distance, el, metres, ms, setTimeZone, svg, when } from "./util.js";

const COMPASS = { zh: ["北", "东北", "东", "东南", "南", "西南", "西", "西北"], en: ["N", "NE", "E", "SE", "S", "SW", "W", "NW"] };

async function boot() {
  for (const button of document.querySelectorAll(".lang-toggle")) {
    button.addEventListener("click", () => setLang(getLang() === "zh" ? "en" : "zh"));
  }
  applyI18n(document);
  const session = loadSession();
  if (!session) return showSignIn();
  if (session.role !== "patrol") return showSignIn(t("wrong_view_console"), true);
  const api = new Api(session, { onUnauthorized: signOut });
  try {
    new Patrol(api, await api.get("/auth/me")).start();
  } catch {
    showSignIn();
  }
}

function showSignIn(message, consoleLink = false) {
  document.getElementById("app").hidden = true;
  document.getElementById("signin").hidden = false;
  const error = document.getElementById("signin-error");
  error.replaceChildren(message || "");
  if (consoleLink) error.append(" ", el("a", { href: "/" }, t("open_console")));
  const form = document.getElementById("signin-form");
  form.onsubmit = async (event) => {
    event.preventDefault();
    try {
      await signIn(form.username.value.trim(), form.password.value);
      beep({ times: 0 });
      location.reload();
    } catch (err) {
      error.textContent = t("sign_in_failed", { reason: err.detail || err.message });
    }
  };
}

function signOut() {
  clearSession();
  location.replace("/patrol");
}

class Patrol {
  constructor(api, me) {
    this.api = api;
    this.me = me;
    this.unit = null;
    this.types = new Map();
    this.assignments = [];
    this.known = null; // assignment ids seen, to notice new ones
    this.busy = new Set();
    this.outcomes = new Map(); // assignment id -> the outcome chosen so far
    this.refresh = debounce(() => this.load(), 200);
  }

  async start() {
    document.getElementById("signin").hidden = true;
    document.getElementById("app").hidden = false;
    document.getElementById("signout").onclick = signOut;
    const [settings, types] = await Promise.all([this.api.get("/console/settings"), this.api.get("/alert-types")]);
    this.settings = settings;
    setTimeZone(settings.timezone);
    for (const type of types) this.types.set(type.type, type);
    await this.load();
    const live = document.getElementById("live");
    const setLive = (state) => {
      live.dataset.state = state;
      live.textContent = t(state);
    };
    onLangChange(() => {
      setLive(live.dataset.state || "live");
      this.render();
    });
    this.api.stream(() => this.refresh(), (state) => setLive(state === "live" ? "live" : "reconnecting"));
    setInterval(() => this.load(), 10000); // a safety net; the stream is the path
    setInterval(() => this.tick(), 1000);
  }

  async load() {
    try {
      const [units, assignments] = await Promise.all([this.api.get("/units"), this.api.get("/assignments", { limit: 30 })]);
      this.unit = units[0] || null;
      this.assignments = assignments;
    } catch {
      return;
    }
    const ids = new Set(this.assignments.map((a) => a.assignment_id));
    const fresh = this.known ? this.assignments.filter((a) => !this.known.has(a.assignment_id) && a.state === "assigned") : [];
    this.known = ids;
    if (fresh.length) {
      beep({ times: 2, frequency: 660 });
      if (navigator.vibrate) navigator.vibrate([300, 100, 300]);
      this.toast(t("new_assignment"));
    }
    this.fresh = new Set(fresh.map((a) => a.assignment_id));
    this.render();
  }

  title(a) {
    const entry = this.types.get(a.alert_type);
    if (!entry) return a.title;
    if (a.title && a.title !== entry.title) return a.title;
    return getLang() === "en" ? entry.title_en || entry.title : entry.title;
  }

  render() {
    const unit = this.unit;
    document.getElementById("unit-name").textContent = unit ? unit.name || unit.unit_id : this.me.unit;
    const status = document.getElementById("unit-status");
    status.textContent = unit ? t("u_" + unit.status) : "";
    status.className = `state st-${unit ? unit.status : ""}`;
    const active = this.assignments.filter((a) => ACTIVE_ASSIGNMENT.includes(a.state));
    const jobs = document.getElementById("jobs");
    jobs.replaceChildren(...(active.length ? active.map((a) => this.job(a)) : [el("p.empty", null, t("no_assignments"))]));
    const done = this.assignments.filter((a) => !ACTIVE_ASSIGNMENT.includes(a.state)).slice(0, 5);
    document.getElementById("history").replaceChildren(
      ...done.map((a) =>
        el("div", { dataset: { assignmentId: a.assignment_id } }, `#${a.alert_id} ${this.title(a)} · ${t("ast_" + a.state)}${a.outcome ? " · " + t("out_" + a.outcome) : ""} · ${when(a.cleared_at || a.assigned_at, { seconds: false })}`),
      ),
    );
  }

  job(a) {
    const busy = this.busy.has(a.assignment_id);
    const act = (path, body) => this.act(a.assignment_id, path, body);
    const buttons = [];
    if (a.state === "assigned") buttons.push(el("button.primary", { type: "button", disabled: busy, dataset: { act: "accept" }, onclick: () => act("accept") }, t("act_accept")));
    if (a.state === "accepted") buttons.push(el("button.primary", { type: "button", disabled: busy, dataset: { act: "on-scene" }, onclick: () => act("on-scene") }, t("act_on_scene")));
    if (a.state === "accepted" || a.state === "on_scene") {
      // The choice survives the view's refreshes (the stream and the poll redraw it).
      const outcome = el(
        "select",
        { name: "outcome", onchange: (event) => this.outcomes.set(a.assignment_id, event.target.value) },
        this.settings.outcomes.map((o) => el("option", { value: o }, t("out_" + o))),
      );
      outcome.value = this.outcomes.get(a.assignment_id) || this.settings.outcomes[0];
      buttons.push(
        el("div.clear-row", null, outcome, el("button", { type: "button", class: a.state === "on_scene" ? "primary" : "", disabled: busy, dataset: { act: "clear" }, onclick: () => act("clear", { outcome: outcome.value, note: "" }) }, t("act_clear"))),
      );
    }
    const place = [a.site_id, a.zone].filter(Boolean).join(" · ");
    return el(
      `article.job.sev-${a.severity}${this.fresh && this.fresh.has(a.assignment_id) ? ".new" : ""}`,
      { dataset: { assignmentId: a.assignment_id, alertId: a.alert_id } },
      el("div.row", null, el(`span.badge.sev-${a.severity}`, null, t("sev_" + a.severity)), el(`span.state.ast-${a.state}`, null, t("ast_" + a.state))),
      el("h3", null, this.title(a), el("span.id", null, ` #${a.alert_id}`)),
      el("div.muted", null, `${place}${a.tier ? ` · ${t("tier")} ${a.tier}` : ""}${a.eta_s !== null ? ` · ${t("eta")} ${clock(a.eta_s)}` : ""}`),
      a.deadline_at && a.state !== "on_scene" ? el("div.countdown", { dataset: { deadline: a.deadline_at } }, this.countdown(a.deadline_at)) : null,
      this.location(a),
      el("div.job-actions", null, buttons),
    );
  }

  countdown(deadline) {
    return `${t("deadline")} ${clock((ms(deadline) - Date.now()) / 1000)}`;
  }

  tick() {
    for (const node of document.querySelectorAll(".countdown")) {
      node.textContent = this.countdown(node.dataset.deadline);
      node.classList.toggle("overdue", ms(node.dataset.deadline) < Date.now());
    }
  }

  /** Where the alert is: a small plot of it and me, the distance and bearing, and a link for a map app. */
  location(a) {
    if (a.lat === null || a.lon === null) return null;
    const u = this.unit;
    const w = 320;
    const h = 150;
    const plot = svg("svg", { class: "minimap", viewBox: `0 0 ${w} ${h}` });
    let text = `${a.lat.toFixed(5)}, ${a.lon.toFixed(5)}`;
    const cx = w / 2;
    const cy = h / 2;
    if (u) {
      const d = distance(u.lat, u.lon, a.lat, a.lon);
      const b = bearing(u.lat, u.lon, a.lat, a.lon);
      const r = Math.max(d, this.settings.on_scene_radius_m * 2);
      const scale = (Math.min(w, h) / 2 - 16) / r;
      const rad = (b * Math.PI) / 180;
      // The target in the middle; me where I am relative to it.
      const mx = cx - Math.sin(rad) * d * scale;
      const my = cy + Math.cos(rad) * d * scale;
      plot.append(
        svg("circle", { cx, cy, r: this.settings.on_scene_radius_m * scale, class: "ring" }),
        svg("line", { x1: mx, y1: my, x2: cx, y2: cy, stroke: "#4c9aff", "stroke-dasharray": "4 3" }),
        svg("circle", { cx: mx, cy: my, r: 7, class: "me" }),
        svg("text", { x: mx + 10, y: my + 4 }, t("my_position")),
      );
      text = `${t("away", { d: metres(d), b: COMPASS[getLang()][Math.round(b / 45) % 8] })} · ${text}`;
    }
    plot.append(svg("circle", { cx, cy, r: 8, class: "target" }), svg("text", { x: cx + 11, y: cy - 8 }, `#${a.alert_id}`));
    return el(
      "div.where",
      null,
      plot,
      el("div.muted", { class: "muted distance" }, `${t("location")}: ${text} `, el("a", { href: `geo:${a.lat},${a.lon}` }, t("open_in_maps"))),
    );
  }

  async act(id, path, body) {
    this.busy.add(id);
    this.render();
    try {
      await this.api.post(`/assignments/${id}/${path}`, body);
    } catch (err) {
      this.toast(t("action_failed", { reason: err.detail || err.message }));
    } finally {
      this.busy.delete(id);
    }
    await this.load();
  }

  toast(message) {
    const box = document.getElementById("toast");
    box.textContent = message;
    box.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => (box.hidden = true), 3500);
  }
}

boot();
