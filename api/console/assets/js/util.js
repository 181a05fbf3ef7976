// Small DOM and formatting helpers shared by the console and the patrol view.

/** Create an element: el("td.age", {title: "x"}, "text", child). Null/false children are skipped. */
export function el(tag, attrs, ...children) {
  const [name, ...classes] = tag.split(".");
  const node = document.createElement(name);
  if (classes.length) node.className = classes.join(" ");
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** Create an SVG element with attributes. */
export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Seconds as m:ss (or h:mm:ss), with a minus sign when negative. */
export function clock(seconds) {
  const sign = seconds < 0 ? "-" : "";
  let s = Math.floor(Math.abs(seconds));
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const pad = (n) => String(n).padStart(2, "0");
  return h ? `${sign}${h}:${pad(m)}:${pad(s)}` : `${sign}${m}:${pad(s)}`;
}

/** A short age: 45s, 12m, 3h, 2d. */
export function age(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}`;
  return `${Math.floor(s / 86400)}d`;
}

let zone = undefined;
/** Use this IANA zone for every time shown (the command centre's, from /console/settings). */
export function setTimeZone(name) {
  zone = name;
}

/** A time as local wall-clock text in the command centre's zone. */
export function when(iso, { date = false, seconds = true } = {}) {
  if (!iso) return "";
  const options = { hour: "2-digit", minute: "2-digit", hour12: false, timeZone: zone };
  if (seconds) options.second = "2-digit";
  if (date) Object.assign(options, { month: "2-digit", day: "2-digit" });
  return new Intl.DateTimeFormat("en-GB", options).format(new Date(iso));
}

/** Milliseconds since the epoch of an ISO time (null stays null). */
export function ms(iso) {
  return iso ? Date.parse(iso) : null;
}

/** Metres as "80 m" or "1.2 km". */
export function metres(m) {
  if (m === null || m === undefined) return "";
  return m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(1)} km`;
}

/** Great-circle distance in metres. */
export function distance(lat1, lon1, lat2, lon2) {
  const r = 6371008.8;
  const rad = Math.PI / 180;
  const a =
    Math.sin(((lat2 - lat1) * rad) / 2) ** 2 +
    Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(((lon2 - lon1) * rad) / 2) ** 2;
  return 2 * r * Math.asin(Math.min(1, Math.sqrt(a)));
}

/** Compass bearing from one point to another, degrees. */
export function bearing(lat1, lon1, lat2, lon2) {
  const rad = Math.PI / 180;
  const y = Math.sin((lon2 - lon1) * rad) * Math.cos(lat2 * rad);
  const x =
    Math.cos(lat1 * rad) * Math.sin(lat2 * rad) - Math.sin(lat1 * rad) * Math.cos(lat2 * rad) * Math.cos((lon2 - lon1) * rad);
  return ((Math.atan2(y, x) / rad) + 360) % 360;
}

/** Debounce a function by ``wait`` milliseconds. */
export function debounce(fn, wait) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
}

/** Local-day ISO dates n days/weeks back, for report ranges. */
export function isoDaysAgo(days) {
  return new Date(Date.now() - days * 86400000).toISOString();
}

/** Short beeps through Web Audio (no sound file needed); silent when the browser has not allowed audio yet. */
export function beep({ times = 3, frequency = 880, gap = 0.22 } = {}) {
  try {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return false;
    beep.ctx = beep.ctx || new Ctx();
    const ctx = beep.ctx;
    if (ctx.state === "suspended") ctx.resume();
    for (let i = 0; i < times; i++) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "square";
      osc.frequency.value = frequency;
      const start = ctx.currentTime + i * gap;
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.15, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.16);
      osc.connect(gain).connect(ctx.destination);
      osc.start(start);
      osc.stop(start + 0.18);
    }
    return true;
  } catch {
    return false;
  }
}
