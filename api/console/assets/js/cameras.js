// Cameras and zones: each counting camera's picture of its empty scene with its zones and their
// latest counts, and a tool to draw a zone on it (click to add corners, drag to move them) that
// writes the zone's lines for the camera's `zones:` in devices.yaml. Zones are configuration:
// the page does not change them, it gives the text to paste, in the camera's own pixels; a SIGHUP
// to the API and the crowd worker then applies them without a restart.

import { PALETTE, legend, lineChart } from "./charts.js";
import { t } from "./i18n.js";
import { el, ms, svg, when } from "./util.js";
import { PolledView } from "./view.js";

const ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/; // watchpost/config.py _ID
const REFRESH_MS = 5000;
const CHART_EVERY_MS = 30000; // the last hour's counts change slowly: fetched this often

/** Does the closed polygon cross itself (two edges that are not neighbours intersect)? */
export function selfCrossing(points) {
  const n = points.length;
  const cross = (a, b, c) => (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      if (j === i + 1 || (i === 0 && j === n - 1)) continue;
      const [p1, p2, q1, q2] = [points[i], points[(i + 1) % n], points[j], points[(j + 1) % n]];
      if (cross(p1, p2, q1) * cross(p1, p2, q2) < 0 && cross(q1, q2, p1) * cross(q1, q2, p2) < 0) return true;
    }
  }
  return false;
}

/** Area of a polygon (shoelace), in square pixels. */
export function area(points) {
  let sum = 0;
  for (let i = 0; i < points.length; i++) {
    const [x1, y1] = points[i];
    const [x2, y2] = points[(i + 1) % points.length];
    sum += x1 * y2 - x2 * y1;
  }
  return Math.abs(sum) / 2;
}

/** Ground area in square metres of a polygon drawn on the picture, through the camera's ground homography
 * (watchpost/ground.py: pixels -> metres); null when a corner is at or above the horizon (not on the ground). */
export function groundArea(matrix, points) {
  const ground = [];
  for (const [x, y] of points) {
    const w = matrix[2][0] * x + matrix[2][1] * y + matrix[2][2];
    if (!(w > 1e-9)) return null;
    ground.push([(matrix[0][0] * x + matrix[0][1] * y + matrix[0][2]) / w, (matrix[1][0] * x + matrix[1][1] * y + matrix[1][2]) / w]);
  }
  return area(ground);
}

/** The homography taking picture pixels to ground metres through 4+ point pairs (least squares, Hartley-normalised
 * as watchpost/ground.py fits it); null when the points fix no plane (three in a row, too few). */
export function fitGround(pixels, metres) {
  if (pixels.length < 4 || pixels.length !== metres.length) return null;
  if (pixels.length === 4 && (inARow(pixels) || inARow(metres))) return null;
  const norm = (pts) => {
    const n = pts.length;
    const cx = pts.reduce((a, p) => a + p[0], 0) / n;
    const cy = pts.reduce((a, p) => a + p[1], 0) / n;
    const spread = pts.reduce((a, p) => a + Math.hypot(p[0] - cx, p[1] - cy), 0) / n || 1;
    const k = Math.SQRT2 / spread;
    return [[k, 0, -k * cx], [0, k, -k * cy], [0, 0, 1]];
  };
  const apply = (m, [x, y]) => [m[0][0] * x + m[0][1] * y + m[0][2], m[1][0] * x + m[1][1] * y + m[1][2]];
  const ts = norm(pixels);
  const td = norm(metres);
  // h33 = 1: two equations a point, solved by the normal equations (8 x 8, Gaussian elimination)
  const ata = Array.from({ length: 8 }, () => new Array(9).fill(0));
  pixels.forEach((p, i) => {
    const [x, y] = apply(ts, p);
    const [u, v] = apply(td, metres[i]);
    for (const [row, b] of [[[x, y, 1, 0, 0, 0, -u * x, -u * y], u], [[0, 0, 0, x, y, 1, -v * x, -v * y], v]]) {
      for (let r = 0; r < 8; r++) {
        for (let c = 0; c < 8; c++) ata[r][c] += row[r] * row[c];
        ata[r][8] += row[r] * b;
      }
    }
  });
  for (let c = 0; c < 8; c++) {
    let pivot = c;
    for (let r = c + 1; r < 8; r++) if (Math.abs(ata[r][c]) > Math.abs(ata[pivot][c])) pivot = r;
    if (Math.abs(ata[pivot][c]) < 1e-9) return null;
    [ata[c], ata[pivot]] = [ata[pivot], ata[c]];
    for (let r = 0; r < 8; r++) {
      if (r === c) continue;
      const f = ata[r][c] / ata[c][c];
      for (let k = c; k < 9; k++) ata[r][k] -= f * ata[c][k];
    }
  }
  const h = ata.map((row, i) => row[8] / row[i]);
  const hn = [[h[0], h[1], h[2]], [h[3], h[4], h[5]], [h[6], h[7], 1]];
  // undo the normalisations: H = inv(td) . hn . ts
  const mul = (a, b) => a.map((row) => [0, 1, 2].map((j) => row[0] * b[0][j] + row[1] * b[1][j] + row[2] * b[2][j]));
  const k = td[0][0];
  const tdInv = [[1 / k, 0, -td[0][2] / k], [0, 1 / k, -td[1][2] / k], [0, 0, 1]];
  let m = mul(mul(tdInv, hn), ts);
  const w0 = m[2][0] * pixels[0][0] + m[2][1] * pixels[0][1] + m[2][2];
  if (w0 < 0) m = m.map((row) => row.map((v) => -v)); // the given points in front, as the server has it
  return m;
}

