/* Pages that refresh themselves (the ward monitor) must never show old data as live.
 *
 * 1. A callback answered 401 (the session ended: idle timeout, signed out elsewhere,
 *    account disabled): reload, so the server sends the browser to the sign-in page and
 *    says why. Without this a wall screen would keep its last picture.
 * 2. On the ward monitor, no successful update for STALE_MS (server down, network
 *    gone): mark the page (body[data-ward-offline], styled in ward.css) with the time
 *    of the last update, until updates succeed again. The server's own "DATA DELAYED"
 *    banner cannot say this: it needs the server.
 */
(function () {
  "use strict";
  if (window.__icuLiveWatchdog) { return; }
  window.__icuLiveWatchdog = true;

  var STALE_MS = 5000;
  var UPDATE = "/_dash-update-component";
  var lastOk = Date.now();
  var reloading = false;
  var original = window.fetch;

  function isUpdate(input) {
    var url = typeof input === "string" ? input : (input && input.url) || "";
    return url.indexOf(UPDATE) !== -1;
  }

  window.fetch = function (input) {
    var update = isUpdate(input);
    return original.apply(this, arguments).then(function (response) {
      if (update) {
        if (response.status === 401 && !reloading) {
          reloading = true;
          window.location.reload();
        } else if (response.ok) {
          lastOk = Date.now();
        }
      }
      return response;
    });
  };

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  setInterval(function () {
    var body = document.body;
    if (!body) { return; }
    var onWard = !!document.getElementById("ward-root");
    if (onWard && Date.now() - lastOk > STALE_MS) {
      if (!body.hasAttribute("data-ward-offline")) {
        var t = new Date(lastOk);
        body.setAttribute("data-ward-offline",
          pad(t.getHours()) + ":" + pad(t.getMinutes()) + ":" + pad(t.getSeconds()));
      }
    } else if (body.hasAttribute("data-ward-offline")) {
      body.removeAttribute("data-ward-offline");
    }
    if (!onWard) { lastOk = Date.now(); }
  }, 1000);
})();
