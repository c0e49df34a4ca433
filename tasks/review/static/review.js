// The review app's behaviour: focus, selection, decisions, keyboard shortcuts.
//
// Served as a static file (the CSP allows no inline script). Everything from
// the catalog or the server goes into the page with textContent, never as
// markup. Decisions are POSTs of JSON with the session's CSRF token.
"use strict";

(() => {
  const STATES = ["pending", "approved", "rejected"];
  const DONE = { approved: "approved", rejected: "rejected", undo: "undone" };
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const status = document.getElementById("status");
  const cards = Array.from(document.querySelectorAll(".card[data-id]"));
  const byId = new Map(cards.map((card) => [card.dataset.id, card]));
  const detail = document.body.classList.contains("detail-page");
  let current = -1;

  function say(text, bad = false) {
    status.textContent = text;
    status.classList.toggle("bad", bad);
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
      // The page's own policy is no-referrer, under which a POST says `Origin: null`;
      // for this request the browser sends the page's origin, which the app checks.
      referrerPolicy: "same-origin",
    });
    const text = await response.text();
    let data;
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: text.trim() || `HTTP ${response.status}` };
    }
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    return data;
  }

  // --- focus and selection ------------------------------------------------------------

  function focusCard(index, scroll = true) {
    if (!cards.length) return;
    const next = Math.max(0, Math.min(cards.length - 1, index));
    cards[current]?.classList.remove("current");
    current = next;
    const card = cards[current];
    card.classList.add("current");
    card.focus({ preventScroll: true });
    if (scroll) card.scrollIntoView({ block: "nearest" });
  }

  function currentCard() {
    return cards[current] || null;
  }

  function selected() {
    return cards.filter((card) => card.classList.contains("selected"));
  }

  function setSelected(card, on) {
    card.classList.toggle("selected", on);
    const box = card.querySelector("input.select");
    if (box) box.checked = on;
  }

  function showSelection() {
    const bar = document.getElementById("selection");
    if (!bar) return;
    const n = selected().length;
    document.getElementById("selected-count").textContent = String(n);
    bar.hidden = n === 0;
  }

  function clearSelection() {
    cards.forEach((card) => setSelected(card, false));
    showSelection();
  }

  // --- decisions ------------------------------------------------------------------------

  function bump(state, delta) {
    if (!STATES.includes(state)) return;
    const counter = document.querySelector(`[data-count="${state}"]`);
    if (!counter) return;
    const n = parseInt(counter.textContent.replace(/[^0-9]/g, ""), 10) || 0;
    counter.textContent = (n + delta).toLocaleString("en-US");
  }

  function show(card, found) {
    const state = found.review_state;
    if (!STATES.includes(state)) return;
    const before = card.dataset.state;
    if (before !== state) {
      bump(before, -1);
      bump(state, 1);
    }
    card.dataset.state = state;
    STATES.forEach((s) => card.classList.toggle(`state-${s}`, s === state));
    card.querySelector("[data-badge]").textContent = state;
    const by = found.reviewed_by;
    card.querySelector("[data-verdict]").textContent = by
      ? `${state === "pending" ? "undone" : state} by ${by}`
      : "";
    card.querySelector("[data-note]").textContent = found.review_note || "";
  }

  async function decide(targets, verdict, note = null) {
    if (!targets.length) {
      say("nothing selected", true);
      return false;
    }
    targets.forEach((card) => card.classList.add("busy"));
    try {
      const ids = targets.map((card) => card.dataset.id);
      const data = await post("/api/decide", { ids, verdict, note });
      let changed = 0;
      for (const [id, found] of Object.entries(data.states)) {
        const card = byId.get(id);
        if (card) show(card, found);
        if (found.review_state === (verdict === "undo" ? found.review_state : verdict)) changed++;
      }
      const later = verdict === "undo" ? 0 : ids.length - changed;
      say(
        `${DONE[verdict]}: ${ids.length} asset${ids.length === 1 ? "" : "s"}` +
          (later ? ` (${later} decided later by someone else)` : ""),
      );
      return true;
    } catch (error) {
      say(`not saved: ${error.message}`, true);
      return false;
    } finally {
      targets.forEach((card) => card.classList.remove("busy"));
    }
  }

  function openReject(card) {
    const form = card.querySelector("form.reject-note");
    form.hidden = false;
    form.querySelector("input").focus();
  }

  function closeReject(card) {
    const form = card.querySelector("form.reject-note");
    form.hidden = true;
    form.querySelector("input").value = "";
    card.focus({ preventScroll: true });
  }

  async function reject(targets, input, done) {
    const note = input.value.trim();
    if (!note) {
      say("say what is wrong: the note is what the revision fixes", true);
      input.focus();
      return;
    }
    if (await decide(targets, "rejected", note)) done();
  }

  for (const [index, card] of cards.entries()) {
    card.addEventListener("click", (event) => {
      const target = event.target;
      if (!(target instanceof Element)) return;
      const act = target.closest("[data-act]");
      if (target.closest("input, a, form") && !act) {
        if (target.matches("input.select")) {
          setSelected(card, target.checked);
          showSelection();
        }
        if (current !== index) focusCard(index, false);
        return;
      }
      if (current !== index) focusCard(index, false);
      if (!act) return;
      const verdict = act.dataset.act;
      if (verdict === "rejected") openReject(card);
      else decide([card], verdict);
    });
    const form = card.querySelector("form.reject-note");
    const input = form.querySelector("input");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      reject([card], input, () => closeReject(card));
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        closeReject(card);
      }
    });
  }

  const bar = document.getElementById("selection");
  const bulkForm = document.getElementById("bulk-reject");
  if (bar && bulkForm) {
    const bulkInput = bulkForm.querySelector("input");
    bar.addEventListener("click", (event) => {
      const button = event.target instanceof Element && event.target.closest("[data-bulk]");
      if (!button) return;
      const what = button.dataset.bulk;
      if (what === "clear") clearSelection();
      else bulk(what);
    });
    bulkForm.addEventListener("submit", (event) => {
      event.preventDefault();
      reject(selected(), bulkInput, () => {
        bulkInput.value = "";
        clearSelection();
        currentCard()?.focus({ preventScroll: true });
      });
    });
    bulkInput.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        bulkInput.value = "";
        currentCard()?.focus({ preventScroll: true });
      }
    });
  }

  async function bulk(verdict) {
    if (await decide(selected(), verdict)) clearSelection();
  }

  function selectPage() {
    const all = cards.length > 0 && selected().length === cards.length;
    cards.forEach((card) => setSelected(card, !all));
    showSelection();
  }
  document.getElementById("select-page")?.addEventListener("click", selectPage);

  // --- the rest of the page -------------------------------------------------------------

  const who = document.getElementById("who");
  const reviewer = document.getElementById("reviewer");
  if (who && reviewer) {
    let saved = reviewer.value;
    const save = async () => {
      const name = reviewer.value.trim();
      if (!name || name === saved) return;
      try {
        const data = await post("/api/reviewer", { name });
        saved = data.reviewer;
        reviewer.value = saved;
        say(`deciding as ${saved}`);
      } catch (error) {
        say(`name not saved: ${error.message}`, true);
      }
    };
    who.addEventListener("submit", (event) => {
      event.preventDefault();
      save();
      reviewer.blur();
    });
    reviewer.addEventListener("change", save);
  }

  const filters = document.getElementById("filters");
  filters?.querySelectorAll("select").forEach((select) => {
    select.addEventListener("change", () => filters.requestSubmit());
  });

  // A broken image (a reference moved since the run) says so instead of an empty box.
  document.addEventListener(
    "error",
    (event) => {
      const target = event.target;
      if (target instanceof HTMLImageElement) target.closest("a, figure")?.classList.add("broken");
    },
    true,
  );

  function go(selector) {
    const link = document.querySelector(selector);
    if (link instanceof HTMLAnchorElement) window.location.assign(link.href);
  }

  // --- keyboard -------------------------------------------------------------------------

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    const typing =
      target instanceof HTMLTextAreaElement ||
      target instanceof HTMLSelectElement ||
      (target instanceof HTMLInputElement && !["checkbox", "radio"].includes(target.type));
    if (typing) return; // a field keeps its keys (Enter submits it, Esc leaves it)
    const pressing = target instanceof HTMLButtonElement || target instanceof HTMLAnchorElement;
    if (pressing && (event.key === "Enter" || event.key === " ")) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const shift = event.shiftKey;
    const card = currentCard();
    let handled = true;
    if (key === "j" || key === "ArrowRight") {
      if (detail) go("#next");
      else focusCard(current + 1);
    } else if (key === "k" || key === "ArrowLeft") {
      if (detail) go("#prev");
      else focusCard(current - 1);
    } else if (key === "a" && shift) bulk("approved");
    else if (key === "r" && shift) bulkForm?.querySelector("input").focus();
    else if (key === "u" && shift) bulk("undo");
    else if (key === "x" && shift) selectPage();
    else if (key === "a" && card) decide([card], "approved");
    else if (key === "r" && card) openReject(card);
    else if (key === "u" && card) decide([card], "undo");
    else if (key === "x" && card) {
      setSelected(card, !card.classList.contains("selected"));
      showSelection();
    } else if ((key === "Enter" || key === "o") && card && !detail) {
      const link = card.querySelector("a[data-open]");
      if (link instanceof HTMLAnchorElement) window.location.assign(link.href);
    } else if (key === "Escape") {
      if (detail) go("#back");
      else clearSelection();
    } else if (key === "n") go(detail ? "#next" : "a.next-page");
    else if (key === "p") go(detail ? "#prev" : "a.prev-page");
    else handled = false;
    // Also keeps the key's character out of a field the handler focused (r: the note).
    if (handled) event.preventDefault();
  });

  if (cards.length) focusCard(0, false);
})();
