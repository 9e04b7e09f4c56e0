// devtel dashboard: replaces <main> and the "as of" line with a fresh copy of the same page
// every data-every seconds while the tab is visible, without a full reload. Without script the
// pages are complete; a failed fetch leaves the page as it is.
(function () {
  "use strict";
  var me = document.currentScript;
  var every = Math.max(2, Number(me && me.dataset.every) || 60) * 1000;
  function swap(doc, id) {
    var fresh = doc.getElementById(id);
    var old = document.getElementById(id);
    if (fresh && old) {
      old.replaceWith(fresh);
    }
  }
  function tick() {
    if (document.hidden) {
      return;
    }
    fetch(location.href, { headers: { "X-Devtel-Refresh": "1" }, cache: "no-store" })
      .then(function (r) {
        return r.ok ? r.text() : null;
      })
      .then(function (text) {
        if (!text) {
          return;
        }
        var doc = new DOMParser().parseFromString(text, "text/html");
        swap(doc, "main");
        swap(doc, "as-of");
        document.documentElement.dataset.refreshed = String(Date.now());
      })
      .catch(function () {});
  }
  setInterval(tick, every);
})();
