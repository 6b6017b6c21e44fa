// Live progress on the Job pages: poll the admin's progress.json while any job is active, and
// update each job's bar, shard counts ("3 done · 2 running · 1 stalled · 4 queued"), hosts, ETA.
(function () {
  "use strict";
  const ACTIVE = new Set(["queued", "running"]);
  const NAMES = { succeeded: "done" };
  function activeIds() {
    return Array.from(document.querySelectorAll("progress.job-progress"))
      .filter((bar) => ACTIVE.has(bar.dataset.state))
      .map((bar) => bar.dataset.job);
  }
  function progressUrl(ids) {
    const path = window.location.pathname;
    const base = path.slice(0, path.indexOf("/job/") + "/job/".length);
    return base + "progress.json?ids=" + ids.join(",");
  }
  async function refresh() {
    const ids = activeIds();
    if (ids.length === 0) return;
    try {
      const response = await fetch(progressUrl(ids), { credentials: "same-origin" });
      if (response.ok) {
        const body = await response.json();
        for (const job of body.jobs) update(job);
      }
    } finally {
      window.setTimeout(refresh, 2000);
    }
  }
  function seconds(value) {
    if (value === null || value === undefined) return "";
    if (value < 90) return value.toFixed(1) + " s";
    const minutes = value / 60;
    return minutes < 90 ? Math.round(minutes) + " min" : (minutes / 60).toFixed(1) + " h";
  }
  function shardText(counts) {
    const parts = Object.entries(counts || {})
      .filter(([, n]) => n > 0)
      .map(([state, n]) => `${n} ${NAMES[state] || state}`);
    return parts.join(" · ") || "no shards";
  }
  function setText(selector, id, text) {
    document.querySelectorAll(`${selector}[data-job="${id}"]`).forEach((node) => {
      node.textContent = text;
    });
  }
  function update(job) {
    const percent = Math.round(job.progress * 100);
    document.querySelectorAll(`progress.job-progress[data-job="${job.id}"]`).forEach((bar) => {
      bar.value = percent;
      bar.dataset.state = job.state;
    });
    setText(".job-percent", job.id, `${percent}% ${job.state === "running" ? "" : job.state}`);
    setText(".job-shards", job.id, shardText(job.shards));
    setText(".job-hosts", job.id, (job.hosts || []).join(", "));
    setText(".job-eta", job.id, seconds(job.eta_seconds));
  }
  document.addEventListener("DOMContentLoaded", () => window.setTimeout(refresh, 1000));
})();
