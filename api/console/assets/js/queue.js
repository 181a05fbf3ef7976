// The alert queue: filters, one row per alert, ticking ages and tier countdowns, at-risk highlighting.

import { onLangChange, t } from "./i18n.js";
import { OPEN_STATES, SEVERITIES, isOpen, risks, tierClock } from "./model.js";
import { age, clock, el, ms } from "./util.js";

const SEVERITY_RANK = Object.fromEntries(SEVERITIES.map((s, i) => [s, i]));
const FLASH_MS = 12000;

export class Queue {
  constructor(ctx, root) {
    this.ctx = ctx;
    this.root = root;
    this.body = root.querySelector("#queue tbody");
    this.empty = root.querySelector("#queue-empty");
    this.form = root.querySelector("#filters");
    this.selected = null;
    this.flash = new Map(); // alert id -> until (ms)
    this.filters = JSON.parse(sessionStorage.getItem("wp.filters") || "null") || {
      scope: "open",
      severity: "",
      site: "",
      type: "",
      at_risk: false,
    };
    this.fillFilters();
    this.form.addEventListener("change", () => {
      const f = this.form.elements;
      this.filters = {
        scope: f.scope.value,
        severity: f.severity.value,
        site: f.site.value,
        type: f.type.value,
        at_risk: f.at_risk.checked,
      };
      sessionStorage.setItem("wp.filters", JSON.stringify(this.filters));
      this.render();
    });
    ctx.on("select", (id) => (this.selected = id));
    onLangChange(() => {
      this.fillFilters();
      this.render();
    });
  }

  fillFilters() {
    const f = this.form.elements;
    const options = (select, pairs, value) => {
      select.replaceChildren(...pairs.map(([v, label]) => el("option", { value: v }, label)));
      select.value = value;
    };
    options(f.scope, [["open", t("scope_open")], ["all", t("scope_all")], ["closed", t("scope_closed")]], this.filters.scope);
    options(f.severity, [["", t("any")], ...SEVERITIES.map((s) => [s, t("sev_" + s)])], this.filters.severity);
    const sites = [...this.ctx.sites.values()].map((s) => [s.id, s.name]);
    options(f.site, [["", t("any")], ...sites], this.filters.site);
    const types = [...this.ctx.types.keys()].map((k) => [k, this.ctx.typeTitle(k)]);
    options(f.type, [["", t("any")], ...types], this.filters.type);
    f.at_risk.checked = this.filters.at_risk;
  }

  matches(alert, now) {
    const f = this.filters;
    if (f.scope === "open" && !isOpen(alert)) return false;
    if (f.scope === "closed" && isOpen(alert)) return false;
    if (f.severity && alert.severity !== f.severity) return false;
    if (f.site && alert.site_id !== f.site) return false;
    if (f.type && alert.type !== f.type) return false;
    if (f.at_risk && !risks(alert, now).length) return false;
    return true;
  }

