// Live jobs area: re-fetch the jobs tables every few seconds while the tab is visible
// and swap them in, keeping focus and open <details> where they were.
(() => {
  "use strict";

  const box = document.querySelector("[data-poll-url]");
  if (!box) return;
  const url = box.dataset.pollUrl;
  const every = Number(box.dataset.pollMs || 3000);
  let timer = null;

  async function refresh() {
    timer = null;
    if (document.visibilityState === "visible") {
      try {
        const response = await fetch(url, { credentials: "same-origin" });
        if (response.ok && !response.redirected) swapIn(await response.text());
      } catch (error) {
        // Keep the last tables; the next poll tries again.
      }
    }
    schedule();
  }

  function swapIn(html) {
    const focusedId = box.contains(document.activeElement) ? document.activeElement.id : "";
    const holder = document.createElement("template");
    holder.innerHTML = html;
    box.replaceChildren(holder.content);
    if (focusedId) {
      const again = document.getElementById(focusedId);
      if (again) again.focus({ preventScroll: true });
    }
  }

  function schedule() {
    if (timer === null) timer = window.setTimeout(refresh, every);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") schedule();
  });
  schedule();
})();
