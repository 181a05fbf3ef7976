// Dashboards: 1-3-5 compliance, alerts per type and period, the zero-case board, device health,
// dead letters and people counted per camera zone.

import { barChart, legend, lineChart } from "./charts.js";
import { t } from "./i18n.js";
import { SEVERITIES } from "./model.js";
import { age, el, isoDaysAgo, ms, when } from "./util.js";
import { PolledView } from "./view.js";

const RANGES = { day: 14, week: 7 * 12, month: 365, quarter: 2 * 365 }; // days of history per report kind
const half = (node) => Math.max(280, Math.floor((node.clientWidth || 1000) / 2) - 8);
const pct = (v) => (v === null || v === undefined ? "—" : `${Math.round(v * 100)}%`);

export class Dashboards extends PolledView {
  constructor(ctx, root) {
    super(ctx, root, 30000);
    this.state = { weeks: 1, severity: "", bucket: "day", period: "month" };
    this.cards = {};
  }

  card(id, title, controls) {
    const body = el("div.card-body");
    const node = el("section.card", { id }, el("header", null, el("h3", null, title), controls || null), body);
    this.root.append(node);
    this.cards[id] = body;
    return body;
  }

  select(name, pairs) {
    const node = el("select", { name }, pairs.map(([v, label]) => el("option", { value: v }, label)));
    node.value = String(this.state[name]);
    node.addEventListener("change", () => {
      this.state[name] = node.value;
      this.refresh();
    });
    return node;
  }

  build() {
    this.built = true;
    const ctx = this.ctx;
    this.card(
      "dash-compliance",
      t("dash_compliance"),
      el(
        "div.controls",
        null,
        this.select("weeks", [["1", t("range_this_week")], ["4", t("range_weeks", { n: 4 })], ["12", t("range_weeks", { n: 12 })]]),
        this.select("severity", [["", t("all_severities")], ...SEVERITIES.slice(0, 3).map((s) => [s, t("sev_" + s)])]),
      ),
    );
    this.card(
      "dash-alerts",
      t("dash_alerts"),
      el("div.controls", null, this.select("bucket", ["day", "week", "month", "quarter"].map((b) => [b, t("bucket_" + b)]))),
    );
    this.card(
      "dash-zero",
      t("dash_zero_case"),
      el("div.controls", null, this.select("period", ["week", "month", "quarter", "year"].map((p) => [p, t("period_" + p)]))),
    );
    this.card("dash-devices", t("dash_devices"));
    if (ctx.may("read sites and devices")) this.card("dash-dead", t("dash_dead"));
    this.card("dash-crowd", t("dash_crowd"), el("span.muted", null, t("last_hours", { n: 6 })));
  }

  async refresh() {
    const jobs = [this.compliance(), this.alerts(), this.zeroCase(), this.deviceHealth(), this.crowd()];
    if (this.cards["dash-dead"]) jobs.push(this.deadLetters());
    await Promise.all(jobs.map((job) => job.catch((err) => console.error(err))));
    this.root.dataset.loaded = String(Date.now());
  }

