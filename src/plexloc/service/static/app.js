// plexloc service web page: plain JavaScript over the user API (/api/v1), no build step.
"use strict";
const API = "/api/v1";
const CHUNK = 8 * 1024 * 1024;
let token = localStorage.getItem("plexloc-token") || "";
let apps = [];
let files = [];
let selected = null;   // job id shown in the detail panel
let logAfter = 0;

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => {
  const e = Object.assign(document.createElement(tag), props);
  for (const k of kids) e.append(k);
  return e;
};

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + token } };
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const r = await fetch(API + path, opts);
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = errorText(await r.json()); } catch (e) {}
    throw new Error(`${r.status}: ${detail}`);
  }
  return r.status === 204 ? null : r.json();
}

// the server's answer to a refused request, one line: an InputError's detail names its field already ("inputs.config:
// file ...: field 'psf.sigma_nm': ..."); a request the API's schema refuses gives a list, each item its place and value
function errorText(j) {
  if (Array.isArray(j.detail)) {
    return j.detail.map((e) => `${(e.loc || []).filter((x) => x !== "body").join(".")}: ${e.msg}` +
      ("input" in e ? ` (got ${JSON.stringify(e.input)})` : "")).join("; ");
  }
  const detail = typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail);
  return j.field && !detail.startsWith(j.field + ":") ? j.field + ": " + detail : detail;
}

function showError(e) { $("error").textContent = e ? String(e.message || e) : ""; }
const fmtSize = (n) => n > 1e9 ? (n / 1e9).toFixed(2) + " GB" : n > 1e6 ? (n / 1e6).toFixed(1) + " MB" : n > 1e3 ? (n / 1e3).toFixed(1) + " kB" : n + " B";
const fmtTime = (t) => t ? new Date(t * 1000).toLocaleString() : "";

// ---- files ------------------------------------------------------------------------------------------
// files up to this size are hashed in the browser (crypto.subtle reads a file whole, in memory) to find the same file
// already in the user's space, as plexloc submit does; larger ones, or a page not served over https or from localhost
// (no crypto.subtle there), are uploaded as before
const REUSE_MAX = 256 * 1024 * 1024;

async function sha256Hex(file) {
  if (!(window.crypto && crypto.subtle) || file.size > REUSE_MAX) return null;
  try {
    const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  } catch (e) {  // not readable whole now (changed on disk: NotReadableError; no memory for it): uploaded as before,
    return null;  // where the page failed the upload
  }
}

async function uploadOne(file) {
  const sha256 = await sha256Hex(file);
  if (sha256) {  // the same name and bytes already uploaded: used, not sent again (the page uploaded it each time)
    const same = (await api("GET", `/files?kind=upload&sha256=${sha256}`)).find(
      (f) => f.name === file.name && f.size === file.size && f.state === "ready");
    if (same) {
      $("upload-status").textContent = `${file.name}: already on the server (file:${same.id}), not uploaded again`;
      return same;
    }
  }
  const created = await api("POST", "/files", sha256 ? { name: file.name, size: file.size, sha256 } : { name: file.name, size: file.size });
  const url = created.upload_url;
  let offset = 0;
  const head = await fetch(url, { method: "HEAD" });
  if (head.ok) offset = parseInt(head.headers.get("Upload-Offset") || "0", 10);
  if (url.includes("/storage/v1/")) {
    do {  // chunks with an offset: an interrupted upload continues where the store stopped
      const end = Math.min(offset + CHUNK, file.size);
      const r = await fetch(url + "&offset=" + offset, { method: "PUT", body: file.slice(offset, end) });
      if (!r.ok) throw new Error(`upload of ${file.name}: ${r.status} ${await r.text()}`);
      offset = (await r.json()).offset;
      $("upload-status").textContent = `${file.name}: ${Math.round(100 * offset / Math.max(file.size, 1))}%`;
    } while (offset < file.size);
  } else {
    const r = await fetch(url, { method: "PUT", body: file });
    if (!r.ok) throw new Error(`upload of ${file.name}: ${r.status}`);
  }
  // reuse: the same file completed meanwhile by another upload (two tabs, a submit) is kept once
  const done = await api("POST", `/files/${created.file.id}/complete` + (sha256 ? "?reuse=true" : ""));
  $("upload-status").textContent = `${file.name}: uploaded`;
  return done;
}

