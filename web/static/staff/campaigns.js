/*
 * Be-Safe campaign page: live progress. Polls the page's progress JSON (counts
 * only) and redraws the figures with textContent; nothing is parsed as HTML.
 */
(function () {
  "use strict";

  var section = document.getElementById("progress");
  if (!section) {
    return;
  }
  var url = section.getAttribute("data-progress-url");
  var every = (parseInt(section.getAttribute("data-refresh-seconds"), 10) || 10) * 1000;
  var status = document.getElementById("progress-status");
  var HIDDEN = "\u2013";

  function text(id, value) {
    var node = document.getElementById(id);
    if (node) {
      node.textContent = value;
    }
  }

  function shown(value) {
    return value === null || value === undefined ? HIDDEN : String(value);
  }

  function row(label, cells) {
    var tr = document.createElement("tr");
    var th = document.createElement("th");
    th.scope = "row";
    th.textContent = label;
    tr.appendChild(th);
    cells.forEach(function (cell) {
      var td = document.createElement("td");
      td.textContent = shown(cell);
      tr.appendChild(td);
    });
    return tr;
  }

  function fill(tableId, rows) {
    var body = document.querySelector("#" + tableId + " tbody");
    if (body) {
      body.replaceChildren.apply(body, rows);
    }
  }

  function draw(data) {
    text("progress-started", shown(data.started));
    text("progress-completed", shown(data.completed));
    text("progress-rate", data.completion_rate === null ? HIDDEN : data.completion_rate + "%");
    text("progress-target", data.target ? data.completed + " of " + data.target + " (" +
         data.target_percent + "%)" : "no target set");
    text("progress-flags", shown(data.flags));
    var bar = document.getElementById("progress-bar");
    if (bar && data.target_percent !== null) {
      bar.value = data.target_percent;
      bar.textContent = data.target_percent + "%";
    }
    fill("progress-days", data.days.map(function (d) {
      return row(d.day, [d.started, d.completed, d.started_total, d.completed_total]);
    }));
    fill("progress-dropout", data.dropout.map(function (d) {
      return row(d.question, [d.count]);
    }));
    var holder = document.getElementById("progress-breakdowns");
    if (holder) {
      var tables = holder.querySelectorAll("table");
      data.breakdowns.forEach(function (b, index) {
        var table = tables[index];
        var body = table ? table.querySelector("tbody") : null;
        if (body) {
          body.replaceChildren.apply(body, b.rows.map(function (r) {
            return row(r.label, [r.started, r.completed]);
          }));
        }
      });
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store",
                 headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (response.status === 401 || response.redirected) {
          status.textContent = "Your session has ended: reload the page to log in again.";
          return null;
        }
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (data) {
          draw(data);
          status.textContent = "Updated " + new Date().toLocaleTimeString("en-GB") + ".";
        }
      })
      .catch(function () { status.textContent = "Could not refresh: trying again."; })
      .then(function () { window.setTimeout(poll, every); });
  }

  window.setTimeout(poll, every);
}());