  async compliance() {
    const body = this.cards["dash-compliance"];
    const weeks = Number(this.state.weeks);
    const params = { bucket: "week", severity: this.state.severity || null };
    if (weeks > 1) params.since = isoDaysAgo(weeks * 7);
    const [bySite, byWeek] = await Promise.all([
      this.ctx.api.get("/stats/compliance", { ...params, by_site: true }),
      this.ctx.api.get("/stats/compliance", { bucket: "week", since: isoDaysAgo(7 * 12), severity: this.state.severity || null, by_site: false }),
    ]);
    const tiers = [1, 2, 3].map((tier) => {
      const rows = bySite.filter((r) => r.tier === tier);
      const sum = (k) => rows.reduce((s, r) => s + r[k], 0);
      const met = sum("met");
      const missed = sum("missed");
      const medians = rows.map((r) => r.median_arrival_s).filter((v) => v !== null);
      return { tier, met, missed, pending: sum("pending"), share: met + missed ? met / (met + missed) : null, deadline: rows[0] && rows[0].deadline_s, medians };
    });
    const tiles = el(
      "div.tiles",
      null,
      tiers.map((x) =>
        el(
          `div.tile${x.share === null ? "" : x.share >= 0.9 ? ".good" : x.share >= 0.7 ? ".fair" : ".poor"}`,
          { dataset: { tier: x.tier } },
          el("div.tile-label", null, `${t("tier")} ${x.tier} · ${this.ctx.settings.tier_deadlines_s[x.tier - 1]}s`),
          el("div.tile-value", null, pct(x.share)),
          el("div.muted", null, `${t("met")} ${x.met} · ${t("missed")} ${x.missed} · ${t("pending")} ${x.pending}`),
        ),
      ),
    );
    const sites = [...new Set(bySite.map((r) => r.site_id))];
    const siteTable = el(
      "table.mini",
      null,
      el("tr", null, el("th", null, t("col_site")), [1, 2, 3].map((tier) => el("th", null, `T${tier}`))),
      sites.map((site) =>
        el(
          "tr",
          null,
          el("td", null, this.ctx.siteName(site) || "—"),
          [1, 2, 3].map((tier) => {
            const rows = bySite.filter((r) => r.site_id === site && r.tier === tier);
            const met = rows.reduce((s, r) => s + r.met, 0);
            const missed = rows.reduce((s, r) => s + r.missed, 0);
            return el("td", null, met + missed ? `${pct(met / (met + missed))} (${met}/${met + missed})` : "—");
          }),
        ),
      ),
    );
    const periods = [...new Set(byWeek.map((r) => r.period))].sort();
    const series = [1, 2, 3].map((tier) => ({
      name: `T${tier}`,
      points: periods
        .map((p, i) => {
          const rows = byWeek.filter((r) => r.period === p && r.tier === tier);
          const met = rows.reduce((s, r) => s + r.met, 0);
          const missed = rows.reduce((s, r) => s + r.missed, 0);
          return met + missed ? [i, met / (met + missed)] : null;
        })
        .filter(Boolean),
    }));
    body.replaceChildren(
      tiles,
      el("div.split", null,
        el("div", null, el("h4", null, t("dash_compliance_by_site")), sites.length ? siteTable : el("p.muted", null, t("no_data"))),
        el("div", null, el("h4", null, t("dash_compliance_by_week")),
          periods.length ? lineChart(series, { yMax: 1, format: pct, xTicks: periods.map((p, i) => [i, p.slice(5)]), width: half(body), height: 190 }) : el("p.muted", null, t("no_data")),
          periods.length ? legend(series) : null),
      ),
    );
  }

  async alerts() {
    const body = this.cards["dash-alerts"];
    const bucket = this.state.bucket;
    const rows = await this.ctx.api.get("/stats/alerts", { bucket, since: isoDaysAgo(RANGES[bucket]), until: new Date(Date.now() + 86400000).toISOString() });
    if (!rows.length) return body.replaceChildren(el("p.muted", null, t("no_data")));
    const periods = [...new Set(rows.map((r) => r.period))].sort();
    const totals = new Map();
    for (const r of rows) {
      const x = totals.get(r.type) || { alerts: 0, false_alarms: 0 };
      x.alerts += r.alerts;
      x.false_alarms += r.false_alarms;
      totals.set(r.type, x);
    }
    const types = [...totals.keys()].sort((a, b) => totals.get(b).alerts - totals.get(a).alerts);
    const stacks = types.map((type) => ({
      name: this.ctx.typeTitle(type),
      values: periods.map((p) => rows.filter((r) => r.period === p && r.type === type).reduce((s, r) => s + r.alerts, 0)),
    }));
    const label = (p) => (bucket === "day" || bucket === "week" ? p.slice(5) : p.slice(0, 7));
    body.replaceChildren(
      el("div.split", null,
        el("div", null, barChart(periods, stacks, { label, width: half(body), height: 230 }), legend(stacks)),
        el(
          "table.mini",
          { id: "alert-totals" },
          el("tr", null, el("th", null, t("type")), el("th", null, t("alerts")), el("th", null, t("false_alarms"))),
          types.map((type) => el("tr", null, el("td", null, this.ctx.typeTitle(type)), el("td.num", null, totals.get(type).alerts), el("td.num", null, totals.get(type).false_alarms))),
          el("tr.total", null, el("td", null, t("total")), el("td.num", null, rows.reduce((s, r) => s + r.alerts, 0)), el("td.num", null, rows.reduce((s, r) => s + r.false_alarms, 0))),
        ),
      ),
    );
  }

  async zeroCase() {
    const body = this.cards["dash-zero"];
    const rows = await this.ctx.api.get("/stats/zero-case", { period: this.state.period });
    body.replaceChildren(
      el(
        "div.zero-board",
        null,
        rows.map((r) =>
          el(
            `div.zero-card${r.zero_case ? ".zero" : ".cases"}`,
            { dataset: { site: r.site_id } },
            el("div.zero-name", null, r.name),
            el("div.zero-big", null, r.zero_case ? t("zero_case") : t("cases_in_period", { n: r.cases_in_period })),
            el("div.muted", null, r.days_since_case === null ? t("never_case") : t("days_since_case", { n: r.days_since_case })),
            r.last_case_type ? el("div.muted", null, `${this.ctx.typeTitle(r.last_case_type)} · ${when(r.last_case_at, { date: true, seconds: false })}`) : null,
            el(`div.level.level-${r.response_level}`, null, `${t("response_level")}: ${t("level_" + r.response_level)}`),
          ),
        ),
      ),
    );
  }

