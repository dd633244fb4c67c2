// The status page: reads the JSON API (../batch/...) and builds the page with textContent
// and createElement only, so nothing a job holds is ever parsed as HTML. Routes live in the
// URL's fragment: #/?status=&account_id=&page_size=&page_token= (the list) and #/job/<id>.
"use strict";

(function () {
  const LIST_EVERY_MS = 5000;
  const JOB_EVERY_MS = 3000;
  const LOG_TAIL_LINES = 2000;
  const FINAL = new Set(["succeeded", "failed", "killed"]);
  const STATUSES = ["created", "running", "cleaning", "succeeded", "failed", "killed"];

  const $ = (id) => document.getElementById(id);
  let generation = 0; // bumped on every route change: a stale poll sees it and stops
  let lastList = "#/"; // the list a job's page goes back to, filters and page kept
  let timer = null;

  // -- the API ----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      super((body && (body.msg || body.error)) || `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  // Who is looking: behind Identity-Aware Proxy, the proxy's own header says it, and no
  // token is kept here. Else the identity token of the link `ktr ui` prints
  // (#token=...), kept for this tab only and taken out of the address at once.
  const TOKEN_KEY = "ktr-identity-token";

  function takeToken() {
    const match = /^#token=([A-Za-z0-9_.-]+)$/.exec(location.hash);
    if (match) {
      sessionStorage.setItem(TOKEN_KEY, match[1]);
      history.replaceState(null, "", location.pathname + location.search + "#/");
    }
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(path, {
      headers,
      credentials: "same-origin",
      cache: "no-store",
    });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      // Not the envelope: the platform's own refusal (401, 403) or a proxy's page.
    }
    if (!response.ok || !body || body.result !== true) {
      throw new ApiError(response.status, body);
    }
    return body;
  }

  // -- formatting -------------------------------------------------------------------------

  function span(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return "–";
    let s = Math.max(0, Math.round(ms / 1000));
    const units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
    const parts = [];
    for (const [unit, size] of units) {
      if (s >= size || (unit === "s" && parts.length === 0)) {
        parts.push(`${Math.floor(s / size)}${unit}`);
        s %= size;
      }
      if (parts.length === 2) break;
    }
    return parts.join(" ");
  }

  function when(ms) {
    return typeof ms === "number" ? new Date(ms).toISOString().replace(".000Z", "Z") : "–";
  }

  // The user's container's run, as Kubernetes records it (end_time); a job that ended
  // without one (killed) ran until it stopped, and a running one until now.
  function duration(job, now) {
    if (typeof job.start_time !== "number") return null;
    const ended = typeof job.end_time === "number" ? job.end_time : job.stop_time;
    const end = typeof ended === "number" ? ended : now;
    return end - job.start_time;
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function statusBadge(node, status) {
    node.textContent = status;
    node.className = `status status-${STATUSES.includes(status) ? status : "unknown"}`;
  }

  // A running job that Kueue has not admitted yet waits for its account's quota.
  function jobBadge(node, job) {
    statusBadge(node, job.status);
    const queued = job.status === "running" && job.queued;
    if (!queued) return;
    node.textContent = queued.position ? `waiting #${queued.position}` : "waiting";
    node.className = "status status-waiting";
    node.title = `in queue ${queued.queue} since ${when(queued.since)}: ${queued.reason}`;
  }

  function showProblem(node, error) {
    node.textContent = error instanceof ApiError ? problemText(error) : `The API could not be reached: ${error.message}`;
    node.hidden = false;
  }

  function problemText(error) {
    if (error.status === 401) {
      return "Sign in: open the link `ktr ui` prints (its token lasts an hour), or reach this page through Identity-Aware Proxy." +
        (error.body && error.body.msg ? ` (${error.body.msg})` : "");
    }
    if (error.status === 403 && !(error.body && error.body.error === "Forbidden")) {
      return `The API refused this request (${error.status}): you need to be an allowed caller.`;
    }
    const detail = error.body && error.body.data && typeof error.body.data === "object"
      ? " " + Object.entries(error.body.data).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join("; ")
      : "";
    return `${error.message}${detail}`;
  }

  function stamp() {
    $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  function schedule(mine, fn, ms) {
    if (mine !== generation) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (mine !== generation) return;
      if (document.hidden) {
        schedule(mine, fn, ms); // no polling in a background tab
        return;
      }
      fn(mine);
    }, ms);
  }

  // -- the list ---------------------------------------------------------------------------

  function listQuery() {
    const hash = location.hash.replace(/^#\/?/, "");
    const query = new URLSearchParams(hash.startsWith("?") ? hash.slice(1) : "");
    // Every status, newest first, unless one is asked for (then oldest first).
    const status = STATUSES.includes(query.get("status")) ? query.get("status") : "any";
    const size = query.get("page_size") || "";
    return {
      status,
      account_id: query.get("account_id") || "",
      page_size: /^[0-9]{1,4}$/.test(size) && +size >= 1 && +size <= 1000 ? String(+size) : "50",
      page_token: query.get("page_token") || "",
    };
  }

  function listHash(query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value) params.set(key, value);
    return `#/?${params.toString()}`;
  }

  function showList(mine) {
    const query = listQuery();
    $("filter-status").value = query.status;
    if (document.activeElement !== $("filter-account")) $("filter-account").value = query.account_id;
    const sizes = $("filter-size");
    if (![...sizes.options].some((option) => option.value === query.page_size)) {
      sizes.append(new Option(query.page_size, query.page_size)); // a size from the URL
    }
    sizes.value = query.page_size;
    $("list-view").hidden = false;
    $("job-view").hidden = true;
    lastList = location.hash || "#/";
    const which = query.status === "any" ? "" : ` ${query.status}`;
    document.title = `Jobs${which} · Kubernetes task runner`;
    loadList(mine, query);
  }

  async function loadList(mine, query) {
    const params = new URLSearchParams({ status: query.status, page_size: query.page_size });
    if (query.account_id) params.set("account_id", query.account_id);
    if (query.page_token) params.set("page_token", query.page_token);
    try {
      const body = await api(`../batch/?${params.toString()}`);
      if (mine !== generation) return;
      $("list-problem").hidden = true;
      renderList(query, body.data, body.next_page_token || "");
      stamp();
    } catch (error) {
      if (mine !== generation) return;
      showProblem($("list-problem"), error);
    }
    schedule(mine, () => loadList(mine, query), LIST_EVERY_MS);
  }

  function renderList(query, jobs, nextToken) {
    const now = Date.now();
    const rows = jobs.map((job) => {
      const row = document.createElement("tr");
      row.dataset.id = job.id;
      const name = el("td");
      const link = el("a", job.name);
      link.href = `#/job/${encodeURIComponent(job.id)}`;
      name.appendChild(link);
      const status = el("td");
      const badge = el("span");
      jobBadge(badge, job);
      status.appendChild(badge);
      const age = el("td", span(now - job.created));
      age.title = `created ${when(job.created)}`;
      row.append(
        name,
        el("td", job.id, "mono"),
        el("td", job.account_id || "–"),
        status,
        age,
        el("td", span(duration(job, now))),
      );
      return row;
    });
    $("jobs").tBodies[0].replaceChildren(...rows);
    const account = query.account_id ? ` of account ${query.account_id}` : "";
    const any = query.status === "any";
    const which = any ? "" : ` ${query.status}`;
    const order = any ? "newest first" : "oldest first";
    $("jobs-caption").textContent = `${jobs.length}${which} job${jobs.length === 1 ? "" : "s"}${account}${query.page_token ? " (a later page)" : ""}, ${order}`;
    $("list-empty").hidden = jobs.length > 0;
    $("jobs").hidden = jobs.length === 0;
    const first = $("page-first");
    first.hidden = !query.page_token;
    first.href = listHash({ ...query, page_token: "" });
    const next = $("page-next");
    next.hidden = !nextToken;
    next.href = listHash({ ...query, page_token: nextToken });
  }

  // -- one job ----------------------------------------------------------------------------

  function showJob(mine, id) {
    $("list-view").hidden = true;
    $("job-view").hidden = false;
    $("back").href = lastList;
    $("job-body").hidden = true;
    $("job-problem").hidden = true;
    $("log").textContent = "";
    $("log-state").textContent = "";
    document.title = `Job ${id} · Kubernetes task runner`;
    loadJob(mine, id, { logDone: false });
  }

  async function loadJob(mine, id, state) {
    const path = `../batch/${encodeURIComponent(id)}`;
    let job;
    try {
      job = (await api(path)).data;
    } catch (error) {
      if (mine !== generation) return;
      if (error instanceof ApiError && error.status === 404) {
        $("job-body").hidden = true;
        $("job-problem").textContent = `Job not found: no job has the id “${id}”. ${error.message}`;
        $("job-problem").hidden = false;
        return; // nothing to follow
      }
      showProblem($("job-problem"), error);
      schedule(mine, () => loadJob(mine, id, state), JOB_EVERY_MS);
      return;
    }
    if (mine !== generation) return;
    $("job-problem").hidden = true;
    renderJob(job);
    const final = FINAL.has(job.status);
    if (!state.logDone) state.logDone = await loadLog(mine, path);
    if (mine !== generation) return;
    stamp();
    if (!final || !state.logDone) schedule(mine, () => loadJob(mine, id, state), JOB_EVERY_MS);
  }

  async function loadLog(mine, path) {
    const box = $("log");
    try {
      const body = await api(`${path}/logs?tail=${LOG_TAIL_LINES}`);
      if (mine !== generation) return false;
      const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
      box.textContent = body.data.log;
      if (atBottom) box.scrollTop = box.scrollHeight;
      const cut = body.data.truncated ? ", its beginning cut" : "";
      $("log-state").textContent = body.data.complete
        ? `(complete${cut}; the last ${LOG_TAIL_LINES} lines at most)`
        : "(following: read from the cluster every few seconds)";
      return body.data.complete === true;
    } catch (error) {
      if (mine !== generation) return false;
      $("log-state").textContent = `(unavailable: ${error.message})`;
      return false;
    }
  }

  function renderJob(job) {
    const now = Date.now();
    $("job-body").hidden = false;
    $("job-name").textContent = job.name;
    jobBadge($("job-status"), job);
    document.title = `${job.name} (${job.status}) · Kubernetes task runner`;

    const failure = $("failure");
    failure.hidden = !job.reason;
    $("failure-reason").textContent = job.reason || "";
    $("failure-exit").textContent = typeof job.exit_code === "number" ? `exit code ${job.exit_code}` : "";
    $("failure-message").textContent = job.message || "";
    $("failure-message").hidden = !job.message;
    failure.querySelector("h3").textContent = job.status === "killed" ? "Why it stopped" : "Why it failed";

    const output = $("output");
    const url = safeUrl(job.output_file_url);
    output.hidden = !url;
    if (url) $("output-link").href = url;
    else $("output-link").removeAttribute("href");

    const taskLinks = (job.task_output_urls || []).map((value, index) => {
      const item = el("li");
      const link = safeUrl(value);
      if (link) {
        const anchor = el("a", `task ${index}`);
        anchor.href = link;
        anchor.rel = "noopener noreferrer";
        item.append(anchor);
      } else {
        item.append(el("span", `task ${index}: failed, no output`, "muted"));
      }
      return item;
    });
    $("task-outputs").hidden = taskLinks.length === 0;
    $("task-output-links").replaceChildren(...taskLinks);
    $("log-task").textContent = job.tasks ? "(task 0)" : "";

    const facts = [
      ["Id", job.id],
      ["Account", job.account_id || "–"],
      ["Image", job.job_parameters && job.job_parameters.docker_image],
      ["Created", `${when(job.created)} (${span(now - job.created)} ago)`],
      ["Started", when(job.start_time)],
      ["Stopped", when(job.stop_time)],
      ["Duration", span(duration(job, now))],
    ];
    if (typeof job.scheduled_for === "number") facts.push(["Scheduled for", when(job.scheduled_for)]);
    if (job.status === "running" && job.queued) {
      const q = job.queued;
      facts.push(["Queue", `${q.queue}${q.position ? `, #${q.position} in line` : ""}`]);
      facts.push(["Waiting", `since ${when(q.since)} (${span(now - q.since)}): ${q.reason}`]);
    } else if (job.queue) {
      facts.push(["Queue", job.queue]);
    }
    if (typeof job.admitted === "number") facts.push(["Admitted", when(job.admitted)]);
    if (job.disruptions) facts.push(["Disruptions", job.disruptions]);
    if (job.tasks) {
      const t = job.tasks;
      facts.push(["Tasks", `${t.count}: ${t.succeeded} succeeded, ${t.failed} failed, ${t.running} running, ${t.pending} pending`]);
    }
    if (job.failed_tasks && job.failed_tasks.length) {
      const failed = job.failed_tasks.map((f) => `task ${f.index}: ${f.reason}${typeof f.exit_code === "number" ? ` (exit code ${f.exit_code})` : ""}`);
      facts.push(["Failed tasks", failed.join("; ")]);
    }
    if (job.input_upload_url) facts.push(["Waiting for", `its input upload, until ${when(job.input_upload_expires)}`]);
    if (job.callback_url) {
      facts.push(["Callback", `${job.callback_status || "pending"}${job.callback_attempts ? `, ${job.callback_attempts} attempt(s)` : ""}${job.callback_answer ? `, last answer: ${job.callback_answer}` : ""}`]);
    }
    const list = facts.flatMap(([term, value]) => [el("dt", term), el("dd", value === undefined ? "–" : value)]);
    $("job-facts").replaceChildren(...list);

    const steps = [el("li")];
    steps[0].append(el("time", when(job.created)), " ", el("span", "created", "status status-created"));
    for (const step of job.transitions || []) {
      const item = el("li");
      const to = el("span");
      statusBadge(to, step.to);
      item.append(el("time", when(step.at)), " ", to, " ", el("span", step.reason || "", "muted"));
      steps.push(item);
    }
    $("timeline").replaceChildren(...steps);

    $("parameters").textContent = JSON.stringify(job.job_parameters || {}, null, 2);
  }

  function safeUrl(value) {
    if (typeof value !== "string") return null;
    try {
      const url = new URL(value, location.href);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  // -- routing ----------------------------------------------------------------------------

  function route() {
    generation += 1;
    clearTimeout(timer);
    const mine = generation;
    const match = /^#\/job\/(.+)$/.exec(location.hash);
    if (match) {
      let id = match[1];
      try {
        id = decodeURIComponent(id);
      } catch (_) {
        // a malformed escape: ask for it as it is, and the API answers not found
      }
      showJob(mine, id);
    } else {
      showList(mine);
    }
  }

  function start() {
    takeToken();
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      const query = {
        status: $("filter-status").value,
        account_id: $("filter-account").value.trim(),
        page_size: $("filter-size").value,
        page_token: "",
      };
      const hash = listHash(query);
      if (location.hash === hash) route();
      else location.hash = hash;
    });
    for (const id of ["filter-status", "filter-size"]) {
      $(id).addEventListener("change", () => $("filters").requestSubmit());
    }
    window.addEventListener("hashchange", route);
    route();
  }

  start();
})();
