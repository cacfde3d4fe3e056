/* The app's only script, and only an enhancement: every page works without it.
 *
 * Live pages (an element with sse-connect, from htmx's SSE extension) show a connection state
 * in their .live-status paragraph: data-state="live|reconnecting|lost", with the words the
 * server rendered into data-text-live / data-text-reconnecting / data-text-lost (the message
 * catalogue's, never words of this file).
 */
(function () {
  "use strict";

  // The page's Content-Security-Policy allows no inline style: htmx must not insert its own.
  if (window.htmx) {
    window.htmx.config.includeIndicatorStyles = false;
  }

  // A connection that drops and comes back within this time (the server ends each stream
  // after a while; the browser reconnects at once) is not worth announcing.
  var GRACE_MS = 2000;
  var CLOSED = 2; // EventSource.CLOSED: the browser gave up; htmx tries again later

  function statusOf(element) {
    return element && element.querySelector ? element.querySelector(".live-status") : null;
  }

  function show(status, state) {
    if (!status) {
      return;
    }
    window.clearTimeout(status.liveTimer);
    status.liveTimer = undefined;
    var text = status.getAttribute("data-text-" + state);
    status.setAttribute("data-state", state);
    if (text !== null && status.textContent !== text) {
      status.textContent = text;
    }
  }

  document.addEventListener("htmx:sseOpen", function (event) {
    show(statusOf(event.target), "live");
  });

  document.addEventListener("htmx:sseError", function (event) {
    var status = statusOf(event.target);
    if (!status) {
      return;
    }
    var source = event.detail && event.detail.source;
    if (source && source.readyState === CLOSED) {
      show(status, "lost");
    } else if (status.getAttribute("data-state") !== "live") {
      show(status, "reconnecting");
    } else if (status.liveTimer === undefined) {
      status.liveTimer = window.setTimeout(function () {
        show(status, "reconnecting");
      }, GRACE_MS);
    }
  });

  // A fragment request that was redirected (the session ended: to the login page) must not
  // swap a whole page into a part of this one: the page is loaded again instead, and the
  // server sends the browser on (to the login, which then comes back to this page).
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail && event.detail.xhr;
    var asked = event.detail && event.detail.pathInfo && event.detail.pathInfo.requestPath;
    if (!xhr || !xhr.responseURL || !asked) {
      return;
    }
    var landed = new URL(xhr.responseURL, window.location.href);
    var wanted = new URL(asked, window.location.href);
    if (landed.pathname !== wanted.pathname) {
      event.detail.shouldSwap = false;
      window.location.reload();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.htmx || !window.EventSource) {
      return; // no live updates: the page stays as the server drew it
    }
    var hidden = document.querySelectorAll(".live-status[hidden]");
    for (var i = 0; i < hidden.length; i++) {
      hidden[i].hidden = false;
    }
  });
})();