/** Whether three of four points lie on one line (within 2 % of their extent), as watchpost/ground.py refuses. */
function inARow(points) {
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const extent = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys));
  if (!(extent > 0)) return true;
  for (let i = 0; i < 4; i++) {
    const [a, b, c] = points.filter((_, j) => j !== i);
    const twice = Math.abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]));
    const longest = Math.max(Math.hypot(b[0] - a[0], b[1] - a[1]), Math.hypot(c[0] - a[0], c[1] - a[1]), Math.hypot(c[0] - b[0], c[1] - b[1]));
    if (twice / Math.max(longest, 1e-12) < 0.02 * extent) return true;
  }
  return false;
}

/** The `ground:` lines of a camera's crowd section. */
export function groundYaml(pixels, metres) {
  const pad = "      ";
  const lines = [`${pad}ground:`];
  pixels.forEach(([x, y], i) => lines.push(`${pad}  - {pixel: [${x}, ${y}], metres: [${metres[i][0]}, ${metres[i][1]}]}`));
  return lines.join("\n") + "\n";
}

/** The YAML lines of one zone, indented for a camera's `zones:` list as in configs/demo/devices.yaml. */
export function zoneYaml(zone) {
  const pad = "      ";
  const lines = [`${pad}- id: ${zone.id}`];
  if (zone.name) lines.push(`${pad}  name: ${JSON.stringify(zone.name)}`);
  lines.push(`${pad}  polygon: [${zone.polygon.map(([x, y]) => `[${x}, ${y}]`).join(", ")}]`);
  if (zone.area_m2) lines.push(`${pad}  area_m2: ${zone.area_m2}`);
  const g = zone.gathering;
  if (g) {
    lines.push(`${pad}  gathering:`);
    // numbers as they are; text and nested settings (night: {...}) as JSON, which YAML reads as flow values
    for (const [key, value] of Object.entries(g)) lines.push(`${pad}    ${key}: ${typeof value === "number" ? value : JSON.stringify(value)}`);
  }
  return lines.join("\n") + "\n";
}

export class Cameras extends PolledView {
  constructor(ctx, root) {
    super(ctx, root, REFRESH_MS);
    this.cameras = [];
    this.current = null; // device id
    this.pictures = new Map(); // device id -> {taken_at, url}
    this.draft = null; // {points: [[x, y]...], replaces: zone id | null}
    this.dragging = null;
  }

  redraw() {
    this.render();
    this.renderChart();
  }

  build() {
    this.built = true;
    this.list = el("nav.camera-list", { id: "camera-list" });
    this.head = el("div.camera-head");
    this.stage = el("div.zone-stage", { id: "zone-stage" });
    this.zonesTable = el("div.camera-zones");
    this.chart = el("div.camera-chart", { id: "camera-chart" });
    this.editor = el("section.card.zone-editor", { id: "zone-editor" });
    this.root.append(
      this.list,
      el("div.camera-main", null, this.head, this.stage, this.zonesTable, this.chart),
      this.editor,
    );
  }

