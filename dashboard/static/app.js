// Job Trigger Portal: the little the pages need beyond HTML. Served as a file so the
// Content-Security-Policy can forbid inline script.
(function () {
  "use strict";

  // Show only the inputs of the chosen schedule form and script kind.
  function toggle(selectId, attr) {
    var select = document.getElementById(selectId);
    if (!select) return;
    function apply() {
      document.querySelectorAll("[" + attr + "]").forEach(function (el) {
        el.hidden = el.getAttribute(attr) !== select.value;
      });
    }
    select.addEventListener("change", apply);
    apply();
  }

  // Ask before destructive forms (data-confirm="…").
  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      if (form.dataset.confirmBound) return;
      form.dataset.confirmBound = "1";
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  // The runs panel refreshes itself every 2 s from a server-rendered fragment, so runs in
  // flight and new runs appear without a reload. Times stay as the server wrote them.
  function livePanel() {
    var panel = document.getElementById("panel");
    if (!panel) return;
    var url = panel.getAttribute("data-refresh");
    if (!url) return;
    var last = null;
    var busy = false;
    function refresh() {
      if (busy || document.hidden) return;
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html !== null && html !== last) {
            var scrollOutput = document.getElementById("output-text");
            var keep = scrollOutput ? scrollOutput.scrollTop : 0;
            panel.innerHTML = html;
            last = html;
            var output = document.getElementById("output-text");
            if (output) output.scrollTop = keep;
            confirmForms();
          }
        })
        .catch(function () {})
        .finally(function () { busy = false; });
    }
    window.setInterval(refresh, 2000);
  }

  // The jobs table refreshes its rows from a server-rendered fragment every 3 s, so Last run,
  // Next run and the health columns follow Run Now and scheduled runs without a reload.
  function liveRows() {
    var body = document.getElementById("jobs-body");
    if (!body) return;
    var url = body.getAttribute("data-refresh");
    if (!url) return;
    var last = null;
    var busy = false;
    function refresh() {
      if (busy || document.hidden) return;
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html !== null && html !== last) {
            body.innerHTML = html;
            last = html;
          }
        })
        .catch(function () {})
        .finally(function () { busy = false; });
    }
    window.setInterval(refresh, 3000);
  }

  // A click anywhere on a row opens what its first link opens (the job, the run); clicks on
  // the row's own links, buttons and form fields keep their meaning, and selecting text does
  // not navigate. Ctrl/Cmd-click opens a new tab, as on a link.
  function clickableRows() {
    document.addEventListener("click", function (event) {
      var target = event.target;
      if (!(target instanceof Element)) return;
      var row = target.closest("tr[data-href]");
      if (!row || target.closest("a, button, input, select, textarea, label, form, summary")) return;
      var selection = window.getSelection ? String(window.getSelection()) : "";
      if (selection.length > 0) return;
      var href = row.getAttribute("data-href");
      if (event.ctrlKey || event.metaKey) {
        window.open(href, "_blank", "noopener");
      } else {
        window.location.assign(href);
      }
    });
  }

  // The display-zone switch: remembered per browser in a cookie the server reads.
  function zoneSwitch() {
    var select = document.getElementById("display-zone");
    if (!select) return;
    select.addEventListener("change", function () {
      document.cookie = "jtp_zone=" + encodeURIComponent(select.value) +
        "; path=/; max-age=31536000; SameSite=Strict";
      window.location.reload();
    });
  }

  // Fade the flash message after a while; it stays readable for screen readers until then.
  function flash() {
    var el = document.getElementById("flash");
    if (el) window.setTimeout(function () { el.classList.add("faded"); }, 8000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    toggle("schedule_type", "data-schedule");
    toggle("script_kind", "data-script");
    confirmForms();
    livePanel();
    liveRows();
    clickableRows();
    zoneSwitch();
    flash();
  });
})();
