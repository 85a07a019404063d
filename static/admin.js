// samgate admin: progressive enhancement only. Every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // "Copy" buttons next to a read-only field (links and passwords shown once).
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const id = button.getAttribute("data-copy");
    const field = document.getElementById(id);
    const status = document.querySelector(`[data-copy-status="${id}"]`);
    if (!field || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(field.value);
        if (status) status.textContent = "Copied to the clipboard.";
      } catch {
        field.select();
        if (status) status.textContent = "Select the text and copy it with your keyboard.";
      }
    });
  }

  // Select the whole value when a read-only secret field gets focus.
  for (const field of document.querySelectorAll(".copy-row input[readonly]")) {
    field.addEventListener("focus", () => field.select());
  }

  // On a phone the nav is one line that scrolls sideways: bring the current section into view.
  const current = document.querySelector(".admin-bar nav a[aria-current=page]");
  const nav = current && current.parentElement;
  if (nav && nav.scrollWidth > nav.clientWidth) {
    nav.scrollLeft = Math.max(0, current.offsetLeft - nav.offsetLeft - (nav.clientWidth - current.offsetWidth) / 2);
  }

  // Ask before destructive actions (the server does not depend on it).
  for (const button of document.querySelectorAll("button[data-confirm]")) {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
    });
  }

  // A running app consent run: update the counts in place (the page reloads itself without
  // scripts), and load the whole page once when the run has ended, for its outcomes.
  const run = document.querySelector("[data-run-progress]");
  if (run) {
    const url = run.getAttribute("data-run-progress");
    const set = (id, text) => {
      const element = document.getElementById(id);
      if (element) element.textContent = String(text);
    };
    const poll = async () => {
      try {
        const response = await fetch(url, { headers: { accept: "application/json" }, credentials: "same-origin" });
        if (!response.ok) throw new Error(String(response.status));
        const progress = await response.json();
        set("run-summary", progress.summary);
        set("run-succeeded", progress.succeeded);
        set("run-without-gdap", progress.without_gdap);
        set("run-other-grants", progress.other_grants);
        set("run-failed", progress.failed);
        set("run-state", progress.state);
        const bar = document.getElementById("run-progress");
        if (bar && !progress.reading) {
          bar.max = Math.max(progress.total, 1);
          bar.value = progress.done;
        }
        if (progress.state !== "running") {
          window.location.reload();
          return;
        }
      } catch {
        set("run-live", "Progress could not be read just now; trying again.");
      }
      window.setTimeout(poll, 1000);
    };
    window.setTimeout(poll, 1000);
  }
});