  async refresh() {
    try {
      this.cameras = await this.ctx.api.get("/cameras");
    } catch (err) {
      this.list.replaceChildren(el("p.error", null, err.detail || err.message));
      return;
    }
    if (!this.cameras.some((c) => c.device_id === this.current)) this.current = this.cameras[0]?.device_id ?? null;
    await this.loadPicture();
    this.render({ editor: false }); // a refresh must not take the form from under the operator's typing
    if (Date.now() - (this.chartAt || 0) > CHART_EVERY_MS || this.chartFor !== this.current) await this.renderChart();
  }

  /** The last hour of each zone's counts, with its gathering threshold dashed in the same colour. */
  async renderChart() {
    const cam = this.camera();
    this.chartAt = Date.now();
    this.chartFor = cam ? cam.device_id : null;
    if (!cam) return this.chart.replaceChildren();
    let obs;
    try {
      obs = await this.ctx.api.get("/observations", { device: cam.device_id });
    } catch (err) {
      return this.chart.replaceChildren(el("p.error", null, err.detail || err.message));
    }
    const series = [];
    const zones = new Map(cam.zones.map((z) => [z.id, z]));
    const span = [ms(obs.since), ms(obs.until)]; // the whole hour, so the threshold runs across the chart
    obs.series.forEach((s, i) => {
      if (!s.points.length) return;
      const color = PALETTE[i % PALETTE.length];
      series.push({ name: s.zone_name, color, points: s.points.map((p) => [ms(p.at), p.mean]) });
      const threshold = zones.get(s.zone)?.gathering?.threshold;
      if (threshold) {
        series.push({ name: t("threshold_of", { zone: s.zone_name, n: threshold }), color, dashed: true, points: span.map((x) => [x, threshold]) });
      }
    });
    if (!series.length) return this.chart.replaceChildren(el("p.muted", null, t("no_counts_hour")));
    this.chart.replaceChildren(
      el("h4", null, t("counts_last_hour")),
      lineChart(series, { time: true, width: this.chart.clientWidth || 700, height: 200 }),
      legend(series),
    );
  }

  /** Show this camera next (from a crowd alert's detail), whatever was being drawn on another. */
  open(id) {
    if (id !== this.current) this.draft = null;
    this.current = id;
  }

  camera() {
    return this.cameras.find((c) => c.device_id === this.current) || null;
  }

  /** The picture of the current camera, fetched again only when the worker stored a newer one. */
  async loadPicture() {
    const cam = this.camera();
    if (!cam || !cam.picture) return;
    const have = this.pictures.get(cam.device_id);
    if (have && have.taken_at === cam.picture.taken_at) return;
    const url = await this.ctx.api.blobUrl(`/cameras/${encodeURIComponent(cam.device_id)}/picture`);
    if (!url) return;
    if (have) URL.revokeObjectURL(have.url);
    this.pictures.set(cam.device_id, { taken_at: cam.picture.taken_at, url });
  }

  select(id) {
    if (id === this.current) return;
    this.current = id;
    this.draft = null;
    this.loadPicture().then(() => {
      this.render();
      this.renderChart();
    });
  }

  size() {
    const cam = this.camera();
    if (!cam) return null;
    if (cam.frame_size) return { w: cam.frame_size[0], h: cam.frame_size[1] };
    if (cam.picture) return { w: cam.picture.frame_width, h: cam.picture.frame_height };
    return null;
  }

  render({ editor = true } = {}) {
    if (!this.built) return;
    this.renderList();
    const cam = this.camera();
    if (!cam) {
      this.head.replaceChildren(el("p.empty", { id: "cameras-empty" }, t("cameras_none")));
      this.stage.replaceChildren();
      this.zonesTable.replaceChildren();
      this.editor.hidden = true;
      return;
    }
    this.editor.hidden = false;
    const state = cam.camera ? cam.camera.state : "unreported"; // no crowd worker has reported it yet
    this.head.replaceChildren(
      el("h3", null, cam.name, " ", el("span.muted", null, cam.device_id, " · ", this.ctx.siteName(cam.site_id))),
      el(
        "div.muted",
        null,
        el(`span.dot.c-${state}`),
        " ",
        t("cam_" + state),
        cam.camera && cam.camera.reason ? ` — ${cam.camera.reason}` : "",
        cam.people !== null ? ` · ${t("people_now", { n: Math.round(cam.people) })}` : "",
        cam.picture ? ` · ${t("picture_taken", { at: when(cam.picture.taken_at, { date: true, seconds: false }) })}` : "",
      ),
    );
    if (this.dragging === null) this.renderStage(cam);
    this.renderZones(cam);
    if (editor || !this.editor.childElementCount) this.renderEditor(cam);
  }

