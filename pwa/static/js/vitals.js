// Vitals pages: a quick check before a typo is sent (app.js shows the times in local time).
(function () {
  "use strict";
  // The form's "measured earlier" field is local time; it must not be in the future.
  var when = document.getElementById("measured_at");
  if (when && !when.max) {
    var now = new Date();
    now.setMinutes(now.getMinutes() - now.getTimezoneOffset());
    when.max = now.toISOString().slice(0, 16);
  }
})();
