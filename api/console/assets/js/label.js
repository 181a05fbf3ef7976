// The labelling page of `watchpost crowd label`: click the heads in each frame; every change is
// saved to labels.json by the local server at once.

import { el, svg } from "./util.js";

const state = { frames: [], index: 0, frame: null, heads: [], labelled: false };
const $ = (id) => document.getElementById(id);

async function call(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const r = await fetch(path, init);
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    const detail = data && data.detail;
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail) || `HTTP ${r.status}`);
  }
  return data;
}

function showError(err) {
  $("label-error").textContent = err ? err.message || String(err) : "";
}

async function load() {
  const list = await call("GET", "/api/frames");
  state.frames = list.frames;
  $("labels-path").textContent = list.labels;
  const first = state.frames.findIndex((f) => !f.labelled);
  await open(first < 0 ? 0 : first);
}

async function open(index) {
  if (index < 0 || index >= state.frames.length) return;
  state.index = index;
  const name = state.frames[index].frame;
  try {
    state.frame = await call("GET", `/api/frames/${encodeURIComponent(name)}`);
    showError(null);
  } catch (err) {
    state.frame = null;
    showError(err);
    render();
    return;
  }
  state.heads = state.frame.heads.map((h) => [h[0], h[1]]);
  state.labelled = state.frame.labelled;
  render();
}

let saving = Promise.resolve();
let pending = 0; // saves not answered yet (body[data-pending]: tests wait for 0)

/** Save the current frame's heads; saves go one after another, so the last click is what the file keeps. */
function save() {
  const index = state.index;
  const name = state.frame.frame;
  const heads = state.heads.map((h) => [h[0], h[1]]);
  render();
  pending += 1;
  document.body.dataset.pending = String(pending);
  saving = saving.then(() => put(index, name, heads)).finally(() => {
    pending -= 1;
    document.body.dataset.pending = String(pending);
  });
  return saving;
}

async function put(index, name, heads) {
  $("saved").textContent = "saving…";
  try {
    const answer = await call("PUT", `/api/frames/${encodeURIComponent(name)}`, { heads });
    const entry = state.frames[index];
    entry.labelled = true;
    entry.count = answer.count;
    if (state.index === index) state.labelled = true;
    $("saved").textContent = "saved";
    $("saved").dataset.state = "live";
    showError(null);
  } catch (err) {
    $("saved").textContent = "not saved";
    $("saved").dataset.state = "reconnecting";
    showError(err);
  }
  render();
}

function radius() {
  return Math.max(3, state.frame.width / 160);
}

function render() {
  const done = state.frames.filter((f) => f.labelled).length;
  // how many a camera needs (README, "How many frames to label": 50 come close, 100 count as well as 600)
  const advice = done < 10 ? "calibration needs 10 at least, 50-100 count best" : done < 50 ? "50-100 count best" : "enough to calibrate";
  $("progress").textContent = `${done} of ${state.frames.length} frames labelled · ${advice}`;
  $("frame-name").textContent = state.frames.length ? `${state.index + 1}/${state.frames.length} ${state.frames[state.index].frame}` : "";
  const stage = $("label-stage");
  if (!state.frame) {
    stage.replaceChildren();
    $("head-count").textContent = "";
    return;
  }
  $("head-count").textContent = `${state.heads.length} heads${state.labelled ? "" : " · not labelled yet"}`;
  const { width, height } = state.frame;
  stage.style.aspectRatio = `${width} / ${height}`;
  stage.style.width = `min(100%, calc((100vh - 190px) * ${width / height}))`;
  const image = el("img", { id: "label-image", src: `/api/frames/${encodeURIComponent(state.frame.frame)}/image`, alt: state.frame.frame, draggable: "false" });
  const r = radius();
  const root = svg("svg", { id: "label-svg", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", class: "drawing" });
  state.heads.forEach(([x, y], i) => root.append(svg("circle", { cx: x, cy: y, r, class: "head", "data-index": i })));
  root.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0) return;
    const box = root.getBoundingClientRect();
    const x = Math.min(Math.max(((ev.clientX - box.left) / box.width) * width, 0), width);
    const y = Math.min(Math.max(((ev.clientY - box.top) / box.height) * height, 0), height);
    const near = state.heads.findIndex(([hx, hy]) => Math.hypot(hx - x, hy - y) <= r * 1.3);
    if (near >= 0) state.heads.splice(near, 1);
    else state.heads.push([Math.round(x * 10) / 10, Math.round(y * 10) / 10]);
    save();
  });
  const old = stage.querySelector("img");
  if (old && old.getAttribute("src") === image.getAttribute("src")) stage.replaceChildren(old, root);
  else stage.replaceChildren(image, root);
}

function nextUnlabelled() {
  const n = state.frames.length;
  for (let k = 1; k <= n; k++) {
    const i = (state.index + k) % n;
    if (!state.frames[i].labelled) return open(i);
  }
  return null;
}

$("prev").onclick = () => open(state.index - 1);
$("next").onclick = () => open(state.index + 1);
$("next-unlabelled").onclick = nextUnlabelled;
$("undo").onclick = () => {
  if (!state.heads.length) return;
  state.heads.pop();
  save();
};
$("nobody").onclick = () => {
  state.heads = [];
  save();
};
$("unlabel").onclick = async () => {
  try {
    await call("DELETE", `/api/frames/${encodeURIComponent(state.frame.frame)}`);
    state.frames[state.index].labelled = false;
    state.labelled = false;
    state.heads = [];
    render();
  } catch (err) {
    showError(err);
  }
};
document.addEventListener("keydown", (ev) => {
  if (ev.target instanceof HTMLInputElement) return;
  if (ev.key === "ArrowLeft") open(state.index - 1);
  else if (ev.key === "ArrowRight") open(state.index + 1);
  else if (ev.key === "u") nextUnlabelled();
  else if (ev.key === "z") $("undo").click();
  else if (ev.key === "0") $("nobody").click();
});

load().catch(showError);
