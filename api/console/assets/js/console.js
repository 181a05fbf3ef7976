// The command-centre console: sign-in, the live alert queue and its detail, the map, the dashboards,
// the cameras and their zones.

import { Api, clearSession, loadSession, signIn } from "./api.js";
import { Cameras } from "./cameras.js";
import { Dashboards } from "./dashboards.js";
import { Detail } from "./detail.js";
import { applyI18n, getLang, onLangChange, setLang, t } from "./i18n.js";
import { MapView } from "./map.js";
import { Queue } from "./queue.js";
import { OPEN_STATES } from "./model.js";
import { beep, setTimeZone } from "./util.js";

/** What every part of the console shares: the API, who is signed in, reference data and the alerts. */
class Context {
  constructor(api, me) {
    this.api = api;
    this.me = me;
    this.settings = null;
    this.types = new Map();
    this.sites = new Map();
    this.units = new Map();
    this.alerts = new Map();
    this.listeners = {};
    this.sound = localStorage.getItem("wp.sound") !== "off";
    this.soundsPlayed = 0;
  }

  may(action) {
    return this.me.may.includes(action);
  }

  on(name, fn) {
    (this.listeners[name] ||= []).push(fn);
  }

  emit(name, value) {
    for (const fn of this.listeners[name] || []) fn(value);
  }

  typeTitle(type, fallback) {
    const entry = this.types.get(type);
    if (!entry) return fallback || type;
    return getLang() === "en" ? entry.title_en || entry.title : entry.title;
  }

  alertTitle(alert) {
    const entry = this.types.get(alert.type);
    if (!entry || !alert.title || getLang() !== "en") return alert.title || this.typeTitle(alert.type);
    // Rules title an alert "<catalogue title> · <device name>": the catalogue's title has an English twin.
    if (alert.title.startsWith(entry.title)) return (entry.title_en || entry.title) + alert.title.slice(entry.title.length);
    return alert.title;
  }

  siteName(id) {
    const site = this.sites.get(id);
    return site ? site.name : id || "";
  }

  unitName(id) {
    const unit = this.units.get(id);
    return unit ? unit.name || id : id;
  }

  /** Keep the newer of what we have and ``alert`` (the stream and a list load can cross). */
  upsert(alert) {
    const have = this.alerts.get(alert.alert_id);
    if (have && Date.parse(have.updated_at) > Date.parse(alert.updated_at)) return false;
    this.alerts.set(alert.alert_id, alert);
    return true;
  }

  toast(message, kind = "info") {
    const box = document.getElementById("toast");
    box.textContent = message;
    box.className = `toast ${kind}`;
    box.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => (box.hidden = true), 4000);
  }

  /** Run an action against the API; on refusal say why; return the answer or null. */
  async act(promise) {
    try {
      return await promise;
    } catch (err) {
      this.toast(t("action_failed", { reason: err.detail || err.message }), "error");
      return null;
    }
  }
}

async function boot() {
  for (const button of document.querySelectorAll(".lang-toggle")) {
    button.addEventListener("click", () => setLang(getLang() === "zh" ? "en" : "zh"));
  }
  applyI18n(document);
  const session = loadSession();
  if (!session) return showSignIn();
  if (session.role === "patrol") {
    location.replace("/patrol");
    return;
  }
  const api = new Api(session, { onUnauthorized: signOut });
  let me;
  try {
    me = await api.get("/auth/me");
  } catch {
    return showSignIn();
  }
  start(new Context(api, me));
}

function showSignIn(message) {
  document.getElementById("app").hidden = true;
  document.getElementById("signin").hidden = false;
  const error = document.getElementById("signin-error");
  error.textContent = message || "";
  const form = document.getElementById("signin-form");
  form.onsubmit = async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const session = await signIn(form.username.value.trim(), form.password.value);
      beep({ times: 0 }); // a user gesture: the browser now lets the alarm sound play later
      if (session.role === "patrol") {
        location.replace("/patrol");
        return;
      }
      location.reload();
    } catch (err) {
      error.textContent = t("sign_in_failed", { reason: err.detail || err.message });
    }
  };
  document.getElementById("username").focus();
}

function signOut() {
  clearSession();
  location.replace("/");
}

