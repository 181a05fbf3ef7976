// The map: sites, zones, devices (with health), units (moving live) and open alerts, drawn in SVG on a
// Web Mercator projection of the configured coordinates. Tiles only when the deployment names a tile
// server (map.tile_url); otherwise nothing is fetched from anywhere.

import { onLangChange, t } from "./i18n.js";
import { isOpen } from "./model.js";
import { el, svg } from "./util.js";

const BASE_ZOOM = 20; // projected units: pixels at this zoom level (kept relative to an origin for precision)
const TILE = 256;
const UNIT_COLOURS = { available: "#36b37e", dispatched: "#4c9aff", on_scene: "#a77bf3", off_duty: "#7a869a" };
const DEVICE_COLOURS = { ok: "#36b37e", silent: "#ffab00", never_seen: "#7a869a" };
const KIND_LETTER = { foot: "F", ebike: "E", car: "C", post: "P" };

function project(lat, lon) {
  const scale = TILE * 2 ** BASE_ZOOM;
  const s = Math.sin((lat * Math.PI) / 180);
  return [((lon + 180) / 360) * scale, (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * scale];
}

export class MapView {
  constructor(ctx, root) {
    this.ctx = ctx;
    this.root = root;
    this.devices = [];
    this.active = false;
    this.view = null; // {cx, cy, s}: centre in projected units, screen pixels per unit
    this.unitNodes = new Map();
    this.build();
    ctx.on("units", () => this.active && this.drawUnits());
    onLangChange(() => this.active && this.drawLegend());
    window.addEventListener("resize", () => this.active && this.resize());
  }

  build() {
    this.svg = svg("svg", { class: "map", id: "map-svg" });
    this.layers = {};
    for (const name of ["tiles", "zones", "sites", "devices", "links", "alerts", "units"]) {
      this.layers[name] = svg("g", { class: `layer-${name}` });
      this.svg.append(this.layers[name]);
    }
    this.legendBox = el("div.map-legend");
    const zoom = (f) => () => this.zoomAt(f, this.width / 2, this.height / 2);
    this.controls = el(
      "div.map-controls",
      null,
      el("button", { type: "button", "data-i18n-title": "zoom_in", onclick: zoom(1.6) }, "+"),
      el("button", { type: "button", "data-i18n-title": "zoom_out", onclick: zoom(1 / 1.6) }, "−"),
      el("button", { type: "button", "data-i18n-title": "zoom_all", onclick: () => this.fit() }, "⤢"),
      [...this.ctx.sites.values()].map((site) =>
        el("button", { type: "button", dataset: { site: site.id }, onclick: () => this.fit(site.id) }, site.name),
      ),
    );
    this.note = el("div.map-note");
    this.root.append(el("div.map-wrap", null, this.svg, this.controls, this.legendBox, this.note));
    let drag = null;
    this.svg.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, cx: this.view.cx, cy: this.view.cy };
      this.svg.setPointerCapture(e.pointerId);
    });
    this.svg.addEventListener("pointermove", (e) => {
      if (!drag) return;
      this.view.cx = drag.cx - (e.clientX - drag.x) / this.view.s;
      this.view.cy = drag.cy - (e.clientY - drag.y) / this.view.s;
      this.draw(false);
    });
    this.svg.addEventListener("pointerup", () => (drag = null));
    this.svg.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        const box = this.svg.getBoundingClientRect();
        this.zoomAt(e.deltaY < 0 ? 1.25 : 0.8, e.clientX - box.left, e.clientY - box.top);
      },
      { passive: false },
    );
  }

  async activate() {
    this.active = true;
    this.resize();
    await this.loadDevices();
    if (!this.view) this.fit();
    else this.draw(false);
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (this.root.hidden) return;
      this.drawAlerts();
      this.drawLinks();
    }, 2000);
    clearInterval(this.deviceTimer);
    this.deviceTimer = setInterval(() => !this.root.hidden && this.loadDevices().then(() => this.drawDevices()), 30000);
  }

  async loadDevices() {
    try {
      this.devices = await this.ctx.api.get("/stats/devices");
    } catch {
      /* keep the last ones */
    }
  }

  resize() {
    const box = this.svg.getBoundingClientRect();
    this.width = Math.max(200, box.width);
    this.height = Math.max(200, box.height);
    if (this.view) this.draw(false);
  }

  /** Everything worth showing (a site's plan, or everything with the units), as projected points. */
  points(siteId) {
    const pts = [];
    for (const site of this.ctx.sites.values()) {
      if (siteId && site.id !== siteId) continue;
      pts.push(project(site.lat, site.lon));
      for (const zone of site.zones) for (const [lat, lon] of zone.polygon) pts.push(project(lat, lon));
    }
    for (const d of this.devices) if (d.lat !== null && (!siteId || d.site_id === siteId)) pts.push(project(d.lat, d.lon));
    if (!siteId) for (const u of this.ctx.units.values()) pts.push(project(u.lat, u.lon)); // units roam: a site is its plan
    return pts;
  }

  fit(siteId) {
    const pts = this.points(siteId);
    if (!pts.length) return;
    const xs = pts.map((p) => p[0]);
    const ys = pts.map((p) => p[1]);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const s = Math.min((this.width - 80) / Math.max(x1 - x0, 1), (this.height - 80) / Math.max(y1 - y0, 1));
    this.view = { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, s: Math.min(s, 4) };
    this.draw(false);
  }

  zoomAt(factor, sx, sy) {
    const v = this.view;
    const [wx, wy] = [v.cx + (sx - this.width / 2) / v.s, v.cy + (sy - this.height / 2) / v.s];
    v.s = Math.min(16, Math.max(1e-4, v.s * factor));
    v.cx = wx - (sx - this.width / 2) / v.s;
    v.cy = wy - (sy - this.height / 2) / v.s;
    this.draw(false);
  }

  toScreen(lat, lon) {
    const [x, y] = project(lat, lon);
    return [(x - this.view.cx) * this.view.s + this.width / 2, (y - this.view.cy) * this.view.s + this.height / 2];
  }

  draw(animate) {
    if (!this.view) return;
    this.svg.setAttribute("viewBox", `0 0 ${this.width} ${this.height}`);
    this.svg.classList.toggle("no-anim", !animate);
    this.drawTiles();
    this.drawZones();
    this.drawDevices();
    this.drawUnits();
    this.drawLinks();
    this.drawAlerts();
    this.drawLegend();
    requestAnimationFrame(() => this.svg.classList.remove("no-anim"));
  }

  drawTiles() {
    const map = this.ctx.settings.map;
    const layer = this.layers.tiles;
    layer.replaceChildren();
    this.note.textContent = map.tile_url ? map.attribution : t("map_offline");
    if (!map.tile_url) return;
    const v = this.view;
    const z = Math.max(0, Math.min(map.max_zoom, Math.round(BASE_ZOOM + Math.log2(v.s))));
    const span = TILE * 2 ** (BASE_ZOOM - z); // projected units per tile
    const [left, top] = [v.cx - this.width / 2 / v.s, v.cy - this.height / 2 / v.s];
    const [right, bottom] = [v.cx + this.width / 2 / v.s, v.cy + this.height / 2 / v.s];
    const n = 2 ** z;
    for (let tx = Math.floor(left / span); tx <= Math.floor(right / span); tx++) {
      for (let ty = Math.floor(top / span); ty <= Math.floor(bottom / span); ty++) {
        if (ty < 0 || ty >= n) continue;
        const href = map.tile_url.replace("{z}", z).replace("{x}", ((tx % n) + n) % n).replace("{y}", ty);
        const sx = (tx * span - v.cx) * v.s + this.width / 2;
        const sy = (ty * span - v.cy) * v.s + this.height / 2;
        layer.append(svg("image", { href, x: sx, y: sy, width: span * v.s + 0.5, height: span * v.s + 0.5 }));
      }
    }
  }

  drawZones() {
    const zones = [];
    const sites = [];
    for (const site of this.ctx.sites.values()) {
      for (const zone of site.zones) {
        const d = zone.polygon.map(([lat, lon], i) => `${i ? "L" : "M"}${this.toScreen(lat, lon).map((n) => n.toFixed(1)).join(",")}`).join("") + "Z";
        const [cx, cy] = this.toScreen(
          zone.polygon.reduce((s, p) => s + p[0], 0) / zone.polygon.length,
          zone.polygon.reduce((s, p) => s + p[1], 0) / zone.polygon.length,
        );
        zones.push(svg("path", { d, class: "zone" }, svg("title", null, `${site.name} · ${zone.name || zone.id}`)));
        zones.push(svg("text", { x: cx, y: cy, class: "zone-label", "text-anchor": "middle" }, zone.name || zone.id));
      }
      const [x, y] = this.toScreen(site.lat, site.lon);
      const level = site.response_level && site.response_level.level;
      sites.push(
        svg("circle", { cx: x, cy: y, r: 5, class: `site level-${level || 0}` }),
        svg("text", { x, y: y - 12, class: "site-label", "text-anchor": "middle" }, site.name),
      );
    }
    this.layers.zones.replaceChildren(...zones);
    this.layers.sites.replaceChildren(...sites);
  }

  drawDevices() {
    const nodes = [];
    for (const d of this.devices) {
      if (d.lat === null) continue;
      const [x, y] = this.toScreen(d.lat, d.lon);
      nodes.push(
        svg(
          "rect",
          { x: x - 4, y: y - 4, width: 8, height: 8, transform: `rotate(45 ${x} ${y})`, class: `device d-${d.status}`, fill: DEVICE_COLOURS[d.status] || "#999", "data-device-id": d.device_id },
          svg("title", null, `${d.name || d.device_id} (${d.kind}) · ${t("d_" + d.status)}${d.open_alerts ? ` · ${t("open_alerts")} ${d.open_alerts}` : ""}`),
        ),
      );
    }
    this.layers.devices.replaceChildren(...nodes);
  }

  drawUnits() {
    if (!this.view) return;
    const seen = new Set();
    for (const u of this.ctx.units.values()) {
      seen.add(u.unit_id);
      let node = this.unitNodes.get(u.unit_id);
      if (!node) {
        node = svg(
          "g",
          { class: "unit", "data-unit-id": u.unit_id },
          svg("circle", { r: 9 }),
          svg("text", { class: "unit-letter", "text-anchor": "middle", y: 4 }, KIND_LETTER[u.kind] || "?"),
          svg("text", { class: "unit-label", x: 12, y: 4 }, u.name || u.unit_id),
          svg("title"),
        );
        this.layers.units.append(node);
        this.unitNodes.set(u.unit_id, node);
      }
      const [x, y] = this.toScreen(u.lat, u.lon);
      node.style.transform = `translate(${x.toFixed(1)}px, ${y.toFixed(1)}px)`;
      node.querySelector("circle").setAttribute("fill", UNIT_COLOURS[u.status] || "#999");
      node.dataset.status = u.status;
      node.querySelector("title").textContent = `${u.name} · ${t("u_" + u.status)} · ${u.fix_source}`;
    }
    for (const [id, node] of this.unitNodes) {
      if (!seen.has(id)) {
        node.remove();
        this.unitNodes.delete(id);
      }
    }
  }

  drawLinks() {
    const lines = [];
    for (const u of this.ctx.units.values()) {
      if (!u.active_assignment_id) continue;
      const alert = [...this.ctx.alerts.values()].find((a) => a.assignments.some((x) => x.assignment_id === u.active_assignment_id));
      if (!alert || alert.lat === null) continue;
      const [x1, y1] = this.toScreen(u.lat, u.lon);
      const [x2, y2] = this.toScreen(alert.lat, alert.lon);
      lines.push(svg("line", { x1, y1, x2, y2, class: "link" }));
    }
    this.layers.links.replaceChildren(...lines);
  }

  drawAlerts() {
    if (!this.view) return;
    const nodes = [];
    for (const a of this.ctx.alerts.values()) {
      if (!isOpen(a) || a.lat === null) continue;
      const [x, y] = this.toScreen(a.lat, a.lon);
      nodes.push(
        svg(
          "g",
          { class: `alert-marker sev-${a.severity}`, transform: `translate(${x} ${y})`, "data-alert-id": a.alert_id },
          svg("circle", { r: 14, class: "pulse" }),
          svg("circle", { r: 6, class: "dot" }),
          svg("title", null, `#${a.alert_id} ${this.ctx.alertTitle(a)} · ${t("st_" + a.state)}`),
        ),
      );
    }
    this.layers.alerts.replaceChildren(...nodes);
    for (const node of nodes) node.addEventListener("click", () => this.ctx.emit("select", Number(node.dataset.alertId)));
  }

  drawLegend() {
    const item = (colour, label, shape = "dot") => el("span", null, el(`i.${shape}`, { style: `background:${colour}` }), label);
    this.legendBox.replaceChildren(
      el("strong", null, t("legend_unit")),
      ...Object.entries(UNIT_COLOURS).map(([k, c]) => item(c, t("u_" + k))),
      el("strong", null, t("legend_device")),
      ...Object.entries(DEVICE_COLOURS).map(([k, c]) => item(c, t("d_" + k), "diamond")),
      el("strong", null, t("legend_alert")),
      item("#ff5630", t("sev_critical")),
      item("#ffab00", t("sev_major")),
    );
  }
}
