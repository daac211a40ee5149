/* envgen records site: the index's filters and sorting (state in the URL: #label=…&tag=…&env=…&sort=…&order=asc|desc),
   and on every page, each image's natural width as data-natural-width once it loaded (0: it did not). */
(function () {
  "use strict";

  function state() {
    var p = new URLSearchParams(location.hash.replace(/^#/, ""));
    return {label: p.get("label") || "", tag: p.get("tag") || "", env: p.get("env") || "",
            sort: p.get("sort") || "", order: p.get("order") === "asc" ? "asc" : "desc"};
  }

  function setState(s) {
    var p = new URLSearchParams();
    ["label", "tag", "env", "sort"].forEach(function (k) { if (s[k]) { p.set(k, s[k]); } });
    if (s.sort) { p.set("order", s.order); }
    location.hash = p.toString();
  }

  function value(row, key) {
    var v = row.getAttribute("data-" + key) || "";
    return row.hasAttribute("data-num-" + key) ? parseFloat(row.getAttribute("data-num-" + key)) : v;
  }

  function apply(table) {
    var s = state();
    var form = document.getElementById("filters");
    ["label", "tag", "env"].forEach(function (k) { form.elements[k].value = s[k]; });
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var shown = 0;
    rows.forEach(function (r) {
      var tags = JSON.parse(r.getAttribute("data-tags") || "[]");
      var ok = (!s.label || r.getAttribute("data-label").toLowerCase().indexOf(s.label.toLowerCase()) >= 0) &&
               (!s.tag || tags.indexOf(s.tag) >= 0) &&
               (!s.env || r.getAttribute("data-env") === s.env);
      r.hidden = !ok;
      if (ok) { shown += 1; }
    });
    var sign = s.order === "asc" ? 1 : -1;
    rows.sort(function (a, b) {
      if (s.sort) {
        var x = value(a, s.sort), y = value(b, s.sort);
        if (x < y) { return -sign; }
        if (x > y) { return sign; }
      }
      return parseInt(a.getAttribute("data-order"), 10) - parseInt(b.getAttribute("data-order"), 10);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.querySelectorAll("th[data-key]"), function (th) {
      th.setAttribute("aria-sort", th.getAttribute("data-key") === s.sort
        ? (s.order === "asc" ? "ascending" : "descending") : "none");
    });
    table.setAttribute("data-shown", String(shown));
    document.getElementById("shown").textContent = shown + " of " + rows.length + " runs shown";
  }

  function index(table) {
    var form = document.getElementById("filters");
    form.addEventListener("input", function () {
      var s = state();
      ["label", "tag", "env"].forEach(function (k) { s[k] = form.elements[k].value; });
      setState(s);
    });
    form.addEventListener("submit", function (ev) { ev.preventDefault(); });
    Array.prototype.forEach.call(table.tHead.querySelectorAll("th[data-key]"), function (th) {
      th.addEventListener("click", function () {
        var s = state(), key = th.getAttribute("data-key");
        s.order = s.sort === key && s.order === "asc" ? "desc" : "asc";
        s.sort = key;
        setState(s);
      });
    });
    window.addEventListener("hashchange", function () { apply(table); });
    apply(table);
  }

  var runs = document.getElementById("runs");
  if (runs) { index(runs); }

  window.addEventListener("load", function () {
    Array.prototype.forEach.call(document.images, function (img) {
      img.setAttribute("data-natural-width", String(img.naturalWidth));
    });
  });
}());
