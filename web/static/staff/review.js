/*
 * Be-Safe review queue: live updates and the print button. No framework.
 *
 * The queue page and the flag page listen to /staff/events (server-sent
 * events). On news they fetch the server-rendered, escaped part that changed
 * (/staff/queue/rows, /staff/flags/<id>/live) and swap it in. Nothing a young
 * person wrote is ever put together into HTML here.
 */
(function () {
  "use strict";

  var status = document.getElementById("live-status");
  var queue = document.querySelector("[data-live='queue']");
  var flag = document.querySelector("[data-live='flag']");

  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  // Fetch a server-rendered fragment and swap the element with the given id.
  function swap(url, id) {
    return fetch(url, { credentials: "same-origin", cache: "no-store",
                        headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.status === 401 || response.redirected) {
          say("Your session has ended: reload the page to log in again.");
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html === null) {
          return;
        }
        var parsed = new DOMParser().parseFromString(
          id === "queue-rows" ? "<table>" + html + "</table>" : html, "text/html");
        var fresh = id === "queue-rows" ? parsed.getElementById(id) : parsed.body;
        var current = document.getElementById(id);
        if (!fresh || !current) {
          return;
        }
        if (id === "queue-rows") {
          current.replaceWith(document.importNode(fresh, true));
        } else {
          current.replaceChildren.apply(current, Array.prototype.map.call(
            fresh.childNodes, function (node) { return document.importNode(node, true); }));
        }
      })
      .catch(function () { say("Could not refresh: reload the page."); });
  }

  function refreshQueue() {
    return swap(queue.getAttribute("data-rows-url"), "queue-rows");
  }

  function refreshFlag() {
    return swap(flag.getAttribute("data-live-url"), "flag-live");
  }

  if (!window.EventSource || (!queue && !flag)) {
    return;
  }
  var flagId = flag ? Number(flag.getAttribute("data-flag-id")) : null;
  var source = new EventSource("/staff/events");
  var connectedOnce = false;

  source.addEventListener("open", function () {
    say(status ? status.getAttribute("data-idle") : "");
    if (connectedOnce && queue) {
      refreshQueue(); // something may have arrived while we were away
    }
    connectedOnce = true;
  });
  source.addEventListener("error", function () {
    say("Live updates paused; trying again…");
  });
  source.addEventListener("flag", function () {
    if (queue) {
      refreshQueue().then(function () { say("A new flag has arrived."); });
    }
  });
  source.addEventListener("change", function (event) {
    var ids = [];
    try {
      ids = JSON.parse(event.data).ids || [];
    } catch (ignored) { /* a malformed event changes nothing */ }
    if (queue) {
      refreshQueue();
    }
    if (flag && ids.indexOf(flagId) !== -1) {
      refreshFlag().then(function () { say("This flag has been updated."); });
    }
  });
}());