async function refreshFiles() {
  files = await api("GET", "/files");
  const body = $("files").tBodies[0];
  body.replaceChildren(...files.map((f) => el("tr", {},
    el("td", { textContent: f.name, title: f.id }),
    el("td", { textContent: fmtSize(f.size) }),
    el("td", { textContent: f.kind + (f.state === "ready" ? "" : " (" + f.state + ")") }),
    el("td", {}, el("button", { textContent: "delete", onclick: () => api("DELETE", `/files/${f.id}`).then(refreshFiles).catch(showError) })),
  )));
  renderSlots();
  const use = await api("GET", "/usage");  // the space one's files take, against the server's limits when it has them
  $("usage").textContent = "your files: " + fmtSize(use.file_bytes)
    + (use.quota_bytes ? " of a " + fmtSize(use.quota_bytes) + " quota" : "")
    + (use.max_active_jobs ? `; jobs queued or running: ${use.active_jobs} of at most ${use.max_active_jobs}` : "");
}

// ---- applications and the job form ----------------------------------------------------------------
function currentEntry() {
  const app = apps.find((a) => a.name === $("app").value);
  if (!app) return null;
  const ver = app.versions[$("version").value];
  return ver ? ver.entry_points[$("entry").value] : null;
}

function fillSelect(select, values) {
  select.replaceChildren(...values.map((v) => el("option", { value: v, textContent: v })));
}

function onApp() {
  const app = apps.find((a) => a.name === $("app").value);
  fillSelect($("version"), Object.keys(app.versions).reverse());
  onVersion();
}

function onVersion() {
  const app = apps.find((a) => a.name === $("app").value);
  fillSelect($("entry"), Object.keys(app.versions[$("version").value].entry_points));
  onEntry();
}

function onEntry() {
  const ep = currentEntry();
  const app = apps.find((a) => a.name === $("app").value);
  $("entry-desc").textContent = (ep.description || app.description || "") +
    ` — default hardware: ${ep.hardware.cpus} CPU, ${ep.hardware.memory_mb} MB, ${ep.hardware.gpus} GPU; time limit ${ep.timeout_s} s`;
  renderSlots();
  const params = $("params");
  params.replaceChildren();
  for (const [name, p] of Object.entries(ep.params)) {
    params.append(el("label", { textContent: `${name}${p.description ? " — " + p.description : ""}`, htmlFor: "p-" + name }));
    let input;
    if (p.choices) {
      input = el("select", { id: "p-" + name });
      fillSelect(input, p.choices.map(String));
      if (p.default !== null) input.value = String(p.default);
    } else if (p.type === "boolean") {
      input = el("input", { id: "p-" + name, type: "checkbox", checked: !!p.default });
    } else {
      input = el("input", { id: "p-" + name, type: p.type === "string" ? "text" : "number" });
      if (p.type === "number") input.step = "any";
      if (p.minimum !== null) input.min = p.minimum;
      if (p.maximum !== null) input.max = p.maximum;
      if (p.default !== null) input.value = p.default;
      input.placeholder = p.default === null ? (p.required === false ? "optional" : "required") : "";
    }
    input.dataset.param = name;
    input.dataset.type = p.type;
    params.append(input);
  }
}