  renderList() {
    this.list.replaceChildren(
      el("h4", null, t("cameras")),
      ...this.cameras.map((c) =>
        el(
          `button.camera-item${c.device_id === this.current ? ".active" : ""}`,
          { dataset: { camera: c.device_id }, onclick: () => this.select(c.device_id) },
          el(`span.dot.c-${c.camera ? c.camera.state : "unreported"}`),
          " ",
          c.name,
          el("span.muted", null, c.people !== null ? ` ${Math.round(c.people)}` : ""),
        ),
      ),
    );
  }

  renderStage(cam) {
    const size = this.size();
    const picture = this.pictures.get(cam.device_id);
    if (!size) {
      this.stage.replaceChildren(el("p.empty", { id: "no-picture" }, t(cam.has_model ? "no_picture_yet" : "no_model")));
      this.svg = null;
      return;
    }
    this.stage.style.aspectRatio = `${size.w} / ${size.h}`;
    const image = picture
      ? el("img", { id: "camera-picture", src: picture.url, alt: t("camera_picture"), draggable: "false" })
      : el("div.no-picture", { id: "no-picture" }, t(cam.has_model ? "no_picture_yet" : "no_model"));
    const root = svg("svg", { id: "zone-svg", viewBox: `0 0 ${size.w} ${size.h}`, preserveAspectRatio: "none" });
    const unit = size.w / 160; // a vertex handle's radius, about the same on any camera size
    for (const z of cam.zones) {
      const hot = z.gathering && z.gathering.threshold && z.people !== null && z.people >= z.gathering.threshold;
      const editing = this.draft && this.draft.replaces === z.id;
      const g = svg("g", { class: `zone${hot ? " hot" : ""}${editing ? " editing" : ""}`, "data-zone": z.id });
      g.append(svg("polygon", { points: z.polygon.map((p) => p.join(",")).join(" "), "stroke-width": unit / 2 }));
      const [lx, ly] = [Math.min(...z.polygon.map((p) => p[0])), Math.min(...z.polygon.map((p) => p[1]))];
      const label = `${z.name}: ${z.people === null ? "—" : Math.round(z.people)}${z.gathering && z.gathering.threshold ? ` / ${z.gathering.threshold}` : ""}`;
      g.append(svg("text", { x: lx + unit, y: ly + unit * 4, "font-size": unit * 3.5 }, label));
      root.append(g);
    }
    if (this.draft) {
      const pts = this.draft.points;
      const d = svg("g", { class: `draft${this.draft.ground ? " ground" : ""}`, id: "zone-draft" });
      if (pts.length >= 2) d.append(svg(pts.length >= 3 ? "polygon" : "polyline", { points: pts.map((p) => p.join(",")).join(" "), "stroke-width": unit / 2 }));
      if (this.draft.ground) pts.forEach((p, i) => d.append(svg("text", { x: p[0] + unit * 1.6, y: p[1] - unit * 1.6, "font-size": unit * 3.5 }, String(i + 1))));
      pts.forEach((p, i) => {
        const handle = svg("circle", { cx: p[0], cy: p[1], r: unit * 1.2, class: "vertex", "data-index": i });
        handle.addEventListener("pointerdown", (ev) => {
          ev.stopPropagation();
          ev.preventDefault();
          this.dragging = i;
          root.setPointerCapture(ev.pointerId);
        });
        d.append(handle);
      });
      root.append(d);
      root.classList.add("drawing");
      root.addEventListener("pointerdown", (ev) => {
        if (ev.button !== 0) return;
        this.draft.points.push(this.toFrame(ev, size));
        this.renderStage(cam);
        this.renderEditor(cam);
      });
      root.addEventListener("pointermove", (ev) => {
        if (this.dragging === null) return;
        this.draft.points[this.dragging] = this.toFrame(ev, size);
        const c = root.querySelector(`circle[data-index='${this.dragging}']`);
        c.setAttribute("cx", this.draft.points[this.dragging][0]);
        c.setAttribute("cy", this.draft.points[this.dragging][1]);
        const shape = root.querySelector("#zone-draft polygon, #zone-draft polyline");
        if (shape) shape.setAttribute("points", this.draft.points.map((p) => p.join(",")).join(" "));
      });
      const drop = () => {
        if (this.dragging === null) return;
        this.dragging = null;
        this.renderStage(cam);
        this.renderEditor(cam);
      };
      root.addEventListener("pointerup", drop);
      root.addEventListener("pointercancel", drop);
    }
    this.svg = root;
    this.stage.replaceChildren(image, root);
  }

