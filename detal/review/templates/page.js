(function () {
  "use strict";
  var slider = document.getElementById("min-conf");
  var shown = document.getElementById("min-conf-value");
  var only = document.getElementById("only-boxes");
  var checks = Array.prototype.slice.call(document.querySelectorAll("input.cls"));
  var status = document.getElementById("showing");
  var cards = Array.prototype.slice.call(document.querySelectorAll("article.card")).map(
    function (card) {
      return {el: card, n: card.querySelector(".nshown"),
              boxes: Array.prototype.slice.call(card.querySelectorAll(".box")).map(function (b) {
                var c = b.getAttribute("data-conf");
                return {el: b, cls: b.getAttribute("data-class"),
                        conf: c === null ? null : parseFloat(c)};
              })};
    });
  function readHash() {
    var out = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i > 0) { out[decodeURIComponent(kv.slice(0, i))] = decodeURIComponent(kv.slice(i + 1)); }
    });
    return out;
  }
  function writeHash() {
    var hide = checks.filter(function (c) { return !c.checked; }).map(function (c) {
      return c.value; });
    var parts = [];
    if (slider && !slider.disabled && parseFloat(slider.value) > 0) {
      parts.push("min=" + parseFloat(slider.value).toFixed(2)); }
    if (hide.length) { parts.push("hide=" + hide.join(",")); }
    if (only.checked) { parts.push("only=1"); }
    try { history.replaceState(null, "", parts.length ? "#" + parts.join("&") : location.pathname); }
    catch (e) { /* some browsers refuse replaceState on file:// pages */ }
  }
  function apply() {
    var t = slider && !slider.disabled ? parseFloat(slider.value) || 0 : 0;
    var on = {};
    checks.forEach(function (c) { on[c.value] = c.checked; });
    if (shown) { shown.textContent = t.toFixed(2); }
    var nCards = 0, nBoxes = 0;
    cards.forEach(function (card) {
      var n = 0;
      card.boxes.forEach(function (b) {
        var vis = on[b.cls] !== false && (b.conf === null || b.conf >= t);
        b.el.hidden = !vis;
        if (vis) { n += 1; }
      });
      if (card.n) { card.n.textContent = n; }
      card.el.setAttribute("data-shown", n);
      card.el.hidden = only.checked && n === 0;
      if (!card.el.hidden) { nCards += 1; nBoxes += n; }
    });
    status.textContent = nCards + " images, " + nBoxes + " boxes shown";
  }
  var h = readHash();
  if (h.min !== undefined && slider && !slider.disabled) { slider.value = h.min; }
  if (h.hide !== undefined) {
    var hidden = h.hide.split(",");
    checks.forEach(function (c) { c.checked = hidden.indexOf(c.value) < 0; });
  }
  only.checked = h.only === "1";
  function changed() { apply(); writeHash(); }
  if (slider) { slider.addEventListener("input", changed); }
  only.addEventListener("change", changed);
  checks.forEach(function (c) { c.addEventListener("change", changed); });
  apply();
  // time from navigation start to the page being filtered and ready (read by the benchmark)
  document.documentElement.setAttribute("data-ready-ms", String(Math.round(performance.now())));
})();