function renderSlots() {
  const ep = currentEntry();
  if (!ep) return;
  const slots = $("slots");
  slots.replaceChildren();
  for (const [name, s] of Object.entries(ep.inputs)) {
    slots.append(el("label", { textContent: `${name} (${s.kind}${s.multiple ? ", one or more" : ""}${s.required === false ? ", optional" : ""}${s.beside ? ", placed beside " + s.beside : ""}${s.suffixes.length ? ", " + s.suffixes.join(" ") : ""})`, htmlFor: "s-" + name, title: s.description || "" }));
    const sel = el("select", { id: "s-" + name, multiple: s.multiple });
    sel.dataset.slot = name;
    const usable = files.filter((f) => f.state === "ready" && (!s.suffixes.length || s.suffixes.some((x) => f.name.toLowerCase().endsWith(x))));
    if (!s.multiple) sel.append(el("option", { value: "", textContent: "— choose —" }));
    for (const f of usable) sel.append(el("option", { value: f.id, textContent: `${f.name} (${fmtSize(f.size)}${f.job_id ? ", from job " + f.job_id : ""})` }));
    slots.append(sel);
  }
}

async function submitJob() {
  const config = {};
  for (const input of document.querySelectorAll("[data-param]")) {
    const t = input.dataset.type;
    if (t === "boolean") config[input.dataset.param] = input.checked;
    else if (input.value !== "") config[input.dataset.param] = (t === "integer" || t === "number") ? Number(input.value) : input.value;
  }
  const inputs = {};
  for (const sel of document.querySelectorAll("[data-slot]")) {
    const ids = Array.from(sel.selectedOptions).map((o) => o.value).filter((v) => v);
    if (ids.length) inputs[sel.dataset.slot] = ids;
  }
  const body = { application: $("app").value, version: $("version").value, entry_point: $("entry").value, config, inputs };
  const hardware = {};  // the entry point's defaults, overridden where a field is filled in
  for (const [id, key] of [["gpus", "gpus"], ["cpus", "cpus"], ["memory", "memory_mb"]]) {
    if ($(id).value !== "") hardware[key] = Number($(id).value);
  }
  if (Object.keys(hardware).length) body.hardware = hardware;
  const job = await api("POST", "/jobs", body);
  $("submit-status").textContent = `submitted ${job.id}`;
  select(job.id);
  refreshJobs();
}

// ---- jobs ----------------------------------------------------------------------------------------------
const bar = (p) => el("span", { className: "bar" }, el("div", { style: `width:${Math.round(100 * p)}%` }));

async function refreshJobs() {
  const jobs = await api("GET", "/jobs");
  $("jobs").tBodies[0].replaceChildren(...jobs.map((j) => el("tr", { className: "click" + (j.id === selected ? " sel" : ""), onclick: () => select(j.id) },
    el("td", { textContent: j.id }),
    el("td", { textContent: `${j.application} ${j.version} ${j.entry_point}` }),
    el("td", { className: "state-" + j.state },
      j.state + (j.waiting ? " (waiting for inputs)" : "") + (j.stage ? ` (${j.stage})` : "") + (j.cancel_requested && !["cancelled", "succeeded", "failed"].includes(j.state) ? " cancelling" : ""),
      // why it failed, in the list (a failed job said only "failed" until it was clicked): its start, the whole on hover
      ...(j.error ? [el("div", { className: "muted job-error", textContent: j.error.length > 120 ? j.error.slice(0, 119) + "…" : j.error, title: j.error })] : []),
      // a job that succeeded with warnings (they were only in its log): how many, the texts in its detail
      ...(j.warning_count ? [el("div", { className: "muted job-warnings", textContent: `${j.warning_count} warning${j.warning_count === 1 ? "" : "s"}` })] : [])),
    el("td", {}, bar(j.progress), ` ${Math.round(100 * j.progress)}%`),
    el("td", { textContent: fmtTime(j.created_at) }),
    // the space its outputs and log take (what Delete frees): which jobs to delete, over the quota
    el("td", { className: "job-space", textContent: j.output_bytes == null ? "" : fmtSize(j.output_bytes) }),
  )));
}

function select(id) {
  if (selected !== id) { selected = id; logAfter = 0; $("log").textContent = ""; $("outputs").replaceChildren(); $("previews").replaceChildren(); }
  $("detail").hidden = false;
  refreshDetail();
}

