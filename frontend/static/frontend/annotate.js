// The annotator's page: keyboard shortcuts, and the next task swapped in without a
// page load. Verdicts are posted with fetch; the answer is the next task's card (the
// server submits, leases the next task and renders it in one round trip). The page
// works without this script: the same forms post and redirect back.
//
// Performance marks: "pf-choice-N" (choice key), "pf-submit-N" (submit), "pf-ready-N"
// (next card in place, focused and taking keys); measures "pf-choice-to-ready" and
// "pf-submit-to-ready" are read back by the browser tests.
(() => {
  "use strict";

  const area = document.querySelector("[data-task-area]");
  if (!area) return;
  const dialog = document.getElementById("shortcuts");
  const guidelines = document.getElementById("guidelines");
  const announcer = document.getElementById("announcer");
  const PAIRWISE_KEYS = { 1: "left", 2: "right", 3: "tie", 4: "both_bad" };
  const THUMBS_KEYS = { 1: "up", u: "up", 2: "down", d: "down" };
  const NO_STRENGTH = new Set(["tie", "both_bad"]);

  let shownAt = performance.now();
  let busy = false;
  let seq = 0;
  let choiceMark = null;
  let focusBeforeDialog = null;

  const currentForm = () => area.querySelector("[data-task-form]");
  const currentCard = () => area.querySelector("[data-card]");

  function announce(text) {
    if (!announcer || !text) return;
    announcer.textContent = "";
    window.setTimeout(() => { announcer.textContent = text; }, 30);
  }

  function showProblem(form, text) {
    let box = form.querySelector("[data-problem]");
    if (!box) {
      box = document.createElement("p");
      box.className = "alert";
      box.setAttribute("role", "alert");
      box.dataset.problem = "";
      form.prepend(box);
    }
    box.textContent = text;
  }

  function syncStrength(form) {
    const fieldset = form.querySelector("[data-strength]");
    const picked = form.querySelector('input[name="choice"]:checked');
    if (fieldset) fieldset.disabled = Boolean(picked && NO_STRENGTH.has(picked.value));
  }

  function markChoice() {
    choiceMark = `pf-choice-${seq}`;
    performance.mark(choiceMark);
  }

  function choose(form, value) {
    const name = form.dataset.kind === "pairwise" ? "choice" : "thumbs";
    const input = form.querySelector(`input[name="${name}"][value="${value}"]`);
    if (!input) return false;
    input.checked = true;
    syncStrength(form);
    markChoice();
    announce(`${input.closest("label").textContent.trim()} selected. Enter submits.`);
    return true;
  }

  function setStrength(form, level) {
    const input = form.querySelector(`input[name="strength"][value="${level}"]`);
    if (!input || input.closest("fieldset").disabled) return false;
    input.checked = true;
    announce(`Strength: ${input.closest("label").textContent.trim()}.`);
    return true;
  }

  function hasChoice(form) {
    return Boolean(form.querySelector('input[name="choice"]:checked, input[name="thumbs"]:checked'));
  }

  async function send(form, submitter) {
    if (busy) return;
    const skipping = Boolean(submitter && submitter.hasAttribute("data-skip"));
    if (!skipping && !hasChoice(form)) {
      showProblem(form, form.dataset.kind === "pairwise"
        ? "Choose first: 1, 2, 3 or 4 (press ? for all keys)."
        : "Choose first: 1 (good) or 2 (bad).");
      return;
    }
    busy = true;
    area.setAttribute("aria-busy", "true");
    const marks = { choice: skipping ? null : choiceMark, submit: `pf-submit-${seq}` };
    performance.mark(marks.submit);
    form.elements.time_spent_ms.value = String(Math.round(performance.now() - shownAt));
    const url = (submitter && submitter.getAttribute("formaction")) || form.action;
    try {
      const response = await fetch(url, {
        method: "POST",
        body: new FormData(form),
        headers: { "X-Prefloop-Fragment": "1" },
        credentials: "same-origin",
      });
      swap(await response.text(), marks);
    } catch (error) {
      busy = false;
      area.removeAttribute("aria-busy");
      showProblem(form, "Network problem: nothing was lost. Press Enter to send again.");
    }
  }

  function swap(html, marks) {
    const holder = document.createElement("template");
    holder.innerHTML = html;
    const card = holder.content.querySelector("[data-card]");
    if (!card) {
      // Not a card: the session ended (login page), the CSRF token went stale, or the
      // server failed. Reloading the page sorts out each (and logs in back to here).
      window.location.reload();
      return;
    }
    area.replaceChildren(card);
    shownAt = performance.now();
    card.focus({ preventScroll: true });
    window.scrollTo({ top: 0, behavior: "instant" });
    busy = false;
    area.removeAttribute("aria-busy");
    const ready = `pf-ready-${seq}`;
    performance.mark(ready);
    if (marks.choice) performance.measure("pf-choice-to-ready", marks.choice, ready);
    performance.measure("pf-submit-to-ready", marks.submit, ready);
    seq += 1;
    choiceMark = null;
    announce(card.dataset.announce);
  }

  function toggleHelp() {
    if (!dialog) return;
    if (dialog.open) {
      dialog.close();
      return;
    }
    focusBeforeDialog = document.activeElement;
    dialog.showModal();
  }

  if (dialog) {
    dialog.addEventListener("close", () => {
      const back = focusBeforeDialog && document.contains(focusBeforeDialog)
        ? focusBeforeDialog : currentCard();
      if (back) back.focus({ preventScroll: true });
    });
  }

  area.addEventListener("submit", (event) => {
    const form = event.target.closest("[data-task-form]");
    if (!form) return;
    event.preventDefault();
    send(form, event.submitter);
  });

  area.addEventListener("change", (event) => {
    const form = event.target.closest("[data-task-form]");
    if (!form || !event.target.matches('input[name="choice"], input[name="thumbs"]')) return;
    syncStrength(form);
    markChoice();
  });

  function onTypingKey(event, form) {
    if (event.key === "Escape") {
      event.preventDefault();
      event.target.blur();
      const card = currentCard();
      if (card) card.focus({ preventScroll: true });
    } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && form) {
      event.preventDefault();
      send(form, null);
    }
  }

  function onCommandKey(event, form) {
    const key = event.key;
    const digit = /^(?:Digit|Numpad)([0-9])$/.exec(event.code || "");
    const keys = form.dataset.kind === "pairwise" ? PAIRWISE_KEYS : THUMBS_KEYS;
    // While a verdict is in flight these keys would act on a task already sent, and a
    // key meant for the next task would be a blind verdict: swallow them.
    if (busy) return Boolean(digit || Object.hasOwn(keys, key) || ["Enter", "s", "r"].includes(key));
    if (digit && event.shiftKey) return setStrength(form, Number(digit[1]));
    if (Object.hasOwn(keys, key)) return choose(form, keys[key]);
    if (key === "Enter") {
      if (event.target.closest && event.target.closest("button, a, summary")) return false;
      send(form, null);
      return true;
    }
    if (key === "s") {
      send(form, form.querySelector("[data-skip]"));
      return true;
    }
    if (key === "r") {
      const box = form.querySelector("textarea");
      if (box) box.focus();
      return Boolean(box);
    }
    return false;
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing) return;
    const form = currentForm();
    if (dialog && dialog.open) {
      if (event.key === "?") { event.preventDefault(); toggleHelp(); }
      return;
    }
    const target = event.target;
    if (target.matches && target.matches("textarea, input[type=text], input[type=search], select")) {
      onTypingKey(event, form);
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "?") {
      event.preventDefault();
      toggleHelp();
    } else if (event.key === "g" && guidelines) {
      event.preventDefault();
      guidelines.open = !guidelines.open;
    } else if (form && onCommandKey(event, form)) {
      event.preventDefault();
    }
  });

  performance.mark("pf-ready-initial");
})();