  /** Open alerts first, most severe first, then newest. */
  sorted(now) {
    return [...this.ctx.alerts.values()]
      .filter((a) => this.matches(a, now))
      .sort(
        (a, b) =>
          Number(isOpen(b)) - Number(isOpen(a)) ||
          SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] ||
          b.alert_id - a.alert_id,
      );
  }

  render() {
    if (this.pending) clearTimeout(this.pending);
    this.pending = null;
    const now = Date.now();
    const rows = this.sorted(now).slice(0, 300).map((alert) => this.row(alert, now));
    this.body.replaceChildren(...rows);
    this.empty.hidden = rows.length > 0;
    this.counts(now);
  }

  /** An alert changed (or arrived): redraw its row in place, or the table when its position may change. */
  update(id, arrived = false) {
    if (arrived) this.flash.set(id, Date.now() + FLASH_MS);
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = null;
      this.render();
    }, 30);
  }

  counts(now) {
    const open = [...this.ctx.alerts.values()].filter(isOpen);
    const atRisk = open.filter((a) => risks(a, now).length).length;
    document.getElementById("counts").replaceChildren(
      el("span.count", null, t("open_count", { n: open.length })),
      el(`span.count${atRisk ? ".danger" : ""}`, { id: "risk-count" }, t("at_risk_count", { n: atRisk })),
    );
  }

  row(alert, now) {
    const reasons = risks(alert, now);
    const classes = ["sev-" + alert.severity, "state-" + alert.state];
    if (reasons.length) classes.push("at-risk");
    if (alert.alert_id === this.selected) classes.push("selected");
    if ((this.flash.get(alert.alert_id) || 0) > now) classes.push("flash");
    const units = alert.assignments.filter((a) => a.state !== "cancelled");
    const tr = el(
      "tr",
      { class: classes.join(" "), dataset: { alertId: alert.alert_id }, onclick: () => this.ctx.emit("select", alert.alert_id) },
      el("td", null, el(`span.badge.sev-${alert.severity}`, null, t("sev_" + alert.severity))),
      el(
        "td.title",
        null,
        el("strong", null, this.ctx.alertTitle(alert)),
        el("span.id", null, ` #${alert.alert_id}`),
        alert.count > 1 ? el("span.repeat", null, ` ×${alert.count}`) : null,
        reasons.length ? el("span.risk-tag", { title: reasons.map((r) => `T${r.tier} ${r.why}`).join(", ") }, t("at_risk")) : null,
      ),
      el("td", null, this.ctx.siteName(alert.site_id), alert.zone ? el("span.zone", null, ` · ${alert.zone}`) : null),
      el("td.age", { dataset: { since: alert.created_at } }, age((now - ms(alert.created_at)) / 1000)),
      el("td", null, el(`span.state.st-${alert.state}`, null, t("st_" + alert.state))),
      el("td.tiers", null, alert.tiers.map((tier) => tierChip(alert, tier, now))),
      el(
        "td.units",
        null,
        units.map((a) =>
          el(`span.unit-chip.ast-${a.state}`, { title: t("ast_" + a.state) }, a.unit_name || a.unit_id),
        ),
      ),
    );
    return tr;
  }

  /** Every second: ages and countdowns move; rows whose risk changed are redrawn. */
  tick() {
    const now = Date.now();
    let changed = false;
    for (const tr of this.body.children) {
      const alert = this.ctx.alerts.get(Number(tr.dataset.alertId));
      if (!alert) continue;
      const ageCell = tr.querySelector(".age");
      ageCell.textContent = age((now - ms(alert.created_at)) / 1000);
      if (!isOpen(alert)) continue;
      const risky = risks(alert, now).length > 0;
      const flashing = (this.flash.get(alert.alert_id) || 0) > now;
      if (risky !== tr.classList.contains("at-risk") || flashing !== tr.classList.contains("flash")) changed = true;
      const cells = tr.querySelector(".tiers");
      cells.replaceChildren(...alert.tiers.map((tier) => tierChip(alert, tier, now)));
    }
    if (changed) this.render();
    else this.counts(now);
  }
}

/** One tier's clock: T1 0:42 counting down, ✓ with the arrival second, ✗ when missed. */
export function tierChip(alert, tier, now) {
  const c = tierClock(tier, now);
  let text;
  if (c.state === "met") text = `✓ ${clock((ms(tier.met_at) - ms(alert.created_at)) / 1000)}`;
  else if (c.state === "missed") text = `✗ ${tier.arrived_at ? clock((ms(tier.arrived_at) - ms(alert.created_at)) / 1000) : t("tier_missed")}`;
  else if (c.state === "void") text = "—";
  else if (!OPEN_STATES.includes(alert.state)) text = "—";
  else text = clock(c.seconds);
  const title = `${t("tier")} ${tier.tier} · ${t("tier_" + (tier.state in { met: 1, missed: 1, void: 1 } ? tier.state : "pending"))}`;
  return el(`span.tier.t-${c.state}`, { title, dataset: { tier: tier.tier } }, el("b", null, `T${tier.tier}`), " ", text);
}

