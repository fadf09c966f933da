// wxgate console: live expiry countdowns and copy buttons. No inline script anywhere (the
// console's Content-Security-Policy forbids it); htmx does the partial updates.
(function () {
  "use strict";
  function span(s) {
    if (s <= 0) return "expired";
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }
  function tick() {
    var now = Math.floor(Date.now() / 1000);
    document.querySelectorAll("[data-expires-at]").forEach(function (el) {
      var at = parseInt(el.getAttribute("data-expires-at"), 10);
      if (!isNaN(at)) el.textContent = span(at - now);
    });
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var el = document.getElementById(button.getAttribute("data-copy"));
    if (!el) return;
    var text = el.value !== undefined && el.value !== "" ? el.value : el.textContent;
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { el.select && el.select(); });
    } else if (el.select) {
      el.select();
      try { document.execCommand("copy"); done(); } catch (e) { /* selected for a manual copy */ }
    }
  });
  tick();
  setInterval(tick, 1000);
})();
