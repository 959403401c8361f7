// Guidelines preview: while the owner types, post the markdown to the preview URL
// (rendered and sanitised on the server, as annotators will see it) and show it.
// Without this script the form's "Preview guidelines" button does the same.
(() => {
  "use strict";

  const source = document.querySelector("[data-preview-source]");
  const target = document.querySelector("[data-preview-target]");
  if (!source || !target) return;
  const form = source.form;
  const token = form.querySelector("[name=csrfmiddlewaretoken]").value;
  let timer = null;
  let sent = 0;

  async function refresh() {
    const mine = ++sent;
    const body = new FormData();
    body.append("guidelines", source.value);
    try {
      const response = await fetch(target.dataset.previewUrl, {
        method: "POST", body, credentials: "same-origin", headers: { "X-CSRFToken": token },
      });
      if (!response.ok || mine !== sent) return;
      const holder = document.createElement("template");
      holder.innerHTML = await response.text();
      target.replaceChildren(holder.content);
    } catch (error) {
      // Keep the last preview; the next keystroke tries again.
    }
  }

  source.addEventListener("input", () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 250);
  });
})();
