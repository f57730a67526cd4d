// Seeker dashboard: reads the seeker's REST API with the token the user
// enters (kept in sessionStorage) and refreshes itself. Plain DOM, no build.
// Text from the API is only ever set as textContent, never parsed as HTML.
"use strict";

const REFRESH_MS = 2000;
const TOKEN_KEY = "seeker.token";
const FINAL = new Set(["succeeded", "failed", "cancelled"]);

const $ = (id) => document.getElementById(id);

// --- DOM --------------------------------------------------------------------

/** h("td", {class: "x", title: "y"}, "text", node, null, [more]) */
function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function fill(parent, ...children) {
  parent.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
}

const pill = (state, title) => h("span", { class: `pill s-${state}`, title }, state.replace("_", " "));
const muted = (text) => h("span", { class: "muted" }, text);

/** A bar filled to `fraction` (0..1, or null when unknown) with `label` on it. */
function bar(fraction, label, title) {
  if (fraction === null || fraction === undefined || Number.isNaN(fraction)) {
    return h("div", { class: "bar unknown", title }, h("span", { class: "label" }, label || "n/a"));
  }
  const f = Math.max(0, Math.min(1, fraction));
  const level = f >= 0.9 ? "high" : f >= 0.7 ? "mid" : "low";
  const fillEl = h("span", { class: "fill" });
  fillEl.style.width = `${(f * 100).toFixed(1)}%`;
  return h("div", { class: `bar ${level}`, title }, fillEl, h("span", { class: "label" }, label));
}

// --- formatting -------------------------------------------------------------

function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

let clockSkewMs = 0; // server clock minus ours, from the Date header