  /** A pointer position as whole pixels of the camera's picture, kept inside it. */
  toFrame(ev, size) {
    const box = this.svg.getBoundingClientRect();
    const x = ((ev.clientX - box.left) / box.width) * size.w;
    const y = ((ev.clientY - box.top) / box.height) * size.h;
    return [Math.round(Math.min(Math.max(x, 0), size.w)), Math.round(Math.min(Math.max(y, 0), size.h))];
  }

  renderZones(cam) {
    if (!cam.zones.length) {
      this.zonesTable.replaceChildren(el("p.muted", null, t("no_zones")));
      return;
    }
    this.zonesTable.replaceChildren(
      el(
        "table.mini",
        { id: "camera-zone-table" },
        el("tr", null, ["zone", "people", "rule", ""].map((k) => el("th", null, k ? t(k) : ""))),
        cam.zones.map((z) =>
          el(
            "tr",
            { dataset: { zone: z.id } },
            el("td", null, z.name, el("div.muted", null, z.id)),
            el("td.num", null, z.people === null ? "—" : Math.round(z.people)),
            el("td", null, ruleText(z.gathering)),
            el("td", null, el("button.small", { onclick: () => this.edit(z) }, t("edit_zone"))),
          ),
        ),
      ),
    );
  }

  edit(zone) {
    this.draft = {
      points: zone.polygon.map((p) => [Math.round(p[0]), Math.round(p[1])]),
      replaces: zone.id,
      id: zone.id,
      name: zone.name === zone.id ? "" : zone.name,
      threshold: zone.gathering?.threshold ?? "",
      dwell_s: zone.gathering?.dwell_s ?? 30,
      growth_factor: zone.gathering?.growth_factor ?? "",
      growth_window_s: zone.gathering?.growth_window_s ?? 60,
      area_m2: zone.area_from === "configured" ? zone.area_m2 : "", // an area from the ground points follows the corners
      kept: { ...(zone.gathering || {}) }, // the rule's other settings (release, cooldown, night...) stay as they are
    };
    this.render();
  }

  start() {
    this.draft = { points: [], replaces: null, id: "", name: "", threshold: "", dwell_s: 30, growth_factor: "", growth_window_s: 60, area_m2: "", kept: {} };
    this.render();
  }

  /** Place the camera's ground points: click points on the ground, give each its place in metres. */
  startGround() {
    this.draft = { ground: true, points: [], metres: [] };
    this.render();
  }

  renderGroundEditor(cam) {
    const d = this.draft;
    while (d.metres.length < d.points.length) d.metres.push(["", ""]);
    d.metres.length = d.points.length;
    this.output = el("div.zone-output");
    const rows = d.points.map(([x, y], i) => {
      const input = (j) => {
        const box = el("input", { type: "number", step: "0.1", value: d.metres[i][j], name: `ground-${i}-${j}`, placeholder: j ? "Y m" : "X m" });
        box.addEventListener("input", () => {
          d.metres[i][j] = box.value;
          this.renderOutput(cam);
        });
        return box;
      };
      return el("label.ground-point", null, el("span", null, t("ground_point", { n: i + 1, x, y })), el("span.pair", null, input(0), input(1)));
    });
    this.editor.replaceChildren(
      el("h3", null, t("ground_points")),
      el("p.muted", null, t("ground_help")),
      this.pointTools(),
      el("form.ground-form", { id: "ground-form", onsubmit: (ev) => ev.preventDefault() }, rows),
      this.output,
    );
    this.renderOutput(cam);
  }

