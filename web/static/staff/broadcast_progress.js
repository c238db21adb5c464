// Live progress of broadcasts (web/templates/staff/broadcast_progress.html): polls the JSON
// every few seconds and redraws the bars. Text only (textContent), never HTML.
(function () {
  "use strict";
  var POLL_MS = 3000;

  function label(b) {
    return b.kind === "invitation" ? "Invitation" : "Reminder " + b.seq;
  }

  function counts(b) {
    return b.sent + " sent · " + (b.queued + b.sending) + " waiting · " + b.failed +
      " failed · " + b.blocked + " blocked · " + b.cancelled + " cancelled (of " + b.total + ")";
  }

  function row(b) {
    var box = document.createElement("div");
    box.className = "broadcast-row";
    box.dataset.key = b.kind + "-" + b.seq;
    var title = document.createElement("h3");
    title.textContent = label(b);
    var bar = document.createElement("progress");
    bar.max = Math.max(b.total, 1);
    bar.value = b.done;
    bar.textContent = b.done + " of " + b.total;
    var text = document.createElement("p");
    text.className = "broadcast-counts";
    text.textContent = counts(b);
    box.append(title, bar, text);
    return box;
  }

  function draw(section, data) {
    var rows = section.querySelector(".broadcast-rows");
    var subscribers = section.querySelector("[data-subscribers]");
    if (subscribers) subscribers.textContent = String(data.subscribers);
    if (!data.broadcasts.length) return;
    rows.replaceChildren.apply(rows, data.broadcasts.map(row));
  }

  function poll(section) {
    var url = section.dataset.progressUrl;
    var error = section.querySelector(".broadcast-error");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (data) {
        draw(section, data);
        if (error) error.hidden = true;
      })
      .catch(function () {
        if (error) error.hidden = false;
      })
      .finally(function () {
        window.setTimeout(function () { poll(section); }, POLL_MS);
      });
  }

  document.querySelectorAll(".broadcast-progress[data-progress-url]").forEach(poll);
})();
