// One alert in full: actions, tier clocks, units and ETAs, snapshot, source events, timeline.

import { lineChart } from "./charts.js";
import { onLangChange, t } from "./i18n.js";
import { ACTIVE_ASSIGNMENT, isOpen, risks } from "./model.js";
import { tierChip } from "./queue.js";
import { clock, debounce, distance, el, metres, ms, when } from "./util.js";

export class Detail {
  constructor(ctx, root) {
    this.ctx = ctx;
    this.root = root;
    this.id = null;
    this.data = null; // GET /alerts/{id}: {alert, timeline, sources}
    this.form = null; // the open inline form: {kind, assignmentId?}
    this.snapshot = new Map(); // alert id -> object URL or null
    this.reload = debounce(() => this.load(), 250);
    onLangChange(() => this.render());
  }

  async show(id) {
    if (id !== this.id) (this.form = null), (this.formNode = null);
    this.id = id;
    this.data = null;
    this.render();
    await this.load();
  }

  /** The feed says this alert changed: refresh if it is the one shown. */
  changed(id) {
    if (id === this.id) this.reload();
  }

  async load() {
    const id = this.id;
    if (id === null) return;
    try {
      const data = await this.ctx.api.get(`/alerts/${id}`);
      if (id !== this.id) return;
      this.data = data;
      this.ctx.upsert(data.alert);
    } catch (err) {
      this.root.replaceChildren(el("p.error", null, err.detail || err.message));
      return;
    }
    if (!this.snapshot.has(id)) {
      // The snapshot route may not exist in this deployment, or the alert has none: both are a quiet 404.
      this.snapshot.set(id, await this.ctx.api.blobUrl(`/alerts/${id}/snapshot`).catch(() => null));
    }
    if (id === this.id) this.render();
  }

  tick() {
    if (!this.data) return;
    const alert = this.ctx.alerts.get(this.id) || this.data.alert;
    const box = this.root.querySelector(".tier-list");
    if (box) box.replaceChildren(...alert.tiers.map((tier) => this.tierRow(alert, tier)));
  }

  render() {
    if (this.id === null) {
      this.root.replaceChildren(el("p.empty", null, t("select_alert")));
      return;
    }
    const alert = this.ctx.alerts.get(this.id) || (this.data && this.data.alert);
    if (!alert) {
      this.root.replaceChildren(el("p.empty", null, "…"));
      return;
    }
    const reasons = risks(alert);
    const parts = [
      el(
        "div.detail-head",
        { dataset: { alertId: alert.alert_id } },
        el(
          "h2",
          null,
          el(`span.badge.sev-${alert.severity}`, null, t("sev_" + alert.severity)),
          " ",
          this.ctx.alertTitle(alert),
          el("span.id", null, ` #${alert.alert_id}`),
        ),
        el(
          "p.meta",
          null,
          el(`span.state.st-${alert.state}`, { id: "detail-state" }, t("st_" + alert.state)),
          reasons.length ? el("span.risk-tag", null, t("at_risk")) : null,
          el("span", null, `${t("created")} ${when(alert.created_at, { date: true })}`),
          el("span", null, `${this.ctx.siteName(alert.site_id)}${alert.zone ? " · " + alert.zone : ""}`),
          alert.device_id ? el("span", null, `${t("device")} ${alert.device_id}`) : null,
          alert.detail && alert.detail.reported_by ? el("span", null, `${t("reported_by")} ${alert.detail.reported_by}`) : null,
        ),
        alert.detail && alert.detail.note ? el("p.note", null, alert.detail.note) : null,
        alert.outcome ? el("p.note", null, `${t("outcome")}: ${t("out_" + alert.outcome)} ${alert.resolution_note || ""}`) : null,
      ),
      this.actions(alert),
      // The open form is kept across updates of the alert, so what the operator is typing stays.
      this.form ? (this.formNode ||= this.formBox(alert)) : null,
      section(t("tiers_title"), alert.tiers.length ? el("div.tier-list", null, alert.tiers.map((tier) => this.tierRow(alert, tier))) : null),
      section(t("units_title"), this.units(alert)),
      this.snapshotBox(),
      section(t("sources"), this.sources()),
      section(t("timeline"), this.timeline()),
    ];
    this.root.replaceChildren(...parts.filter(Boolean));
  }

