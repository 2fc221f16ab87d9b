// Admin console: confirmations before destructive actions, copy the reset link.
(function () {
  "use strict";
  document.querySelectorAll("form.confirm-form").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm") || "?")) event.preventDefault();
    });
  });
  document.querySelectorAll("button.confirm-button").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.getAttribute("data-confirm") || "?")) event.preventDefault();
    });
  });
  var copy = document.getElementById("copy-reset-link");
  var link = document.getElementById("reset-link");
  if (copy && link && navigator.clipboard) {
    copy.hidden = false;
    copy.addEventListener("click", function () {
      navigator.clipboard.writeText(link.value).then(function () { copy.textContent = "✓"; });
    });
  }
})();
