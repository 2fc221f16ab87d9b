// Nearest places: ask the browser for its position, then load /places?lat=&lon=&kind=
// (the page itself renders the list, so it also works without JavaScript).
(function () {
  "use strict";
  var button = document.getElementById("locate-button");
  var status = document.getElementById("locate-status");
  var form = document.getElementById("places-form");
  if (!button || !form || !("geolocation" in navigator)) return;
  button.hidden = false;

  function say(text) { if (status) status.textContent = text; }

  button.addEventListener("click", function () {
    say(button.getAttribute("data-wait") || "…");
    button.disabled = true;
    navigator.geolocation.getCurrentPosition(function (pos) {
      form.querySelector("#lat").value = pos.coords.latitude.toFixed(6);
      form.querySelector("#lon").value = pos.coords.longitude.toFixed(6);
      form.submit();
    }, function (err) {
      button.disabled = false;
      say(err && err.code === 1 ? button.getAttribute("data-denied") : button.getAttribute("data-failed"));
    }, { enableHighAccuracy: false, timeout: 15000, maximumAge: 300000 });
  });

  // Changing the kind after a search repeats it for the new kind.
  var kind = form.querySelector("#kind");
  if (kind) kind.addEventListener("change", function () {
    if (form.querySelector("#lat").value && form.querySelector("#lon").value) form.submit();
  });
})();
