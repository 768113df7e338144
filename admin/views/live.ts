/**
 * The dashboard's only script: live updates. It follows the lifecycle events (SSE) of the queues
 * a page shows and, at most every 750 ms, fetches the page again and swaps its `data-live`
 * regions, so forms being typed in are left alone. Pages without events (workers) poll. Without
 * JavaScript the page refreshes itself through a `<noscript>` meta refresh instead.
 * It also asks for confirmation on forms marked `data-confirm`.
 */
export const LIVE_SCRIPT = `(() => {
  const cfgEl = document.getElementById("live-config");
  const cfg = cfgEl ? JSON.parse(cfgEl.textContent) : {};
  const status = document.getElementById("live-status");
  const label = status && status.querySelector("span");
  const show = (cls, text) => { if (status) { status.className = "live " + cls; if (label) label.textContent = text; } };
  document.addEventListener("submit", (e) => {
    const m = e.target && e.target.dataset && e.target.dataset.confirm;
    if (m && !window.confirm(m)) e.preventDefault();
  });
  if (!cfg.events && !cfg.poll) return;
  let timer = null, busy = false, again = false, last = 0;
  async function refresh() {
    if (document.hidden || busy) { again = true; return; }
    busy = true;
    try {
      const r = await fetch(location.href, { credentials: "same-origin", headers: { accept: "text/html", "x-sluice-live": "1" } });
      if (!r.ok || r.redirected) return;
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      for (const el of document.querySelectorAll("[data-live]")) {
        const next = doc.querySelector('[data-live="' + el.getAttribute("data-live") + '"]');
        // a region with boxes ticked (a selection being made) is left alone until they are sent
        if (el.querySelector("input[type=checkbox]:checked")) continue;
        if (next && next.innerHTML !== el.innerHTML) el.replaceWith(document.importNode(next, true));
      }
    } catch (_) {
      // offline for a moment: the next event or tick tries again
    } finally {
      busy = false;
      if (again) { again = false; schedule(); }
    }
  }
  function schedule() {
    if (timer) return;
    timer = setTimeout(() => { timer = null; last = Date.now(); refresh(); }, Math.max(0, last + 750 - Date.now()));
  }
  document.addEventListener("visibilitychange", () => { if (!document.hidden && again) { again = false; schedule(); } });
  if (cfg.events && window.EventSource) {
    const es = new EventSource(cfg.events);
    es.addEventListener("ready", () => show("on", "live"));
    es.addEventListener("job", schedule);
    es.onerror = () => show("off", "reconnecting");
  } else if (cfg.events) {
    cfg.poll = cfg.poll || 5000;
  }
  if (cfg.poll) { setInterval(schedule, cfg.poll); if (!cfg.events) show("on", "auto-refresh"); }
})();`;