function ago(iso) {
  if (!iso) return "-";
  const s = Math.max(0, Math.round((Date.now() + clockSkewMs - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

function when(iso) {
  if (!iso) return "-";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function duration(startIso, endIso) {
  if (!startIso || !endIso) return null;
  const s = (Date.parse(endIso) - Date.parse(startIso)) / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

const shortDigest = (d) => (d ? d.replace("sha256:", "").slice(0, 12) : "");
const commandText = (cmd) => (cmd && cmd.length ? cmd.map(quoteArg).join(" ") : "(image default)");

function quoteArg(arg) {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}

// --- API --------------------------------------------------------------------

class Unauthorized extends Error {}

const token = () => sessionStorage.getItem(TOKEN_KEY);

async function api(path) {
  const resp = await fetch(`api/v1/${path}`, {
    headers: { Authorization: `Bearer ${token()}`, Accept: "application/json" },
    cache: "no-store",
    signal: AbortSignal.timeout(10000),
  });
  const date = Date.parse(resp.headers.get("Date"));
  if (!Number.isNaN(date)) {
    const skew = date - Date.now();
    clockSkewMs = Math.abs(skew) > 2000 ? skew : 0; // the header has 1 s resolution
  }
  if (resp.status === 401) throw new Unauthorized("the seeker refused the token");
  const body = await resp.json().catch(() => null);
  if (!resp.ok) {
    const detail = body && body.detail && typeof body.detail === "string" ? `: ${body.detail}` : "";
    throw new Error(body && body.error ? `${body.error}${detail}` : `HTTP ${resp.status}`);
  }
  return body;
}

async function download(artifact) {
  const resp = await fetch(`api/v1/artifacts/${encodeURIComponent(artifact.artifact_id)}`, {
    headers: { Authorization: `Bearer ${token()}` },
  });
  if (!resp.ok) {
    showProblem(`cannot download ${artifact.name}: HTTP ${resp.status}`);
    return;
  }
  const url = URL.createObjectURL(await resp.blob());
  const link = h("a", { href: url, download: artifact.name.split("/").pop() });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// --- helpers ----------------------------------------------------------------

function helperState(hp) {
  if (hp.failures > 0) {
    const reason = hp.last_failure ? `: ${hp.last_failure.reason}` : "";
    return ["unreachable", `${hp.failures} failed contact(s)${reason}`];
  }
  if (!hp.online) return ["offline", "not heard from within the seeker's --liveness"];
  if (hp.running >= hp.slots) return ["full", "every slot runs a task"];
  if (hp.running > 0) return ["busy", `${hp.running} task(s) running`];
  return ["idle", "online, nothing running"];
}

function gpuCell(gpus) {
  if (!gpus || gpus.length === 0) return muted("none");
  return h("div", { class: "gpus" }, gpus.map((g) => {
    const used = g.memory_total - g.memory_free;
    const util = g.utilization === null || g.utilization === undefined ? null : g.utilization / 100;
    return h("div", { class: "gpu", title: `GPU ${g.index}: ${g.name} ${g.uuid}` },
      h("span", { class: "gpu-index" }, `#${g.index}`),
      bar(util, util === null ? "util n/a" : `${Math.round(g.utilization)}% util`, "GPU utilization"),
      bar(g.memory_total ? used / g.memory_total : null,
        `${bytes(used)} / ${bytes(g.memory_total)}`, "GPU memory used"));
  }));
}

function helperRow(hp) {
  const res = hp.resources || {};
  const [state, why] = helperState(hp);
  const load = res.cpu_load;
  const cpu = res.cpus
    ? bar(load === null || load === undefined ? null : load / res.cpus,
      load === null || load === undefined ? `${res.cpus} CPUs` : `${load.toFixed(2)} / ${res.cpus} CPUs`,
      "1-minute load average over CPU count")
    : muted("-");
  const memUsed = res.memory_total ? res.memory_total - res.memory_available : null;
  const mem = res.memory_total
    ? bar(memUsed / res.memory_total, `${bytes(memUsed)} / ${bytes(res.memory_total)}`,
      `${bytes(res.memory_available)} available`)
    : muted("-");
  return h("tr", { "data-helper": hp.name },
    h("td", null, h("strong", null, hp.name),
      h("div", { class: "sub" }, hp.mode === "pull" ? "pulls its work (behind NAT)" : hp.url)),
    h("td", null, pill(state, why)),
    h("td", null, bar(hp.running / hp.slots, `${hp.running} / ${hp.slots}${hp.prefetch ? ` +${hp.prefetch}` : ""}`, "running tasks / slots (+ how many more it accepts to start next: --prefetch)")),
    h("td", null, cpu),
    h("td", null, mem),
    h("td", null, gpuCell(res.gpus)),
    h("td", { class: "num" }, bytes(res.disk_free)),
    h("td", { title: when(hp.last_seen) }, ago(hp.last_seen)));
}

// --- tasks ------------------------------------------------------------------

function replicasText(t) {
  const p = t.policy || { kind: "first" };
  const rule = p.kind === "quorum" ? `quorum ${p.quorum}` : p.kind;
  return t.replicas > 1 ? `${t.replicas} · ${rule}` : "1";
}

function resultCell(result) {
  if (!result) return muted("-");
  const exit = result.exit_code === null || result.exit_code === undefined ? "" : ` exit ${result.exit_code}`;
  return h("span", { class: "result-cell", title: result.output_digest || "" },
    pill(result.status || "unknown"),
    `${exit} on ${result.helper_name || result.helper_id} `,
    result.output_digest ? h("code", { class: "digest" }, shortDigest(result.output_digest)) : null);
}

function taskRow(t) {
  const note = t.error || t.wait_reason;
  return h("tr", { "data-task": t.task_id, "data-state": t.state },
    h("td", null, h("a", { href: `#/tasks/${t.task_id}`, class: "mono" }, t.task_id),
      t.name ? h("div", { class: "sub" }, t.name) : null),
    h("td", null, pill(t.state), note ? h("div", { class: "sub note", title: note }, note) : null),
    h("td", { class: "mono" }, t.image),
    h("td", { class: "mono clip", title: commandText(t.command) }, commandText(t.command)),
    h("td", { title: `${t.attempts} run(s) so far` }, replicasText(t)),
    h("td", null, resultCell(t.result)),
    h("td", { title: when(t.created_at) }, ago(t.created_at)));
}

// Lists come a page at a time (a fleet of thousands, a history of tasks is
// not sent, nor drawn, every 2 s). A pager keeps the `after` of each page up
// to the one shown, and the `next` the shown one's answer gave.
const PAGE = 100;

function pager(name) {
  return {
    pages: [null],
    next: null,
    after() { return this.pages[this.pages.length - 1]; },
    query() {
      const after = this.after();
      return `limit=${PAGE}${after ? `&after=${encodeURIComponent(after)}` : ""}`;
    },
    /** "101-200" (which of the list these are) when there are other pages, else "". */
    range(shown) {
      const first = (this.pages.length - 1) * PAGE;
      if (!shown || (first === 0 && !this.next)) return "";
      return shown === 1 ? `${first + 1}` : `${first + 1}-${first + shown}`;
    },
    shown(next) {
      this.next = next;
      $(`${name}-next`).disabled = !next;
      $(`${name}-first`).disabled = this.pages.length === 1;
      $(`${name}-pages`).hidden = !next && this.pages.length === 1;
    },
  };
}

const helperPages = pager("helpers");
const taskPages = pager("tasks");

function helperCount(list) {
  const range = helperPages.range(list.helpers.length);
  const offline = list.offline ? `, ${list.offline} offline` : "";
  return `(${range ? `${range} of ` : ""}${list.total}${offline})`;
}

function taskCount(tasks) {
  const range = taskPages.range(tasks.length);
  return range ? `(${range}, newest first)` : `(${tasks.length})`;
}

const overview = {
  async load() {
    const state = $("state-filter").value;
    const query = state ? `&state=${encodeURIComponent(state)}` : "";
    const online = $("helper-filter").value;
    const helperQuery = helperPages.query() + (online ? `&online=${online}` : "");
    const [helpers, tasks] = await Promise.all(
      [api(`helpers?${helperQuery}`), api(`tasks?${taskPages.query()}${query}`)]);
    return { helpers, tasks };
  },
  render({ helpers: list, tasks: taskList }) {
    show("overview");
    const helpers = list.helpers;
    const tasks = taskList.tasks;
    helperPages.shown(list.next);
    taskPages.shown(taskList.next);
    $("helper-count").textContent = helperCount(list);
    $("task-count").textContent = taskCount(tasks);
    const empty = (cols, text) => h("tr", null, h("td", { colSpan: cols, class: "empty" }, text));
    const none = list.total === 0
      ? "No helpers registered. Start one with: helper start --seeker-url URL --channel-url URL"
      : "No helper here: another filter or the first page shows them.";
    fill($("helpers").tBodies[0], helpers.length ? helpers.map(helperRow) : empty(8, none));
    const noTasks = taskPages.pages.length === 1 && !$("state-filter").value
      ? "No tasks. Submit one with: seeker submit IMAGE -- COMMAND"
      : "No task here: another state or the first page shows them.";
    fill($("tasks").tBodies[0], tasks.length ? tasks.map(taskRow) : empty(7, noTasks));
  },
};

// --- one task ---------------------------------------------------------------

function definition(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
}

function taskFacts(t) {
  const r = t.resources || {};
  const need = [
    r.cpus ? `${r.cpus} CPUs` : null,
    r.memory ? bytes(r.memory) : null,
    r.gpus ? `${r.gpus} GPU(s)` : null,
    r.gpu_memory ? `${bytes(r.gpu_memory)} GPU memory each` : null,
  ].filter(Boolean).join(", ");
  const kv = (o) => Object.entries(o || {}).map(([k, v]) => `${k}=${v}`).join(" ");
  return definition([
    ["Image", h("code", null, t.image)],
    ["Command", h("code", null, commandText(t.command))],
    ["Environment", kv(t.env)],
    ["Resources", need || "no requirement"],
    ["Replicas", `${replicasText(t)} (runs so far: ${t.attempts}; max attempts: ${t.max_attempts})`],
    ["Placement", t.placement],
    ["Constraints", kv(t.constraints)],
    ["Timeout", t.timeout ? `${t.timeout} s` : "none"],
    ["Created", `${when(t.created_at)} (${ago(t.created_at)})`],
    ["Updated", `${when(t.updated_at)} (${ago(t.updated_at)})`],
    ["Waiting because", t.wait_reason],
    ["Error", t.error ? h("span", { class: "error" }, t.error) : null],
    ["History", (t.history || []).map((e, i) => [i ? " → " : "", pill(e.state), ` ${when(e.at).slice(11)}`])],
  ]);
}

function assignmentsTable(assignments) {
  if (!assignments || assignments.length === 0) return h("p", { class: "muted" }, "Not placed on any helper yet.");
  return h("table", { class: "grid" },
    h("thead", null, h("tr", null,
      ["Attempt", "Helper", "State", "Status", "Exit", "Started", "Finished", "Took", "Error"].map((c) => h("th", null, c)))),
    h("tbody", null, assignments.map((a) => h("tr", { "data-attempt": a.attempt },
      h("td", { class: "num" }, a.attempt),
      h("td", null, a.helper_name || a.helper_id),
      h("td", null, pill(a.state)),
      h("td", null, a.status ? pill(a.status) : "-"),
      h("td", { class: "num" }, a.exit_code ?? "-"),
      h("td", null, when(a.started_at)),
      h("td", null, when(a.finished_at)),
      h("td", { class: "num" }, duration(a.started_at, a.finished_at) || "-"),
      h("td", { class: "note" }, a.error || "")))));
}

function logBlock(title, text, truncated, cls) {
  return h("div", { class: "log" },
    h("div", { class: "log-title" }, title, truncated ? h("span", { class: "warn" }, " (truncated)") : null),
    h("pre", { class: cls }, text || ""));
}

function resultCard(r) {
  const took = duration(r.started_at, r.finished_at);
  return h("article", { class: `card result${r.canonical ? " canonical" : ""}`, "data-result": r.result_id || "" },
    h("header", null,
      h("strong", null, `Attempt ${r.attempt} on ${r.helper_name || r.helper_id}`), " ",
      pill(r.status),
      r.exit_code === null || r.exit_code === undefined ? null : h("span", { class: "chip" }, `exit ${r.exit_code}`),
      r.canonical ? h("span", { class: "chip canonical-badge" }, "canonical") : null,
      h("span", { class: "muted right" }, [took ? `took ${took} · ` : "", `finished ${when(r.finished_at)}`])),
    r.error ? h("p", { class: "error" }, r.error) : null,
    h("p", { class: "muted small" }, "output ", h("code", null, r.output_digest || "-")),
    logBlock("stdout", r.stdout, r.stdout_truncated, "stdout"),
    r.stderr ? logBlock("stderr", r.stderr, r.stderr_truncated, "stderr") : null,
    r.artifacts && r.artifacts.length
      ? h("div", { class: "artifacts" }, h("span", { class: "log-title" }, "artifacts "),
        r.artifacts.map((a) => h("button", { type: "button", class: "quiet", onclick: () => download(a) },
          `${a.name} (${bytes(a.size)})`)))
      : null);
}

const taskPage = {
  results: null, // the last results answer, and the task it is for
  resultsFor: null,

  async load(taskId) {
    const task = await api(`tasks/${encodeURIComponent(taskId)}`);
    const finished = (task.assignments || []).filter((a) => a.state === "finished").length;
    let results = this.resultsFor === taskId ? this.results : null;
    let resultsError = null;
    // Results live in the channel: ask again until every finished run's is there.
    if (!results || !FINAL.has(task.state) || results.results.length < finished) {
      try {
        results = await api(`tasks/${encodeURIComponent(taskId)}/results`);
      } catch (e) {
        if (e instanceof Unauthorized) throw e;
        resultsError = e.message;
      }
    }
    return { task, results, resultsError };
  },

  render({ task, results, resultsError }) {
    show("task-page");
    const page = $("task-page");
    const sameResults = this.resultsFor === task.task_id && JSON.stringify(results) === JSON.stringify(this.results);
    const kept = sameResults ? page.querySelector("#results") : null; // keeps scroll and selection in logs
    this.results = results;
    this.resultsFor = task.task_id;
    const list = results ? results.results : [];
    fill(page,
      h("p", null, h("a", { href: "#/" }, "← all tasks")),
      h("h1", { "data-task": task.task_id, "data-state": task.state },
        "Task ", h("span", { class: "mono" }, task.task_id), " ", pill(task.state),
        task.name ? h("span", { class: "muted" }, ` ${task.name}`) : null),
      h("section", { class: "card" }, taskFacts(task),
        task.result ? h("p", null, h("strong", null, "Canonical result: "), resultCell(task.result)) : null),
      h("h2", null, "Assignments"),
      assignmentsTable(task.assignments),
      h("h2", null, "Results ", muted(`(${list.length})`)),
      kept || h("div", { id: "results" },
        resultsError ? h("p", { class: "error" }, `Results cannot be read now: ${resultsError}`) : null,
        list.length ? list.map(resultCard) : h("p", { class: "muted" }, "No result yet.")));
  },
};

// --- the page ---------------------------------------------------------------

function route() {
  const m = location.hash.match(/^#\/tasks\/([^/]+)$/);
  return m ? { view: taskPage, arg: decodeURIComponent(m[1]) } : { view: overview, arg: null };
}

function show(id) {
  for (const s of ["sign-in", "overview", "task-page"]) $(s).hidden = s !== id;
  $("sign-out").hidden = id === "sign-in";
}

function showProblem(text) {
  $("problem").hidden = !text;
  $("problem").textContent = text || "";
}

let timer = null;
let generation = 0; // a newer refresh makes an older one's answer stale

async function refresh() {
  clearTimeout(timer);
  const gen = ++generation;
  if (!token()) {
    signIn();
    return;
  }
  if (!document.hidden) {
    const { view, arg } = route();
    try {
      const data = await view.load(arg);
      if (gen !== generation) return;
      view.render(data);
      showProblem(null);
      $("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (gen !== generation) return;
      if (e instanceof Unauthorized) {
        signIn("The seeker refused the token. Enter it again.");
        return;
      }
      showProblem(`Cannot reach the seeker: ${e.message}. Retrying every ${REFRESH_MS / 1000} s.`);
    }
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function signIn(message) {
  clearTimeout(timer);
  sessionStorage.removeItem(TOKEN_KEY);
  showProblem(null);
  $("refreshed").textContent = "";
  $("sign-in-error").textContent = message || "";
  show("sign-in");
  $("token").focus();
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    $("sign-in-error").textContent = "";
    refresh();
  });
  $("sign-out").addEventListener("click", () => signIn());
  const turn = (list, pages) => {
    list.pages = pages;
    refresh();
  };
  for (const [name, list, filter] of [["helpers", helperPages, "helper-filter"], ["tasks", taskPages, "state-filter"]]) {
    $(filter).addEventListener("change", () => turn(list, [null]));
    $(`${name}-first`).addEventListener("click", () => turn(list, [null]));
    $(`${name}-next`).addEventListener("click", () => {
      if (list.next) turn(list, [...list.pages, list.next]);
    });
  }
  window.addEventListener("hashchange", () => {
    window.scrollTo(0, 0);
    refresh();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
  });
  refresh();
});
