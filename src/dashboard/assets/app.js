// The hookbus dashboard: reads the token from the URL fragment, follows the
// server's event stream and refreshes the visible lists after each tick.
// Plain DOM, no libraries; every value from the server goes in as text.
"use strict";

(function () {
  const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
  const $ = (id) => document.getElementById(id);
  const MAX_EVENTS = 200;
  const state = {
    webhooksPage: 1, webhooksPages: 1, filter: "",
    subscribersPage: 1, subscribersPages: 1,
    selected: null, selectedName: "",
    refreshing: false, again: false,
    source: null,
  };

  function say(text) {
    const m = $("message");
    m.textContent = text;
    m.hidden = !text;
  }

  async function api(path, options) {
    const init = Object.assign({ headers: { Authorization: "Bearer " + token } }, options || {});
    const response = await fetch("api/" + path, init);
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(body.error || ("HTTP " + response.status));
    }
    return body;
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function button(label, action, id) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.dataset.action = action;
    b.dataset.id = id;
    return b;
  }

  function fill(tbody, items, render) {
    const rows = items.map((item) => {
      const tr = document.createElement("tr");
      render(tr, item);
      return tr;
    });
    tbody.replaceChildren(...rows);
  }

  function ms(v) { return v === null || v === undefined ? "–" : v.toFixed(1); }
  function time(millis) { return new Date(millis).toLocaleTimeString(); }

  // An inline SVG sparkline of delivered (green) and failed (red) per step.
  function sparkline(container, steps) {
    const w = 300, h = 60, pad = 3;
    const max = Math.max(1, ...steps.map((s) => Math.max(s.delivered, s.failed)));
    const points = (key) => steps.map((s, i) => {
      const x = steps.length < 2 ? 0 : pad + (i * (w - 2 * pad)) / (steps.length - 1);
      const y = h - pad - (s[key] * (h - 2 * pad)) / max;
      return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" ");
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "peak " + max + " per step");
    for (const key of ["delivered", "failed"]) {
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("class", key);
      line.setAttribute("points", points(key));
      svg.appendChild(line);
    }
    container.replaceChildren(svg);
  }

  function showOverview(o) {
    $("emitted").textContent = o.emitted;
    $("unmatched").textContent = o.unmatched;
    $("rejected").textContent = o.rejected;
    $("delivered-minute").textContent = o.windows.minute.delivered;
    $("failed-minute").textContent = o.windows.minute.failed;
    $("delivered-hour").textContent = o.windows.hour.delivered;
    $("failed-hour").textContent = o.windows.hour.failed;
    sparkline($("chart-minute"), o.series.minute);
    sparkline($("chart-hour"), o.series.hour);
    if (o.stream) {
      $("stream-dropped").textContent = o.stream.dropped ? o.stream.dropped + " dropped (browser too slow)" : "";
    }
  }

  async function loadWebhooks() {
    const q = new URLSearchParams({ page: state.webhooksPage, q: state.filter });
    const r = await api("webhooks?" + q);
    state.webhooksPages = r.page.pages;
    $("webhooks-page").textContent = r.page.page + " / " + r.page.pages;
    $("webhooks-count").textContent = r.page.total + " total";
    fill($("webhooks").tBodies[0], r.items, (tr, w) => {
      tr.dataset.id = w.id;
      tr.dataset.state = w.state;
      if (w.id === state.selected) tr.className = "selected";
      cell(tr, w.name);
      cell(tr, w.url);
      cell(tr, w.state, "state state-" + w.state);
      cell(tr, w.windows.minute.delivered + " / " + w.windows.hour.delivered, "delivered");
      cell(tr, w.windows.minute.failed + " / " + w.windows.hour.failed, "failed");
      cell(tr, ms(w.p50_ms) + " / " + ms(w.p99_ms));
      cell(tr, w.dead_letters, "dead");
      const actions = cell(tr, "");
      actions.replaceChildren(
        button("retry failed", "retry", w.id),
        button(w.enabled ? "disable" : "enable", w.enabled ? "disable" : "enable", w.id),
        button("test", "test", w.id),
      );
    });
  }

  async function loadAttempts() {
    const path = state.selected
      ? "webhooks/" + encodeURIComponent(state.selected) + "/attempts"
      : "attempts";
    const r = await api(path);
    fill($("attempts").tBodies[0], r.items, (tr, a) => {
      tr.dataset.status = a.status_code === null ? "error" : a.status_code;
      tr.dataset.webhook = a.webhook;
      cell(tr, time(a.time));
      cell(tr, a.webhook_name);
      cell(tr, a.event_type);
      cell(tr, a.attempt);
      cell(tr, a.status_code === null ? "error" : a.status_code, a.success ? "status-ok" : "status-bad");
      cell(tr, ms(a.latency_ms));
      cell(tr, a.response_excerpt || a.error || "", "excerpt").title = a.response_excerpt || a.error || "";
    });
  }

  async function loadDeadLetters() {
    const tbody = $("dead-letters").tBodies[0];
    if (!state.selected) {
      tbody.replaceChildren();
      return;
    }
    const r = await api("webhooks/" + encodeURIComponent(state.selected) + "/dead-letters");
    $("dead-scope").textContent = state.selectedName + ": " + r.total;
    fill(tbody, r.items, (tr, d) => {
      cell(tr, time(d.time));
      cell(tr, d.events.map((e) => e.type + " " + e.id).join(", "));
      cell(tr, d.error, "excerpt").title = d.error;
    });
  }

  async function loadSubscribers() {
    const r = await api("subscribers?page=" + state.subscribersPage);
    state.subscribersPages = r.page.pages;
    $("subscribers-page").textContent = r.page.page + " / " + r.page.pages;
    $("subscribers-count").textContent = r.page.total + " total";
    fill($("subscribers").tBodies[0], r.items, (tr, s) => {
      for (const v of [s.name, s.pattern, s.received, s.filtered, s.delivered, s.failed, s.dropped, s.mailbox_len, s.in_flight]) {
        cell(tr, v);
      }
    });
  }

  // One refresh at a time; ticks that arrive meanwhile ask for one more.
  async function refresh() {
    if (state.refreshing) {
      state.again = true;
      return;
    }
    state.refreshing = true;
    try {
      await Promise.all([loadWebhooks(), loadAttempts(), loadDeadLetters(), loadSubscribers()]);
    } catch (e) {
      say("refresh failed: " + e.message);
    } finally {
      state.refreshing = false;
      if (state.again) {
        state.again = false;
        refresh();
      }
    }
  }

  function addEvent(e) {
    const li = document.createElement("li");
    const type = document.createElement("span");
    type.className = "type";
    type.textContent = e.type;
    li.append(time(Date.parse(e.time)) + " ", type, " " + e.id + " " + e.data);
    li.title = e.data;
    const list = $("events");
    list.prepend(li);
    while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  }

  function connect() {
    if (state.source) state.source.close();
    const q = new URLSearchParams({ token: token, pattern: $("stream-pattern").value });
    const source = new EventSource("api/stream?" + q);
    state.source = source;
    const status = $("status");
    source.onopen = () => { status.textContent = "live"; status.dataset.state = "live"; };
    source.onerror = () => { status.textContent = "offline"; status.dataset.state = "offline"; };
    source.addEventListener("tick", (m) => {
      showOverview(JSON.parse(m.data));
      refresh();
    });
    source.addEventListener("event", (m) => addEvent(JSON.parse(m.data)));
  }

  async function act(action, id) {
    try {
      if (action === "retry") {
        const r = await api("webhooks/" + encodeURIComponent(id) + "/retry", { method: "POST" });
        say("retried " + r.retried + ": " + r.delivered + " delivered, " + r.failed + " failed again");
      } else if (action === "enable" || action === "disable") {
        await api("webhooks/" + encodeURIComponent(id) + "/" + action, { method: "POST" });
        say(action + "d " + id);
      } else if (action === "test") {
        const r = await api("webhooks/" + encodeURIComponent(id) + "/test", { method: "POST" });
        say("test: " + (r.success ? "delivered" : "failed") + " (" + (r.status_code === null ? r.error : r.status_code) + ")");
      }
    } catch (e) {
      say(action + " failed: " + e.message);
    }
    refresh();
  }

  function wire() {
    $("webhooks").tBodies[0].addEventListener("click", (ev) => {
      const b = ev.target.closest("button");
      const tr = ev.target.closest("tr");
      if (b) {
        act(b.dataset.action, b.dataset.id);
      } else if (tr) {
        const same = state.selected === tr.dataset.id;
        state.selected = same ? null : tr.dataset.id;
        state.selectedName = same ? "" : tr.cells[0].textContent;
        $("attempts-scope").textContent = same ? "all endpoints" : state.selectedName;
        $("dead-scope").textContent = same ? "(select an endpoint)" : state.selectedName;
        refresh();
      }
    });
    $("webhooks-filter").addEventListener("input", (ev) => {
      state.filter = ev.target.value;
      state.webhooksPage = 1;
      refresh();
    });
    const pager = (prev, next, key, pages) => {
      $(prev).addEventListener("click", () => { state[key] = Math.max(1, state[key] - 1); refresh(); });
      $(next).addEventListener("click", () => { state[key] = Math.min(state[pages], state[key] + 1); refresh(); });
    };
    pager("webhooks-prev", "webhooks-next", "webhooksPage", "webhooksPages");
    pager("subscribers-prev", "subscribers-next", "subscribersPage", "subscribersPages");
    $("stream-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      $("events").replaceChildren();
      connect();
    });
    $("emit-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const data = JSON.parse($("emit-data").value || "{}");
        const r = await api("events", {
          method: "POST",
          headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
          body: JSON.stringify({ type: $("emit-type").value, data: data }),
        });
        say("emitted " + r.id);
      } catch (e) {
        say("emit failed: " + e.message);
      }
    });
  }

  wire();
  if (!token) {
    say("Open this page with the URL the server printed (it ends in #token=...).");
    $("status").textContent = "no token";
    return;
  }
  // A first look before the stream's first tick; a refused token says so
  // here (an EventSource cannot tell why it failed).
  api("overview").then(showOverview, (e) => say("the server refused: " + e.message));
  connect();
})();