  async deviceHealth() {
    const body = this.cards["dash-devices"];
    const rows = await this.ctx.api.get("/stats/devices");
    const count = (s) => rows.filter((r) => r.status === s).length;
    body.replaceChildren(
      el("div.tiles.small", null, ["ok", "silent", "never_seen"].map((s) => el(`div.tile.d-${s}`, null, el("div.tile-label", null, t("d_" + s)), el("div.tile-value", null, count(s))))),
      el(
        "div.scroll",
        null,
        el(
          "table.mini",
          { id: "device-table" },
          el("tr", null, ["device", "col_site", "type", "dev_status", "last_heard", "open_alerts"].map((k) => el("th", null, t(k)))),
          rows.map((r) =>
            el(
              "tr",
              { class: `d-${r.status}` },
              el("td", null, r.name || r.device_id, el("div.muted", null, r.device_id)),
              el("td", null, this.ctx.siteName(r.site_id)),
              el("td", null, r.kind),
              el("td", null, el(`span.dot.d-${r.status}`), " ", t("d_" + r.status)),
              el("td", null, r.last_received ? `${age(r.silent_s)}` : "—"),
              el("td.num", null, r.open_alerts || ""),
            ),
          ),
        ),
      ),
    );
  }

  async deadLetters() {
    const body = this.cards["dash-dead"];
    const [counts, rows] = await Promise.all([this.ctx.api.get("/dead-letters/counts"), this.ctx.api.get("/dead-letters", { limit: 15 })]);
    const reasons = Object.entries(counts).sort((a, b) => b[1] - a[1]);
    if (!reasons.length) return body.replaceChildren(el("p.muted", null, t("no_data")));
    const top = Math.max(...reasons.map((r) => r[1]));
    body.replaceChildren(
      el("div.bars", null, reasons.map(([reason, n]) => el("div.bar-row", null, el("span.bar-label", null, reason), el("span.bar", { style: `width:${(n / top) * 100}%` }), el("span.num", null, n)))),
      el(
        "div.scroll",
        null,
        el(
          "table.mini",
          { id: "dead-table" },
          el("tr", null, ["received", "topic", "reason", "detail", "times_seen"].map((k) => el("th", null, t(k)))),
          rows.map((r) =>
            el("tr", null, el("td", null, when(r.last_seen, { date: true })), el("td.mono", null, r.topic), el("td", null, r.reason), el("td.clip", { title: r.detail }, r.detail), el("td.num", null, r.times_seen)),
          ),
        ),
      ),
    );
  }

  /** People per camera zone: what Watchpost counts (/observations, per camera) and what devices report. */
  async crowd() {
    const body = this.cards["dash-crowd"];
    const since = isoDaysAgo(0.25);
    const points = new Map();
    const add = (key, at, value) => {
      if (value === null || value === undefined || !at) return;
      if (!points.has(key)) points.set(key, []);
      points.get(key).push([ms(at), Number(value)]);
    };
    const sources = new Set();
    if (this.ctx.may("read observations")) {
      const devices = await this.ctx.api.get("/stats/devices").catch(() => []);
      for (const cam of devices.filter((d) => d.kind === "camera")) {
        let obs = null;
        try {
          obs = await this.ctx.api.get("/observations", { device: cam.device_id, since });
        } catch (err) {
          if (![404, 405, 422].includes(err.status)) throw err;
        }
        for (const s of obs ? obs.series : []) {
          for (const pt of s.points) add(`${cam.device_id} / ${s.zone_name || s.zone}`, pt.at, pt.mean);
        }
        if (obs && obs.series.some((x) => x.points.length)) sources.add("crowd_source_obs");
      }
    }
    if (this.ctx.may("read events")) {
      const rows = await this.ctx.api.get("/events", { kind: "crowd_count", since, limit: 1000 });
      for (const r of rows) add(`${r.device_id}${r.zone ? " / " + r.zone : ""} (${t("crowd_reported")})`, r.occurred_at, r.count);
      if (rows.length) sources.add("crowd_source_events");
    }
    const source = [...sources].map((x) => t(x)).join(" · ");
    if (!points.size) return body.replaceChildren(el("p.empty", { id: "crowd-empty" }, t("crowd_empty")));
    const series = [...points.entries()].map(([name, pts]) => ({ name, points: pts.sort((a, b) => a[0] - b[0]) }));
    body.replaceChildren(lineChart(series, { time: true, width: body.clientWidth || 560, height: 220 }), legend(series), el("p.muted", null, source));
  }
}
