// s3-ingest console: while a run is going, re-render the page every two seconds by fetching it
// again and swapping <main>, keeping open <details> open. Polls /api/live to know.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var last = null;
  function openDetails() {
    return Array.prototype.map.call(document.querySelectorAll("main details"), function (d) { return d.open; });
  }
  function refresh() {
    var open = openDetails();
    fetch(window.location.href, { headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (text) {
        var page = new DOMParser().parseFromString(text, "text/html");
        var main = page.querySelector("main");
        if (!main) { return; }
        document.querySelector("main").innerHTML = main.innerHTML;
        document.querySelectorAll("main details").forEach(function (d, i) { if (open[i]) { d.open = true; } });
      })
      .catch(function () {});
  }
  function poll() {
    fetch("/api/live")
      .then(function (r) { return r.json(); })
      .then(function (state) {
        var running = state.running > 0;
        live.textContent = running ? "● " + state.running + " running, updating" : "";
        if (running || (last !== null && last !== state.fingerprint)) { refresh(); }
        last = state.fingerprint;
      })
      .catch(function () { live.textContent = "console unreachable"; })
      .then(function () { setTimeout(poll, 2000); });
  }
  poll();
})();