let shownOutputs = "";
let outputsStaleAt = 0;  // the links' signed URLs expire: shown again, with fresh ones, before they do
async function refreshDetail() {
  if (!selected) return;
  const j = await api("GET", `/jobs/${selected}`);
  $("d-id").textContent = j.id;
  $("d-state").textContent = `— ${j.state}${j.stage ? " (" + j.stage + ")" : ""} ${Math.round(100 * j.progress)}%`;
  $("d-state").className = "state-" + j.state;
  $("d-info").textContent = `${j.application} ${j.version} ${j.entry_point}; config ${JSON.stringify(j.config)}; attempts ${j.attempts}/${j.max_attempts}` +
    (j.error ? `; error: ${j.error}` : "") + (j.warning_count ? `; ${j.warning_count} warning${j.warning_count === 1 ? "" : "s"}: ${(j.warnings || []).join(" | ")}` : "") + (j.note ? `; ${j.note}` : "") + (j.rerun_of ? `; re-run of ${j.rerun_of}` : "") +
    `; CPU ${j.cpu_seconds.toFixed(1)} s, GPU ${j.gpu_seconds.toFixed(1)} s`;
  const log = await api("GET", `/jobs/${selected}/log?after=${logAfter}`);
  if (log.lines.length) {
    $("log").textContent += log.lines.map((l) => l.line).join("\n") + "\n";
    $("log").scrollTop = $("log").scrollHeight;
    logAfter = log.next_after;
  }
  if (["succeeded", "failed", "cancelled"].includes(j.state)) {
    const outs = await api("GET", `/jobs/${selected}/outputs`);
    const key = outs.map((o) => o.id).join(",");
    if (key !== shownOutputs || Date.now() > outputsStaleAt) {
      shownOutputs = key;
      outputsStaleAt = Date.now() + 500 * Math.min(...outs.map((o) => o.expires_in_s || 3600), 3600);
      $("outputs").replaceChildren(...outs.map((o) => el("li", {}, el("a", { href: o.url, textContent: o.name, download: o.name }), ` ${fmtSize(o.size)} (${o.kind})`)));
      $("previews").replaceChildren(...outs.filter((o) => /\.png$/i.test(o.name)).map((o) => el("img", { src: o.url, alt: o.name, title: o.name })));
    }
  } else if (shownOutputs) { shownOutputs = ""; $("outputs").replaceChildren(); $("previews").replaceChildren(); }
}

// ---- wiring --------------------------------------------------------------------------------------------
async function start() {
  showError(null);
  if (!token) { $("whoami").textContent = "enter your token"; return; }
  try {
    const me = await api("GET", "/me");
    $("whoami").textContent = "signed in as " + me.name;
    apps = await api("GET", "/applications");
    fillSelect($("app"), apps.map((a) => a.name));
    if (apps.length) onApp();
    await refreshFiles();
    await refreshJobs();
  } catch (e) { showError(e); }
}

$("save-token").onclick = () => { token = $("token").value.trim(); localStorage.setItem("plexloc-token", token); start(); };
$("app").onchange = onApp;
$("version").onchange = onVersion;
$("entry").onchange = onEntry;
$("upload").onclick = async () => {
  try { for (const f of $("file-input").files) await uploadOne(f); await refreshFiles(); } catch (e) { showError(e); }
};
$("submit").onclick = () => submitJob().catch(showError);
$("cancel").onclick = () => api("POST", `/jobs/${selected}/cancel`).then(refreshDetail).catch(showError);
$("rerun").onclick = () => api("POST", `/jobs/${selected}/rerun`).then((j) => { select(j.id); refreshJobs(); }).catch(showError);
$("delete").onclick = () => api("DELETE", `/jobs/${selected}`).then(() => { selected = null; $("detail").hidden = true; refreshJobs(); refreshFiles(); }).catch(showError);

setInterval(() => {  // live status: poll while the page is open
  if (!token) return;
  // the detail first, then the list, so that the list is never behind the state shown in the detail
  refreshDetail().catch(showError).finally(() => refreshJobs().catch(showError));
}, 1500);
setInterval(() => { if (token) refreshFiles().catch(() => {}); }, 10000);
start();