async function start(ctx) {
  document.getElementById("signin").hidden = true;
  document.getElementById("app").hidden = false;
  document.getElementById("signout").onclick = signOut;
  const who = document.getElementById("who");
  const showWho = () => (who.textContent = `${ctx.me.name} · ${t("role_" + ctx.me.role)}`);
  showWho();
  onLangChange(showWho);
  const sound = document.getElementById("sound");
  const showSound = () => {
    sound.textContent = ctx.sound ? t("sound_on") : t("sound_off");
    sound.classList.toggle("off", !ctx.sound);
  };
  sound.onclick = () => {
    ctx.sound = !ctx.sound;
    localStorage.setItem("wp.sound", ctx.sound ? "on" : "off");
    if (ctx.sound) beep({ times: 1 });
    showSound();
  };
  showSound();
  onLangChange(showSound);

  const [settings, types] = await Promise.all([ctx.api.get("/console/settings"), ctx.api.get("/alert-types")]);
  ctx.settings = settings;
  setTimeZone(settings.timezone);
  for (const type of types) ctx.types.set(type.type, type);
  if (ctx.may("read sites and devices")) {
    for (const site of await ctx.api.get("/sites")) ctx.sites.set(site.id, site);
  }
  if (ctx.may("read units")) await refreshUnits(ctx);

  const views = {
    queue: { node: document.getElementById("view-queue"), allowed: ctx.may("read alerts") },
    map: { node: document.getElementById("view-map"), allowed: ctx.may("read sites and devices") && ctx.may("read units") },
    dash: { node: document.getElementById("view-dash"), allowed: ctx.may("read statistics") },
    cameras: { node: document.getElementById("view-cameras"), allowed: ctx.may("read observations") },
  };
  const queue = new Queue(ctx, document.getElementById("view-queue"));
  const detail = new Detail(ctx, document.getElementById("detail"));
  const map = views.map.allowed ? new MapView(ctx, views.map.node) : null;
  const dash = views.dash.allowed ? new Dashboards(ctx, views.dash.node) : null;
  const cameras = views.cameras.allowed ? new Cameras(ctx, views.cameras.node) : null;
  ctx.on("camera", (id) => {
    if (!cameras) return;
    cameras.open(id);
    show("cameras");
  });
  ctx.on("select", (id) => {
    show("queue");
    detail.show(id);
    queue.render();
  });

  const nav = document.getElementById("nav");
  for (const button of nav.querySelectorAll("button")) {
    if (!views[button.dataset.view].allowed) button.remove();
    else button.onclick = () => show(button.dataset.view);
  }
  function show(name) {
    for (const [key, view] of Object.entries(views)) view.node.hidden = key !== name;
    for (const button of nav.querySelectorAll("button")) button.classList.toggle("active", button.dataset.view === name);
    if (name === "map" && map) map.activate();
    if (name === "dash" && dash) dash.activate();
    if (name === "cameras" && cameras) cameras.activate();
    if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  }
  const wanted = location.hash.slice(1);
  show(views[wanted] && views[wanted].allowed ? wanted : Object.keys(views).find((k) => views[k].allowed));

  await followAlerts(ctx, queue, detail);
  setInterval(() => ctx.may("read units") && refreshUnits(ctx), 3000);
  setInterval(() => {
    queue.tick();
    detail.tick();
  }, 1000);
}

async function refreshUnits(ctx) {
  try {
    const units = await ctx.api.get("/units");
    ctx.units = new Map(units.map((u) => [u.unit_id, u]));
    ctx.emit("units", units);
  } catch {
    /* the next poll tries again */
  }
}

/** Load the alerts and keep them current from the live feed (or by polling where the role may not stream). */
async function followAlerts(ctx, queue, detail) {
  const live = document.getElementById("live");
  const setLive = (state) => {
    live.dataset.state = state;
    live.textContent = t(state);
  };
  onLangChange(() => setLive(live.dataset.state || "live"));
  let buffered = [];
  let loaded = false;
  const apply = (entry) => {
    if (!entry.alert) return;
    const fresh = !ctx.alerts.has(entry.alert.alert_id);
    if (!ctx.upsert(entry.alert)) return;
    if (entry.kind === "raised" && fresh && entry.alert.severity === "critical") alarm(ctx, entry.alert.alert_id);
    queue.update(entry.alert.alert_id, entry.kind === "raised" && fresh);
    detail.changed(entry.alert.alert_id);
  };
  if (ctx.may("stream the live feed")) {
    // Subscribe first, then load: what commits in between arrives on the stream and is applied after.
    ctx.api.stream(
      (entry) => (loaded ? apply(entry) : buffered.push(entry)),
      (state) => setLive(state === "live" ? "live" : "reconnecting"),
    );
  } else {
    setLive("polling");
    setInterval(() => load(ctx).then(() => queue.render()), 5000);
  }
  await load(ctx);
  loaded = true;
  queue.render();
  for (const entry of buffered) apply(entry);
  buffered = [];
}

async function load(ctx) {
  const [open, recent] = await Promise.all([
    ctx.api.get("/alerts", { state: OPEN_STATES, limit: 500 }),
    ctx.api.get("/alerts", { limit: 100 }),
  ]);
  for (const alert of [...open, ...recent]) ctx.upsert(alert);
}

function alarm(ctx, alertId) {
  if (ctx.sound && beep({ times: 3 })) ctx.soundsPlayed += 1;
  document.body.dataset.sounds = String(ctx.soundsPlayed);
  document.body.classList.add("alarm");
  setTimeout(() => document.body.classList.remove("alarm"), 4000);
  const alert = ctx.alerts.get(alertId);
  ctx.toast(`${t("sev_critical")} · ${alert ? ctx.alertTitle(alert) : ""} #${alertId}`, "critical");
}

boot();
