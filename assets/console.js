// Enlace staff console: small enhancements. Every screen works without this file.
//
// - [data-copy="ID"] buttons copy the text of element ID to the clipboard and say so.
// - [data-refresh="SECONDS"] elements with an id are reloaded from the same page every
//   SECONDS (live counts and progress), replacing their content; stops when hidden.
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

  document.addEventListener("DOMContentLoaded", function () {
    copyButtons();
    refreshers();
  });
})();
