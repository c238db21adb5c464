/*
 * Be-Safe web chat. Plain JavaScript, no framework, no build step.
 *
 * Safety rules this file keeps:
 *  - Every message (the bot's, staff replies, what the young person typed) is
 *    drawn with textContent, never innerHTML: text is never treated as HTML.
 *  - Quick Exit (button, or Esc twice) wipes the transcript from the page and
 *    from sessionStorage, then location.replace()s to a neutral site so that
 *    Back does not come back here.
 *  - What the young person typed is never lost: if sending fails it goes
 *    back into the message box.
 */
(function () {
  "use strict";

  var API_MESSAGE = "/chat/api/message";
  var API_RESUME = "/chat/api/resume";
  var STORE_KEY = "besafe.transcript.v1";
  var STORE_LIMIT = 60; // bubbles kept for a reload; the server keeps the survey itself
  var ESCAPE_WINDOW_MS = 1000; // two presses of Esc within this time = Quick Exit
  // Quick-reply values that are plain actions, not toggles, on a multiple-choice question.
  var NOT_TOGGLES = { __done__: true, __skip__: true, __keep__: true, prefer_not_to_say: true };

  var main = document.getElementById("main");
  var transcript = document.getElementById("transcript");
  var form = document.getElementById("composer");
  var input = document.getElementById("message-input");
  var helpButton = document.getElementById("help-button");
  var statusLine = document.getElementById("status");
  var exitLink = document.getElementById("quick-exit");

  var exitUrl = exitLink.getAttribute("data-quick-exit-url") || exitLink.href || "about:blank";
  var sorryText = main.getAttribute("data-sorry-text") ||
    "Sorry, something went wrong on our side. Please send your message again.";

  var exiting = false;
  var queue = Promise.resolve(); // one request at a time, in the order they were made
  var pending = 0;
  var controller = null; // aborts the request in flight on Quick Exit
  var lastEscape = 0;
  var activeGroup = null; // the quick replies under the latest bot message
  var lastSendWasTyped = false;

  // ------------------------------------------------------------ Quick Exit

  function quickExit(event) {
    if (event) {
      event.preventDefault();
    }
    exiting = true;
    try {
      window.sessionStorage.clear();
    } catch (ignored) { /* storage may be disabled */ }
    if (controller) {
      controller.abort();
    }
    transcript.replaceChildren();
    input.value = "";
    statusLine.textContent = "";
    document.title = "";
    window.location.replace(exitUrl);
  }

  exitLink.addEventListener("click", quickExit);
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") {
      return;
    }
    var now = Date.now();
    if (now - lastEscape <= ESCAPE_WINDOW_MS) {
      quickExit(event);
    } else {
      lastEscape = now;
    }
  });

  // ------------------------------------------------------------ transcript copy

  function loadHistory() {
    try {
      var raw = window.sessionStorage.getItem(STORE_KEY);
      var items = raw ? JSON.parse(raw) : [];
      return Array.isArray(items) ? items : [];
    } catch (ignored) {
      return [];
    }
  }

  function remember(entries) {
    if (exiting) {
      return;
    }
    try {
      var items = loadHistory().concat(entries).slice(-STORE_LIMIT);
      window.sessionStorage.setItem(STORE_KEY, JSON.stringify(items));
    } catch (ignored) { /* storage full or disabled: the chat still works */ }
  }

  // ------------------------------------------------------------ drawing

  function bubble(from, text, kind) {
    var item = document.createElement("div");
    var safeKind = typeof kind === "string" && /^[a-z]+$/.test(kind) ? kind : "";
    item.className = "msg msg--" + from + (safeKind ? " msg--" + safeKind : "");
    var label = document.createElement("span");
    label.className = "visually-hidden";
    label.textContent = from === "user" ? "You said: " : "Be-Safe: ";
    var words = document.createElement("p");
    words.className = "msg-text";
    words.textContent = text; // never innerHTML
    item.appendChild(label);
    item.appendChild(words);
    transcript.appendChild(item);
    return item;
  }

  function markFailed(item) {
    if (!item) {
      return;
    }
    item.classList.add("msg--failed");
    var note = document.createElement("span");
    note.className = "msg-note";
    note.textContent = "Not sent";
    item.appendChild(note);
  }

  function scrollToShow(first) {
    var limit = main.scrollHeight - main.clientHeight;
    var target = first ? Math.min(limit, first.offsetTop - 12) : limit;
    main.scrollTop = Math.max(main.scrollTop, target);
  }

  function disableGroup(group) {
    if (!group) {
      return;
    }
    group.closed = true;
    group.element.classList.add("choices--closed");
    group.buttons.forEach(function (button) {
      button.disabled = true;
    });
    if (activeGroup === group) {
      activeGroup = null;
    }
  }

  function labelOf(group, value) {
    for (var i = 0; i < group.say.choices.length; i += 1) {
      if (group.say.choices[i].value === value) {
        return group.say.choices[i].label;
      }
    }
    return value;
  }

  // Which toggles the server says are picked, from "Picked so far: A, B." (or,
  // on going back, "Your answer was: A, B."). Null when the text doesn't say.
  function pickedFromText(text, toggles) {
    if (text.indexOf("Nothing picked yet") === 0) {
      return [];
    }
    var lines = text.split("\n");
    var line = null;
    ["Picked so far: ", "Your answer was: "].some(function (prefix) {
      line = lines.find(function (candidate) { return candidate.indexOf(prefix) === 0; }) || null;
      if (line) {
        line = line.slice(prefix.length);
      }
      return line !== null;
    });
    if (line === null) {
      return null;
    }
    var rest = line.replace(/\.$/, "");
    var picked = [];
    for (var i = 0; i < toggles.length && rest; i += 1) {
      var label = toggles[i].label;
      if (rest === label) {
        picked.push(toggles[i].value);
        rest = "";
      } else if (rest.indexOf(label + ", ") === 0) {
        picked.push(toggles[i].value);
        rest = rest.slice(label.length + 2);
      }
    }
    return rest === "" ? picked : null;
  }

  function setPressed(group, values) {
    group.buttons.forEach(function (button) {
      if (button.hasAttribute("aria-pressed")) {
        var on = values.indexOf(button.getAttribute("data-value")) !== -1;
        button.setAttribute("aria-pressed", on ? "true" : "false");
      }
    });
  }

  function drawChoices(say) {
    var element = document.createElement("div");
    element.className = "choices" + (say.multi ? " choices--multi" : "");
    element.setAttribute("role", "group");
    element.setAttribute("data-question-id", say.question_id || "");
    element.setAttribute("aria-label", say.multi ? "Answers: pick one or more, then Done" : "Answers");
    var group = { say: say, element: element, buttons: [], closed: false, status: null };
    var toggles = [];
    say.choices.forEach(function (choice) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "choice";
      button.textContent = choice.label;
      button.setAttribute("data-value", choice.value);
      var isToggle = say.multi && !NOT_TOGGLES[choice.value];
      if (isToggle) {
        button.setAttribute("aria-pressed", "false");
        button.classList.add("choice--toggle");
        toggles.push(choice);
      }
      if (choice.value === "__done__") {
        button.classList.add("choice--done");
      } else if (choice.value === "__skip__" || choice.value === "prefer_not_to_say") {
        button.classList.add("choice--quiet");
      }
      button.addEventListener("click", function () {
        onChoice(group, choice, isToggle, button);
      });
      group.buttons.push(button);
      element.appendChild(button);
    });
    if (say.multi) {
      group.toggles = toggles;
      group.status = document.createElement("p");
      group.status.className = "picked-status";
      element.appendChild(group.status);
      setPressed(group, pickedFromText(say.text, toggles) || []);
    }
    transcript.appendChild(element);
    return group;
  }

  // Draw the bot's messages; only the last set of quick replies stays usable.
  function showMessages(messages) {
    var first = null;
    var groups = [];
    disableGroup(activeGroup);
    messages.forEach(function (say) {
      var item = bubble("bot", say.text, say.kind);
      first = first || item;
      if (say.choices && say.choices.length) {
        groups.push(drawChoices(say));
      }
    });
    groups.slice(0, -1).forEach(disableGroup);
    activeGroup = groups.length ? groups[groups.length - 1] : null;
    remember(messages.map(function (say) {
      return { from: "bot", text: say.text, kind: say.kind };
    }));
    scrollToShow(first);
  }

  function showProblem(text) {
    var item = bubble("bot", text, "error");
    scrollToShow(item);
    return item;
  }

  // ------------------------------------------------------------ talking to the server

  function setBusy() {
    statusLine.textContent = pending > 0 ? "Sending\u2026" : "";
    form.setAttribute("aria-busy", pending > 0 ? "true" : "false");
  }

  // POST a body; resolves to {ok: true, messages} or {ok: false, message}.
  function post(url, body) {
    controller = window.AbortController ? new AbortController() : null;
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: { "Content-Type": "application/json", "X-BeSafe-Chat": "1" },
      body: JSON.stringify(body),
      signal: controller ? controller.signal : undefined
    }).then(function (response) {
      return response.json().then(function (data) {
        if (response.ok && data && Array.isArray(data.messages)) {
          return { ok: true, messages: data.messages };
        }
        var message = data && typeof data.message === "string" ? data.message : sorryText;
        return { ok: false, message: message };
      }, function () {
        return { ok: false, message: sorryText };
      });
    }, function () {
      return { ok: false, message: sorryText };
    });
  }

  // Run `work` after everything sent before it; keeps the "Sending…" state.
  function send(url, body, handle) {
    pending += 1;
    setBusy();
    queue = queue.then(function () {
      if (exiting) {
        return null;
      }
      return post(url, body).then(function (result) {
        if (!exiting) {
          handle(result);
        }
      });
    }).catch(function () { /* a drawing error must not stop later messages */ })
      .then(function () {
        pending -= 1;
        setBusy();
      });
    return queue;
  }

  function focusInput() {
    // On touch screens, only pop the keyboard up when the next step wants typing.
    var coarse = window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
    if (!coarse || lastSendWasTyped || !activeGroup) {
      input.focus({ preventScroll: true });
    }
  }

  function sendText() {
    var text = input.value;
    if (!text.trim()) {
      input.focus();
      return;
    }
    input.value = "";
    resizeInput();
    lastSendWasTyped = true;
    var item = bubble("user", text);
    scrollToShow(item);
    send(API_MESSAGE, { text: text }, function (result) {
      if (result.ok) {
        remember([{ from: "user", text: text }]);
        showMessages(result.messages);
      } else {
        markFailed(item);
        // Never lose what was typed: put it back (before anything typed since).
        input.value = input.value ? text + "\n" + input.value : text;
        resizeInput();
        showProblem(result.message);
      }
      focusInput();
    });
  }

  function onChoice(group, choice, isToggle, button) {
    if (group.closed || exiting) {
      return;
    }
    lastSendWasTyped = false;
    var body = { choice: { value: choice.value, question_id: group.say.question_id } };
    if (isToggle) {
      var wasPressed = button.getAttribute("aria-pressed") === "true";
      button.setAttribute("aria-pressed", wasPressed ? "false" : "true");
      send(API_MESSAGE, body, function (result) {
        onToggled(group, button, wasPressed, result);
      });
      return;
    }
    // A single answer: close the buttons at once so a double tap can't answer twice.
    var words = choice.label;
    if (group.say.multi && choice.value === "__done__") {
      var picked = group.buttons.filter(function (b) {
        return b.getAttribute("aria-pressed") === "true";
      }).map(function (b) { return labelOf(group, b.getAttribute("data-value")); });
      words = picked.length ? picked.join(", ") : "Done";
    }
    button.classList.add("choice--chosen");
    disableGroup(group);
    var item = bubble("user", words, "choice");
    scrollToShow(item);
    send(API_MESSAGE, body, function (result) {
      if (result.ok) {
        remember([{ from: "user", text: words, kind: "choice" }]);
        showMessages(result.messages);
      } else {
        markFailed(item);
        button.classList.remove("choice--chosen");
        reopenGroup(group);
        showProblem(result.message);
      }
      focusInput();
    });
  }

  function reopenGroup(group) {
    if (activeGroup && activeGroup !== group) {
      return; // something newer has been shown since
    }
    group.closed = false;
    group.element.classList.remove("choices--closed");
    group.buttons.forEach(function (b) { b.disabled = false; });
    activeGroup = group;
  }

  // The server answers a toggle with the question again ("Picked so far: ...").
  // Show that in place instead of a new bubble for every tap.
  function onToggled(group, button, wasPressed, result) {
    if (!result.ok) {
      button.setAttribute("aria-pressed", wasPressed ? "true" : "false");
      showProblem(result.message);
      return;
    }
    var messages = result.messages;
    var same = messages.length === 1 && messages[0].multi &&
      messages[0].question_id === group.say.question_id;
    if (same && group.closed) {
      return; // Done (or an answer) was tapped meanwhile; its reply follows
    }
    if (!same) {
      showMessages(messages);
      focusInput();
      return;
    }
    var say = messages[0];
    group.status.textContent = say.text;
    scrollToShow(null);
    var picked = pickedFromText(say.text, group.toggles);
    if (picked !== null) {
      setPressed(group, picked);
    }
  }

  function resume() {
    send(API_RESUME, {}, function (result) {
      if (result.ok) {
        showMessages(result.messages);
      } else {
        var item = showProblem(result.message);
        var retry = document.createElement("button");
        retry.type = "button";
        retry.className = "choice";
        retry.textContent = "Try again";
        retry.addEventListener("click", function () {
          retry.disabled = true;
          resume();
        });
        item.appendChild(retry);
      }
      focusInput();
    });
  }

  // A campaign link (/?c=<join code>, from a poster's QR code) starts that survey;
  // the code is then taken out of the address so that a reload just resumes.
  function joinOrResume() {
    var code = null;
    try {
      code = new URLSearchParams(window.location.search).get("c");
    } catch (ignored) { /* an old browser: resume as usual */ }
    if (!code || !/^[A-Za-z0-9_-]{1,100}$/.test(code)) {
      resume();
      return;
    }
    try {
      window.history.replaceState(null, "", window.location.pathname);
    } catch (ignored) { /* the code stays in the address; harmless */ }
    send(API_MESSAGE, { command: "start", arg: code }, function (result) {
      if (result.ok) {
        showMessages(result.messages);
        focusInput();
      } else {
        resume();
      }
    });
  }

  // ------------------------------------------------------------ the message box

  function resizeInput() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 160) + "px";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    sendText();
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendText();
    }
  });
  input.addEventListener("input", resizeInput);
  helpButton.addEventListener("click", function () {
    if (exiting) {
      return;
    }
    lastSendWasTyped = false;
    var item = bubble("user", "Help", "choice");
    scrollToShow(item);
    send(API_MESSAGE, { command: "help" }, function (result) {
      if (result.ok) {
        remember([{ from: "user", text: "Help", kind: "choice" }]);
        showMessages(result.messages);
      } else {
        markFailed(item);
        showProblem(result.message);
      }
      focusInput();
    });
  });

  // A page restored from the back/forward cache after a Quick Exit shows nothing.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && loadHistory().length === 0) {
      transcript.replaceChildren();
    }
  });

  // ------------------------------------------------------------ replies from the team

  // A safeguarding lead's reply (only ever after the young person agreed to be
  // contacted) is fetched every few seconds and drawn as text, like everything.
  var API_UPDATES = "/chat/api/updates";
  var LAST_STAFF_KEY = "besafe.staff.last.v1";
  var UPDATE_EVERY_MS = 4000;
  var lastStaff = 0;
  try {
    lastStaff = parseInt(window.sessionStorage.getItem(LAST_STAFF_KEY) || "0", 10) || 0;
  } catch (ignored) { /* storage disabled: start from the beginning */ }

  function showStaffReply(text) {
    var item = bubble("bot", text, "staff");
    var from = document.createElement("span");
    from.className = "msg-from";
    from.textContent = "From the Be-Safe team";
    item.insertBefore(from, item.firstChild.nextSibling);
    return item;
  }

  function pollUpdates() {
    if (exiting) {
      return;
    }
    fetch(API_UPDATES + "?after=" + String(lastStaff), {
      credentials: "same-origin",
      cache: "no-store",
      headers: { "X-BeSafe-Chat": "1" }
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (data) {
      if (exiting || !data || !Array.isArray(data.messages)) {
        return;
      }
      var first = null;
      data.messages.forEach(function (message) {
        if (typeof message.id !== "number" || typeof message.text !== "string" ||
            message.id <= lastStaff) {
          return;
        }
        lastStaff = message.id;
        var item = showStaffReply(message.text);
        first = first || item;
        remember([{ from: "bot", text: message.text, kind: "staff" }]);
      });
      if (first) {
        try {
          window.sessionStorage.setItem(LAST_STAFF_KEY, String(lastStaff));
        } catch (ignored) { /* the reply is shown anyway */ }
        scrollToShow(first);
      }
    }).catch(function () { /* offline for a moment: try again later */ })
      .then(function () {
        if (!exiting) {
          window.setTimeout(pollUpdates, UPDATE_EVERY_MS);
        }
      });
  }

  // ------------------------------------------------------------ start

  loadHistory().forEach(function (entry) {
    if (entry && typeof entry.text === "string") {
      bubble(entry.from === "user" ? "user" : "bot", entry.text, entry.kind);
    }
  });
  scrollToShow(null);
  joinOrResume();
  window.setTimeout(pollUpdates, 1000);
}());