  actions(alert) {
    const ctx = this.ctx;
    if (!isOpen(alert)) return null;
    const buttons = [];
    const add = (action, label, onClick, kind = "") =>
      ctx.may(action) && buttons.push(el(`button.${kind || "plain"}`, { dataset: { act: label }, onclick: onClick }, t("act_" + label)));
    if (!alert.acknowledged_at) add("acknowledge alerts", "acknowledge", () => this.run(ctx.api.post(`/alerts/${alert.alert_id}/acknowledge`, {})), "primary");
    add("assign units to alerts", "assign", () => this.open({ kind: "assign" }));
    add("escalate alerts", "escalate", () => this.run(ctx.api.post(`/alerts/${alert.alert_id}/escalate`, {})), "warn");
    add("resolve alerts", "resolve", () => this.open({ kind: "resolve" }));
    add("cancel alerts", "cancel", () => this.open({ kind: "cancel" }), "danger");
    return buttons.length ? el("div.actions", null, buttons) : null;
  }

  open(form) {
    this.form = form;
    this.formNode = null;
    this.render();
    if (form.kind === "assign" || form.kind === "reassign") this.loadCandidates();
  }

  async loadCandidates() {
    const form = this.form;
    const list = await this.ctx.act(this.ctx.api.get(`/alerts/${this.id}/candidates`, { limit: 8 }));
    if (form !== this.form) return;
    form.candidates = list || [];
    this.formNode = null;
    this.render();
  }

  async run(promise) {
    const answer = await this.ctx.act(promise);
    if (answer) {
      this.form = null;
      this.formNode = null;
      if (answer.alert_id && answer.assignments) this.ctx.upsert(answer);
      await this.load();
    }
    return answer;
  }

  formBox(alert) {
    const form = this.form;
    const close = el("button.ghost", { type: "button", onclick: () => ((this.form = null), (this.formNode = null), this.render()) }, t("act_close"));
    if (form.kind === "assign" || form.kind === "reassign") {
      const rows = (form.candidates || []).map((c) =>
        el(
          "li",
          { dataset: { unitId: c.unit_id } },
          el("button.primary.small", {
            type: "button",
            onclick: () =>
              form.kind === "assign"
                ? this.run(this.ctx.api.post(`/alerts/${alert.alert_id}/assign`, { unit_id: c.unit_id, tier: c.in_time_for[0] ?? null }))
                : this.run(this.ctx.api.post(`/assignments/${form.assignmentId}/reassign`, { unit_id: c.unit_id })),
          }, t(form.kind === "assign" ? "act_assign" : "act_reassign")),
          el("strong", null, c.name || c.unit_id),
          el("span.muted", null, ` ${c.kind} · ${t("eta")} ${c.eta_s === null ? "?" : clock(c.eta_s)} · ${metres(c.distance_m)}`),
          el(c.in_time_for.length ? "span.ok" : "span.late", null, " ", c.in_time_for.length ? t("in_time_for", { tiers: c.in_time_for.join(", ") }) : t("too_late")),
        ),
      );
      return el(
        "div.inline-form",
        { id: "candidates" },
        el("h3", null, t("candidates"), " ", close),
        form.candidates === undefined ? el("p.muted", null, "…") : rows.length ? el("ul.candidates", null, rows) : el("p.muted", null, t("no_candidates")),
      );
    }
    const outcomes = this.ctx.settings.outcomes;
    const note = el("input", { name: "note", maxlength: 2000, placeholder: t("note") });
    const outcome = form.kind === "resolve" ? el("select", { name: "outcome" }, outcomes.map((o) => el("option", { value: o }, t("out_" + o)))) : null;
    const submit = el("button", { type: "submit", class: form.kind === "cancel" ? "danger" : "primary" }, t("act_confirm"));
    const box = el(
      "form.inline-form",
      {
        id: `${form.kind}-form`,
        onsubmit: (event) => {
          event.preventDefault();
          const body = { note: note.value };
          if (outcome) body.outcome = outcome.value;
          this.run(this.ctx.api.post(`/alerts/${alert.alert_id}/${form.kind}`, body));
        },
      },
      el("h3", null, t("act_" + form.kind), " ", close),
      outcome ? el("label", null, t("outcome"), " ", outcome) : null,
      note,
      submit,
    );
    return box;
  }

  tierRow(alert, tier) {
    const units = alert.assignments.filter((a) => a.tier === tier.tier && a.state !== "cancelled");
    return el(
      "div.tier-row",
      null,
      tierChip(alert, tier, Date.now()),
      el("span.muted", null, ` ${t("deadline")} ${when(tier.deadline_at)}`),
      tier.escalations ? el("span.warn-text", null, ` ↑${tier.escalations}`) : null,
      el("span", null, " ", units.map((a) => a.unit_name || a.unit_id).join(", ")),
    );
  }

