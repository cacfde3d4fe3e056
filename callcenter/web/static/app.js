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

  // The desk and the wallboard: their live events are signals, not HTML. A hidden element
  // with sse-swap receives each one; the swap is cancelled and the page's fragments (which
  // listen with hx-trigger="desk-changed from:body" or "wallboard-changed from:body") fetch
  // themselves again:
  // - the desk only when the agent's state, its start or the caller held changed (a stream
  //   that reconnects repeats the current state, and the wrap-up notes being typed must
  //   survive that);
  // - the wallboard at most every WALLBOARD_EVERY_MS, and once more after the last event.
  var WALLBOARD_EVERY_MS = 2000;
  var wallboardLast = 0;
  var wallboardTimer;

  function signal(name) {
    if (window.htmx) {
      window.htmx.trigger(document.body, name);
    }
  }

  function deskChanged(data) {
    var shown = document.querySelector("#desk-state [data-agent-state]");
    if (!shown) {
      return true;
    }
    return (
      shown.getAttribute("data-agent-state") !== data.state ||
      Number(shown.getAttribute("data-since")) !== Number(data.since) ||
      (shown.getAttribute("data-entry") || "") !== (data.entry || "")
    );
  }

  function wallboardChanged() {
    var wait = wallboardLast + WALLBOARD_EVERY_MS - Date.now();
    if (wait <= 0) {
      wallboardLast = Date.now();
      signal("wallboard-changed");
    } else if (wallboardTimer === undefined) {
      wallboardTimer = window.setTimeout(function () {
        wallboardTimer = undefined;
        wallboardLast = Date.now();
        signal("wallboard-changed");
      }, wait);
    }
  }

  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var sink = event.target;
    if (!sink || !sink.hasAttribute) {
      return;
    }
    if (sink.hasAttribute("data-desk-events")) {
      event.preventDefault();
      var data;
      try {
        data = JSON.parse(event.detail.data);
      } catch (e) {
        return;
      }
      if (deskChanged(data)) {
        signal("desk-changed");
      }
    } else if (sink.hasAttribute("data-wallboard-events")) {
      event.preventDefault();
      wallboardChanged();
    }
  });

  // Clocks (the time in a state): the server draws the figure (data-elapsed, seconds when
  // drawn); they keep ticking here, from when this browser got them (no clock to agree on).
  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    var rest = s % 60;
    var mm = h ? (m < 10 ? "0" : "") + m : String(m);
    return (h ? h + ":" : "") + mm + ":" + (rest < 10 ? "0" : "") + rest;
  }

  function tick() {
    var timers = document.querySelectorAll(".timer[data-elapsed]");
    var now = Date.now();
    for (var i = 0; i < timers.length; i++) {
      var timer = timers[i];
      if (timer.startedAt === undefined) {
        timer.startedAt = now - Number(timer.getAttribute("data-elapsed")) * 1000;
      }
      var text = clock((now - timer.startedAt) / 1000);
      if (timer.textContent !== text) {
        timer.textContent = text;
      }
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    window.setInterval(tick, 1000);
    if (!window.htmx || !window.EventSource) {
      return; // no live updates: the page stays as the server drew it
    }
    var hidden = document.querySelectorAll(".live-status[hidden]");
    for (var i = 0; i < hidden.length; i++) {
      hidden[i].hidden = false;
    }
  });
})();
