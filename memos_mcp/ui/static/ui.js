// The web UI's own script: a busy bar while htmx loads, the graph drawn with cytoscape.js, and the
// progress of an import polled while its upload is being imported. Everything else is plain HTML.
(function () {
  "use strict";
  var root = document.documentElement;

  function drawGraph() {
    var box = document.getElementById("graph");
    var data = document.getElementById("graph-data");
    if (!box || !data || box.dataset.drawn) return;
    var elements = JSON.parse(data.textContent || "[]");
    if (!elements.length) return;
    if (!window.cytoscape) {  // loaded on first use: boosted pages do not run the scripts of a new <head>
      var script = document.createElement("script");
      script.src = box.dataset.lib;
      script.onload = drawGraph;
      document.head.appendChild(script);
      return;
    }
    box.dataset.drawn = "1";
    window.cytoscape({
      container: box,
      elements: elements,
      layout: { name: "cose", animate: false, padding: 24 },
      style: [
        { selector: "node", style: { "label": "data(label)", "background-color": "#2f6f9f", "color": "#1b1b1b",
          "font-size": 12, "text-valign": "bottom", "text-margin-y": 4, "width": 18, "height": 18 } },
        { selector: "edge", style: { "label": "data(label)", "curve-style": "bezier", "target-arrow-shape": "triangle",
          "width": 2, "line-color": "#2e7d32", "target-arrow-color": "#2e7d32", "font-size": 10,
          "text-rotation": "autorotate", "text-background-color": "#fff", "text-background-opacity": 0.8 } },
        { selector: "edge[?invalid]", style: { "line-style": "dashed", "line-color": "#c62828",
          "target-arrow-color": "#c62828", "color": "#c62828" } }
      ]
    }).on("tap", "node", function (event) {
      var url = new URL(window.location.href);
      url.searchParams.set("entity", event.target.data("label"));
      window.location.assign(url.toString());
    });
  }

  function watchImport(form) {
    var bar = document.getElementById("import-progress");
    var status = document.getElementById("import-status");
    var timer = window.setInterval(function () {
      fetch(form.dataset.progress, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (p) {
          if (p.state !== "running") return;
          bar.max = Math.max(p.total, 1);
          bar.value = p.done;
          status.textContent = p.done + " of " + p.total + " memories";
        })
        .catch(function () { /* the next poll tries again */ });
    }, 400);
    var stop = function () { window.clearInterval(timer); bar.value = bar.max; };
    form.addEventListener("htmx:afterRequest", stop, { once: true });
    status.textContent = "uploading…";
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.progress) watchImport(form);
  });
  document.addEventListener("change", function (event) {  // a cube picked shows that cube at once
    var field = event.target;
    if (field instanceof HTMLSelectElement && field.hasAttribute("data-autosubmit") && field.form) field.form.requestSubmit();
  });
  document.addEventListener("htmx:beforeRequest", function () { root.classList.add("busy"); });
  document.addEventListener("htmx:afterRequest", function () { root.classList.remove("busy"); });
  document.addEventListener("htmx:afterSettle", drawGraph);
  document.addEventListener("DOMContentLoaded", drawGraph);
})();