  units(alert) {
    const shown = alert.assignments;
    if (!shown.length) return el("p.muted", null, t("no_units"));
    const deadlines = Object.fromEntries(alert.tiers.map((tier) => [tier.tier, ms(tier.deadline_at)]));
    return el(
      "table.mini",
      null,
      shown.map((a) => {
        const expected = a.eta_s === null ? null : ms(a.assigned_at) + a.eta_s * 1000;
        const late = expected && a.tier && deadlines[a.tier] && expected > deadlines[a.tier] && a.state !== "on_scene";
        const unit = this.ctx.units.get(a.unit_id);
        return el(
          "tr",
          { class: `ast-${a.state}${late ? " late" : ""}`, dataset: { assignmentId: a.assignment_id } },
          el("td", null, el("strong", null, a.unit_name || a.unit_id), el("div.muted", null, `${a.unit_kind} · ${a.reason}${a.tier ? " · T" + a.tier : ""}`)),
          el("td", null, el(`span.state.ast-${a.state}`, null, t("ast_" + a.state))),
          el(
            "td",
            null,
            a.eta_s === null ? "" : `${t("eta")} ${clock(a.eta_s)} (${when(new Date(expected).toISOString(), { seconds: false })})`,
            a.distance_m !== null ? el("div.muted", null, `${t("distance")} ${metres(a.distance_m)}`) : null,
            late ? el("div.late", null, t("eta_late")) : null,
          ),
          el(
            "td",
            null,
            a.on_scene_at ? `${t("arrived")} ${when(a.on_scene_at)}` : "",
            a.outcome ? el("div.muted", null, t("out_" + a.outcome)) : null,
            unit && unit.active_assignment_id === a.assignment_id && a.state !== "on_scene" && alert.lat !== null
              ? el("div.muted", { class: "muted live-distance" }, t("now_away", { d: metres(distance(unit.lat, unit.lon, alert.lat, alert.lon)) }))
              : null,
          ),
          el(
            "td",
            null,
            ACTIVE_ASSIGNMENT.includes(a.state) && isOpen(alert) && this.ctx.may("assign units to alerts")
              ? el("button.small", { type: "button", onclick: () => this.open({ kind: "reassign", assignmentId: a.assignment_id }) }, t("act_reassign"))
              : null,
          ),
        );
      }),
    );
  }

  snapshotBox() {
    const url = this.snapshot.get(this.id);
    if (url === undefined) return null;
    const alert = this.ctx.alerts.get(this.id) || (this.data && this.data.alert);
    const camera = alert && alert.detail && alert.detail.camera;
    // a crowd alert: its camera's picture, zones and the last hour of counts are one click away
    const open = camera && this.ctx.may("read observations")
      ? el("button.small", { id: "open-camera", onclick: () => this.ctx.emit("camera", camera) }, t("open_camera"))
      : null;
    return section(t("snapshot"), url ? el("img.snapshot", { src: url, alt: t("snapshot") }) : el("p.muted", null, t("no_snapshot")), open);
  }

  sources() {
    if (!this.data) return el("p.muted", null, "…");
    const rows = this.data.sources;
    if (!rows.length) return el("p.muted", null, t("no_sources"));
    const counts = rows.filter((r) => r.count !== null);
    const trend =
      counts.length > 1
        ? el("div.trend", null, el("h4", null, t("count_trend")), lineChart([{ name: counts[0].zone || counts[0].device_id, points: counts.map((r) => [ms(r.occurred_at), r.count]) }], { height: 120, width: 420, time: true }))
        : null;
    return el(
      "div",
      null,
      trend,
      el(
        "table.mini",
        null,
        rows.slice(-50).map((r) =>
          el(
            "tr",
            null,
            el("td", null, when(r.occurred_at)),
            el("td", null, r.device_id),
            el("td", null, `${r.kind}/${r.code}`),
            el("td", null, [r.plate, r.count !== null ? `×${r.count}` : null, r.zone, r.state].filter(Boolean).join(" · ")),
            el("td.muted", null, r.confidence !== null ? `${Math.round(r.confidence * 100)}%` : ""),
          ),
        ),
      ),
    );
  }

  timeline() {
    if (!this.data) return el("p.muted", null, "…");
    return el(
      "ol.timeline",
      null,
      this.data.timeline.map((step) =>
        el(
          "li",
          null,
          el("time", null, when(step.at)),
          el("strong", null, ` ${step.action}`),
          step.from_state !== step.to_state ? el("span", null, ` ${t("st_" + (step.from_state || "new"))} → ${t("st_" + step.to_state)}`) : null,
          el("span.muted", null, ` · ${step.actor}`),
          step.detail && step.detail.unit_id ? el("span", null, ` · ${this.ctx.unitName(step.detail.unit_id)}`) : null,
          step.detail && (step.detail.note || step.detail.why) ? el("div.muted", null, step.detail.note || step.detail.why) : null,
        ),
      ),
    );
  }
}

function section(title, body, ...more) {
  if (!body) return null;
  return el("section.block", null, el("h3", null, title), body, ...more);
}

