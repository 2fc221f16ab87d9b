// Vitals pages: local times for readings, and a quick check before a typo is sent.
(function () {
  "use strict";
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) {
      el.textContent = when.toLocaleString(document.documentElement.lang || undefined, {
        dateStyle: "medium", timeStyle: "short",
      });
    }
  });
  // The form's "measured earlier" field is local time; it must not be in the future.
  var when = document.getElementById("measured_at");
  if (when && !when.max) {
    var now = new Date();
    now.setMinutes(now.getMinutes() - now.getTimezoneOffset());
    when.max = now.toISOString().slice(0, 16);
  }
})();
