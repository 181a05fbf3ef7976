// What the console concludes from an alert snapshot: open or not, tier clocks, units, risk.

import { ms } from "./util.js";

export const OPEN_STATES = ["new", "dispatched", "acknowledged", "on_scene"];
export const ACTIVE_ASSIGNMENT = ["assigned", "accepted", "on_scene"];
export const SEVERITIES = ["critical", "major", "minor", "info"];
const NEAR_S = 30; // a running tier with less than this left and nobody there is at risk

export function isOpen(alert) {
  return OPEN_STATES.includes(alert.state);
}

export function activeAssignments(alert) {
  return alert.assignments.filter((a) => ACTIVE_ASSIGNMENT.includes(a.state));
}

/**
 * Why an open alert risks missing its 1-3-5 target, as a list of reasons (empty: not at risk):
 * a running tier near or past its deadline with nobody on scene, a tier with no unit at all,
 * or a unit whose ETA lands after its tier's deadline.
 */
export function risks(alert, now = Date.now()) {
  if (!isOpen(alert)) return [];
  const reasons = [];
  const active = activeAssignments(alert);
  const onScene = active.some((a) => a.state === "on_scene");
  for (const tier of alert.tiers) {
    const left = (ms(tier.deadline_at) - now) / 1000;
    if (tier.state === "missed" && !tier.arrived_at && !onScene) {
      reasons.push({ tier: tier.tier, why: "missed" });
      continue;
    }
    if (tier.state !== "pending") continue;
    const units = active.filter((a) => a.tier === tier.tier);
    if (left <= NEAR_S) reasons.push({ tier: tier.tier, why: "near" });
    else if (!units.length) reasons.push({ tier: tier.tier, why: "no_unit" });
    else if (units.every((a) => a.state !== "on_scene" && a.eta_s !== null && ms(a.assigned_at) + a.eta_s * 1000 > ms(tier.deadline_at))) {
      reasons.push({ tier: tier.tier, why: "eta" });
    }
  }
  return reasons;
}

/** How a tier clock reads now: {label seconds, state, urgent}. */
export function tierClock(tier, now = Date.now()) {
  const left = (ms(tier.deadline_at) - now) / 1000;
  if (tier.state === "met") return { state: "met", seconds: (ms(tier.met_at) - ms(tier.deadline_at)) / 1000 + 0, left };
  if (tier.state === "pending") return { state: left < 0 ? "overdue" : left <= NEAR_S ? "near" : "pending", seconds: left, left };
  return { state: tier.state, seconds: left, left };
}
