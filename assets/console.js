// Enlace staff console: small enhancements. Every screen works without this file.
//
// - [data-copy="ID"] buttons copy the text of element ID to the clipboard and say so.
// - [data-refresh="SECONDS"] elements with an id are reloaded from the same page every
//   SECONDS (live counts and progress), replacing their content; stops when hidden.
// - form[data-autosave="URL"] posts itself to URL a few seconds after each change, keeps its
//   `version` field current, and reports in its [data-autosave-status] element (whose data-saved,
//   data-conflict, data-invalid and data-failed attributes hold the words); after a conflict it
//   stops, so a colleague's newer save is never overwritten.
// - button[data-insert] puts its text (a merge field) where the cursor is in the text box of its
//   form that last had the focus (the first text area until one has), as if typed there.
"use strict";
(function () {
  function copyButtons() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        if (!source || !navigator.clipboard) return;
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          var done = button.getAttribute("data-copied");
          if (done) {
            var status = document.getElementById(button.getAttribute("data-copy") + "-status");
            if (status) status.textContent = done;
          }
        });
      });
    });
  }

  function refreshers() {
    document.querySelectorAll("[data-refresh][id]").forEach(function (element) {
      var seconds = Math.max(1, parseInt(element.getAttribute("data-refresh"), 10) || 5);
      var timer = setInterval(function () {
        if (document.hidden) return;
        fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
          .then(function (response) { return response.ok ? response.text() : null; })
          .then(function (html) {
            if (!html) return;
            var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(element.id);
            if (!fresh) { clearInterval(timer); return; }
            element.innerHTML = fresh.innerHTML;
            if (!fresh.hasAttribute("data-refresh")) clearInterval(timer);
          })
          .catch(function () {});
      }, seconds * 1000);
    });
  }

  function autosave() {
    document.querySelectorAll("form[data-autosave]").forEach(function (form) {
      var status = form.querySelector("[data-autosave-status]");
      var version = form.querySelector("input[name=version]");
      var timer = null, busy = false, dirty = false, stopped = false;
      // The time of a save, told in the member's time zone (the status's data-zone) as every time
      // in the console is, else in the browser's.
      function now() {
        var options = { hour: "2-digit", minute: "2-digit" };
        var zone = status.getAttribute("data-zone");
        try {
          if (zone) return new Date().toLocaleTimeString(document.documentElement.lang, Object.assign({ timeZone: zone }, options));
        } catch (e) { /* a zone this browser does not know */ }
        return new Date().toLocaleTimeString(document.documentElement.lang, options);
      }
      function say(key, extra) {
        if (!status) return;
        var words = status.getAttribute("data-" + key) || "";
        status.textContent = words.replace("{time}", now()) + (extra ? " " + extra : "");
      }
      function save() {
        timer = null;
        if (busy || stopped || !dirty) return;
        busy = true; dirty = false;
        fetch(form.getAttribute("data-autosave"), {
          method: "POST", credentials: "same-origin", body: new URLSearchParams(new FormData(form))
        }).then(function (response) {
          return response.json().catch(function () { return {}; }).then(function (body) {
            if (response.ok && body.version) { version.value = body.version; say("saved"); }
            else if (body.state === "conflict" || body.state === "gone") { stopped = true; say("conflict"); }
            else if (body.state === "invalid") { say("invalid", (body.messages || []).join("; ")); }
            else { say("failed"); }
          });
        }).catch(function () { dirty = true; say("failed"); })
          .then(function () { busy = false; if (dirty && !stopped && !timer) timer = setTimeout(save, 5000); });
      }
      form.addEventListener("input", function () {
        dirty = true;
        if (!timer && !stopped) timer = setTimeout(save, 5000);
      });
      form.addEventListener("submit", function () { stopped = true; if (timer) clearTimeout(timer); });
    });
  }

  function insertButtons() {
    document.querySelectorAll("button[data-insert]").forEach(function (button) {
      var form = button.closest("form");
      if (!form) return;
      button.hidden = false;
      var hint = form.querySelector("[data-insert-hint]");
      if (hint) hint.hidden = false;
      if (!form.lastBox) {
        form.lastBox = form.querySelector("textarea");
        form.addEventListener("focusin", function (e) {
          var t = e.target;
          if (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type === "text")) form.lastBox = t;
        });
      }
      button.addEventListener("click", function () {
        var box = form.lastBox;
        if (!box) return;
        var text = button.getAttribute("data-insert");
        var start = box.selectionStart || 0, end = box.selectionEnd || start;
        box.value = box.value.slice(0, start) + text + box.value.slice(end);
        box.focus();
        box.setSelectionRange(start + text.length, start + text.length);
        box.dispatchEvent(new Event("input", { bubbles: true }));
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    insertButtons();
    copyButtons();
    refreshers();
    autosave();
  });
})();