  renderGroundOutput(cam) {
    const d = this.draft;
    const problems = [];
    if (d.points.length < 4) problems.push(t("ground_needs_points", { n: d.points.length }));
    const metres = d.metres.map((m) => m.map((v) => (v === "" ? NaN : Number(v))));
    if (metres.some((m) => !m.every(Number.isFinite))) problems.push(t("ground_needs_metres"));
    const plane = problems.length ? null : fitGround(d.points, metres);
    if (!problems.length && !plane) problems.push(t("ground_no_plane"));
    if (problems.length) {
      this.output.replaceChildren(el("ul.error", { id: "zone-problems" }, problems.map((p) => el("li", null, p))));
      return;
    }
    const areas = cam.zones.map((z) => {
      const m2 = groundArea(plane, z.polygon);
      return el("li", null, `${z.name}: ${m2 === null ? t("zone_above_horizon") : `${m2.toFixed(1)} m²`}`);
    });
    const text = groundYaml(d.points, metres);
    const pre = el("pre.mono", { id: "zone-yaml" }, text);
    this.output.replaceChildren(
      el("p.muted", null, t("ground_zone_areas")),
      el("ul", { id: "ground-areas" }, areas),
      el("p.muted", null, t("ground_paste", { device: cam.device_id })),
      pre,
      this.copyButton(pre, text),
    );
  }

  /** Undo, clear and cancel for the points being placed (a zone's corners or the ground points). */
  pointTools() {
    const d = this.draft;
    return el(
      "div.zone-tools",
      null,
      el("button.small", { id: "zone-undo", onclick: () => (d.points.pop(), this.render()), disabled: !d.points.length }, t("undo_point")),
      el("button.small", { id: "zone-clear", onclick: () => ((d.points = []), this.render()) }, t("clear_points")),
      el("button.small", { id: "zone-cancel", onclick: () => ((this.draft = null), this.render()) }, t("cancel")),
    );
  }

