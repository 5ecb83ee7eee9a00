// Rampup dashboard: local times, countdowns, copy buttons, and live updates over server-sent events.
// No framework and nothing from elsewhere: this file and the server are all there is.
"use strict";

(function () {
  const pad = (n) => String(n).padStart(2, "0");

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach((el) => {
      const at = new Date(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      el.textContent = `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ` +
        `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
    });
  }

  function countdowns() {
    document.querySelectorAll("[data-countdown]").forEach((el) => {
      const left = Math.max(0, (new Date(el.dataset.countdown) - Date.now()) / 1000);
      const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = Math.floor(left % 60);
      el.textContent = left >= 3600 ? `${h} h ${pad(m)} min` : left >= 60 ? `${m} min ${pad(s)} s` : `${s} s`;
    });
  }

  function timeZoneLinks(root) {
    let zone = "UTC";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { /* keep UTC */ }
    root.querySelectorAll("a[data-tz-link]").forEach((a) => {
      const url = new URL(a.href);
      url.searchParams.set("tz", zone);
      a.href = url.pathname + url.search;
    });
  }

  function copyButtons(root) {
    root.querySelectorAll("button[data-copy]").forEach((button) => {
      button.addEventListener("click", async () => {
        const source = document.getElementById(button.dataset.copy);
        if (!source) return;
        const label = button.textContent;
        try {
          await navigator.clipboard.writeText(source.textContent);
          button.textContent = "Copied";
        } catch (e) {
          const range = document.createRange();
          range.selectNodeContents(source);
          const selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          button.textContent = "Selected: press Ctrl+C";
        }
        setTimeout(() => { button.textContent = label; }, 2000);
      });
    });
  }

  function enhance(root) {
    localTimes(root);
    timeZoneLinks(root);
    copyButtons(root);
  }

  // A live region is left alone while someone is using it: focus inside, a form opened, text typed.
  function busy(el) {
    return el.contains(document.activeElement) && document.activeElement !== document.body ||
      el.querySelector("details[open]") !== null;
  }

  let refreshing = false, again = false;
  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const response = await fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (response.redirected && new URL(response.url).pathname === "/sign-in") { location.assign(response.url); return; }
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      document.querySelectorAll("[data-live][id]").forEach((el) => {
        const next = fresh.getElementById(el.id);
        if (!next || busy(el)) return;
        const node = document.importNode(next, true);
        el.replaceWith(node);
        enhance(node);
      });
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    } catch (e) {
      /* the stream's own error handler says the connection is lost */
    } finally {
      refreshing = false;
      if (again) { again = false; refresh(); }
    }
  }

  function follow(url) {
    const status = document.getElementById("live-status");
    const lost = document.getElementById("connection-lost");
    const say = (state, text) => {
      if (status) { status.dataset.state = state; status.textContent = text; }
      if (lost) lost.hidden = state !== "lost";
    };
    const source = new EventSource(url);
    let wasLost = false;
    source.addEventListener("hello", () => {
      say("open", "live");
      if (wasLost) { wasLost = false; refresh(); }
    });
    source.addEventListener("change", refresh);
    source.addEventListener("signed-out", () => { source.close(); location.assign("/sign-in"); });
    source.onerror = () => { wasLost = true; say("lost", "connection lost"); };
  }

  document.addEventListener("DOMContentLoaded", () => {
    enhance(document);
    countdowns();
    setInterval(countdowns, 1000);
    const url = document.body.dataset.liveUrl;
    if (url) follow(url);
  });
})();
