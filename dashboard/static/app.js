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

  // Refreshes `element` every `ms` from the server-rendered fragment its data-refresh names,
  // while the tab is visible, one request at a time; `apply(html)` puts a changed fragment in.
  function refreshFromFragment(element, ms, apply) {
    if (!element) return;
    var url = element.getAttribute("data-refresh");
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
            apply(html);
            last = html;
          }
        })
        .catch(function () {})
        .finally(function () { busy = false; });
    }
    window.setInterval(refresh, ms);
  }

  // The runs panel refreshes itself every 2 s, so runs in flight and new runs appear without a
  // reload; the output keeps its scroll position. Times stay as the server wrote them.
  function livePanel() {
    var panel = document.getElementById("panel");
    refreshFromFragment(panel, 2000, function (html) {
      var before = document.getElementById("output-text");
      var keep = before ? before.scrollTop : 0;
      panel.innerHTML = html;
      var output = document.getElementById("output-text");
      if (output) output.scrollTop = keep;
      confirmForms();
    });
  }

  // The jobs table refreshes its rows every 3 s, so Last run, Next run and the health columns
  // follow Run Now and scheduled runs without a reload.
  // A row that had the keyboard focus keeps it across a refresh.
  function liveRows() {
    var body = document.getElementById("jobs-body");
    refreshFromFragment(body, 3000, function (html) {
      var focused = document.activeElement;
      var key = focused && focused.matches && focused.matches("tr[data-job]") && body.contains(focused)
        ? focused.getAttribute("data-job") : null;
      body.innerHTML = html;
      if (key) {
        var again = body.querySelector('tr[data-job="' + CSS.escape(key) + '"]');
        if (again) again.focus({ preventScroll: true });
      }
    });
  }

  // Keyboard: a focused row (Tab reaches it like a link) opens with Enter (Ctrl/Cmd+Enter: a new
  // tab); j or ↓ moves to the next row, k or ↑ to the previous one. Keys typed into fields, or
  // with Alt/Ctrl/Meta, keep their meaning, and Tab leaves the table as usual: nothing is trapped.
  function keyboardRows() {
    document.addEventListener("keydown", function (event) {
      var target = event.target;
      if (!(target instanceof Element) || event.altKey || event.defaultPrevented) return;
      var row = target.matches("tr[data-href][tabindex]") ? target : null;
      if (!row) return;
      if (event.key === "Enter") {
        event.preventDefault();
        var href = row.getAttribute("data-href");
        if (event.ctrlKey || event.metaKey) window.open(href, "_blank", "noopener");
        else window.location.assign(href);
        return;
      }
      if (event.ctrlKey || event.metaKey || event.shiftKey) return;
      var step = 0;
      if (event.key === "j" || event.key === "ArrowDown") step = 1;
      if (event.key === "k" || event.key === "ArrowUp") step = -1;
      if (!step) return;
      var rows = Array.prototype.slice.call(
        row.closest("tbody").querySelectorAll("tr[data-href][tabindex]"));
      var next = rows[rows.indexOf(row) + step];
      event.preventDefault();
      if (next) {
        next.focus();
        next.scrollIntoView({ block: "nearest" });
      }
    });
  }

  // The job form shows the next runs of what it holds as you type: the form's fields go to
  // the server (the same schedule engine as `jtp preview`), which answers the list as HTML.
  function formPreview() {
    var box = document.getElementById("form-next-runs");
    var body = document.getElementById("form-next-runs-body");
    if (!box || !body) return;
    var form = box.closest("form");
    var url = box.getAttribute("data-preview");
    var timer = null;
    var sent = 0;
    function ask() {
      var mine = ++sent;
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html" },
        body: new URLSearchParams(new FormData(form)).toString()
      })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null && mine === sent) body.innerHTML = html; })
        .catch(function () {});
    }
    function later() {
      window.clearTimeout(timer);
      timer = window.setTimeout(ask, 300);
    }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
  }

  // A run in flight: its output (data-live, from data-offset on) grows once a second with what
  // the run has written since, as text in the same colour classes as the stored output. When
  // the run has ended, the page shows the stored output: the panel's own refresh brings it, a
  // run's page reloads. The element is looked up each time, since the panel's refresh replaces it
  // (with the output so far and its own offset).
  function liveOutput() {
    var busy = false;
    function follow() {
      var pre = document.getElementById("output-text");
      if (busy || document.hidden || !pre || !pre.getAttribute("data-live")) return;
      var offset = pre.getAttribute("data-offset") || "0";
      busy = true;
      fetch(pre.getAttribute("data-live") + "?offset=" + encodeURIComponent(offset),
            { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (answer) {
          if (!answer || !pre.isConnected || pre.getAttribute("data-offset") !== offset) return;
          if (!answer.live) {
            pre.removeAttribute("data-live");
            if (answer.status !== "RUNNING" && !document.getElementById("panel")) window.location.reload();
            return;
          }
          var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          answer.segments.forEach(function (seg) {
            var node = document.createTextNode(seg.text);
            if (seg.class) {
              var span = document.createElement("span");
              span.className = seg.class;
              span.appendChild(node);
              node = span;
            }
            pre.appendChild(node);
          });
          pre.setAttribute("data-offset", String(answer.offset));
          if (atEnd) pre.scrollTop = pre.scrollHeight;
        })
        .catch(function () {})
        .finally(function () { busy = false; });
    }
    window.setInterval(follow, 1000);
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
    liveOutput();
    clickableRows();
    keyboardRows();
    formPreview();
    zoneSwitch();
    flash();
  });
})();
