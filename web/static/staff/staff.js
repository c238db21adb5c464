// Be-Safe staff app: small progressive enhancements. No inline scripts (CSP: script-src 'self').
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  // For scripts that post with fetch: window.BeSafeStaff.csrfHeaders().
  window.BeSafeStaff = {
    csrfToken: function () { return meta ? meta.getAttribute("content") : ""; },
    csrfHeaders: function () { return { "X-CSRF-Token": meta ? meta.getAttribute("content") : "" }; }
  };
  // Forms marked data-confirm="question" ask before they are sent.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
})();