  /** A button copying ``text`` (the lines in ``pre``) to the clipboard, or selecting them where there is none. */
  copyButton(pre, text) {
    return el("button.small", {
      id: "zone-copy",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(text);
          this.ctx.toast(t("copied"));
        } catch {
          // no clipboard (plain http): select the text for Ctrl+C
          const range = document.createRange();
          range.selectNodeContents(pre);
          const sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
          this.ctx.toast(t("copy_by_hand"));
        }
      },
    }, t("copy"));
  }

  renderEditor(cam) {
    const box = this.editor;
    if (!this.size()) {
      box.replaceChildren(el("h3", null, t("draw_zone")), el("p.muted", null, t("no_frame_size")));
      return;
    }
    if (!this.draft) {
      box.replaceChildren(
        el("h3", null, t("draw_zone")),
        el("p.muted", null, t("draw_help")),
        el(
          "div.zone-tools",
          null,
          el("button.primary", { id: "zone-new", onclick: () => this.start() }, t("new_zone")),
          el("button", { id: "ground-new", onclick: () => this.startGround() }, t(cam.ground ? "ground_redo" : "ground_points")),
        ),
      );
      return;
    }
    if (this.draft.ground) return this.renderGroundEditor(cam);
    const d = this.draft;
    const field = (name, label, attrs = {}) => {
      const input = el("input", { name, value: d[name] ?? "", ...attrs });
      input.addEventListener("input", () => {
        d[name] = input.value;
        this.renderOutput(cam);
      });
      return el("label", null, el("span", null, label), input);
    };
    this.output = el("div.zone-output");
    box.replaceChildren(
      el("h3", null, d.replaces ? t("editing_zone", { id: d.replaces }) : t("new_zone")),
      el("p.muted", null, t("draw_help")),
      this.pointTools(),
      el(
        "form.zone-form",
        { onsubmit: (ev) => ev.preventDefault() },
        field("id", t("zone_id"), { placeholder: "north-steps", autocomplete: "off" }),
        field("name", t("zone_name"), { placeholder: t("zone_name_hint"), autocomplete: "off" }),
        field("threshold", t("zone_threshold"), { type: "number", min: "1", step: "1" }),
        field("dwell_s", t("zone_dwell"), { type: "number", min: "0", step: "1" }),
        field("growth_factor", t("zone_growth"), { type: "number", min: "1.1", step: "0.1" }),
        field("growth_window_s", t("zone_growth_window"), { type: "number", min: "1", step: "1" }),
        field("area_m2", t("zone_area"), { type: "number", min: "0", step: "1" }),
      ),
      this.output,
    );
    this.renderOutput(cam);
  }

  /** The zone as configured text, or what is still missing. */
  renderOutput(cam) {
    if (this.draft.ground) return this.renderGroundOutput(cam);
    const d = this.draft;
    const problems = [];
    const warnings = [];
    const id = String(d.id || "").trim();
    if (d.points.length < 3) problems.push(t("zone_needs_points", { n: d.points.length }));
    if (!ID.test(id)) problems.push(t("zone_bad_id"));
    else if (id !== d.replaces && cam.zones.some((z) => z.id === id)) problems.push(t("zone_id_taken", { id }));
    const num = (v) => (v === "" || v === null || v === undefined ? null : Number(v));
    const threshold = num(d.threshold);
    const growth = num(d.growth_factor);
    if (threshold !== null && !(threshold > 0)) problems.push(t("zone_bad_threshold"));
    if (growth !== null && !(growth > 1)) problems.push(t("zone_bad_growth"));
    if (d.points.length >= 3 && selfCrossing(d.points)) warnings.push(t("zone_crosses"));
    const size = this.size();
    const share = d.points.length >= 3 ? area(d.points) / (size.w * size.h) : 0;
    const nodes = [];
    if (d.points.length >= 3) nodes.push(el("p.muted", { id: "zone-share" }, t("zone_share", { pct: (share * 100).toFixed(1) })));
    if (d.points.length >= 3 && cam.ground) {
      const m2 = groundArea(cam.ground, d.points);
      if (m2 === null) problems.push(t("zone_above_horizon"));
      else if (num(d.area_m2) === null) nodes.push(el("p.muted", { id: "zone-ground-area" }, t("zone_ground_area", { m2: m2.toFixed(1) })));
    }
    for (const w of warnings) nodes.push(el("p.warn-text", null, w));
    if (problems.length) {
      nodes.push(el("ul.error", { id: "zone-problems" }, problems.map((p) => el("li", null, p))));
      this.output.replaceChildren(...nodes);
      return;
    }
    const gathering = {};
    if (threshold !== null) {
      gathering.threshold = threshold;
      gathering.dwell_s = num(d.dwell_s) ?? 30;
    }
    if (growth !== null) {
      gathering.growth_factor = growth;
      gathering.growth_window_s = num(d.growth_window_s) ?? 60;
    }
    const FORM = ["threshold", "dwell_s", "growth_factor", "growth_window_s"];
    for (const [key, value] of Object.entries(d.kept || {})) if (!FORM.includes(key)) gathering[key] = value;
    const notes = [];
    if (gathering.release_threshold !== undefined && (threshold === null || gathering.release_threshold > threshold)) {
      delete gathering.release_threshold; // the lower level of the hysteresis must stay below the new threshold
      if (threshold !== null) notes.push(t("zone_release_reset"));
    }
    // a rule needs a threshold, a growth factor or a density (watchpost/config.py): without one there is none
    const rule = threshold !== null || growth !== null || gathering.density_per_m2 ? gathering : null;
    const text = zoneYaml({
      id,
      name: String(d.name || "").trim(),
      polygon: d.points,
      area_m2: num(d.area_m2) || null,
      gathering: rule,
    });
    const pre = el("pre.mono", { id: "zone-yaml" }, text);
    const copy = this.copyButton(pre, text);
    nodes.push(
      el("p.muted", null, t(d.replaces ? "zone_paste_replace" : "zone_paste", { device: cam.device_id, id: d.replaces || id })),
      pre,
      copy,
    );
    if (!rule) nodes.push(el("p.muted", null, t("zone_counts_only")));
    for (const note of notes) nodes.push(el("p.warn-text", null, note));
    this.output.replaceChildren(...nodes);
  }
}

function ruleText(g) {
  if (!g) return t("counts_only");
  const parts = [];
  if (g.threshold) parts.push(t("rule_threshold", { n: g.threshold, s: g.dwell_s }));
  if (g.growth_factor) parts.push(t("rule_growth", { f: g.growth_factor, s: g.growth_window_s }));
  if (g.density_per_m2) parts.push(t("rule_density", { d: g.density_per_m2 }));
  return parts.join(t("or"));
}
