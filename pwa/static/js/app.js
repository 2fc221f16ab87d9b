// CareLens app shell: service worker, install prompt, offline banner, time zone hint.
(function () {
  "use strict";

  if ("serviceWorker" in navigator) {
    window.addEventListener("load", function () {
      navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function (err) {
        console.warn("service worker registration failed", err);
      });
    });
  }

  var deferredPrompt = null;
  var installButton = document.getElementById("install-button");
  window.addEventListener("beforeinstallprompt", function (event) {
    event.preventDefault();
    deferredPrompt = event;
    if (installButton) installButton.hidden = false;
  });
  if (installButton) {
    installButton.addEventListener("click", function () {
      if (!deferredPrompt) return;
      deferredPrompt.prompt();
      deferredPrompt.userChoice.finally(function () {
        deferredPrompt = null;
        installButton.hidden = true;
      });
    });
  }

  var banner = document.getElementById("offline-banner");
  function updateOnline() {
    if (banner) banner.hidden = navigator.onLine;
  }
  window.addEventListener("online", updateOnline);
  window.addEventListener("offline", updateOnline);
  updateOnline();

  // Times in the device's own zone and the page's language. Without JavaScript the server's
  // text stays: the profile's zone, with its name.
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (el.getAttribute("datetime") && !isNaN(when)) {
      el.textContent = when.toLocaleString(document.documentElement.lang || undefined, {
        dateStyle: "medium", timeStyle: "short",
      });
    }
  });

  document.querySelectorAll("[data-detect-timezone]").forEach(function (input) {
    if ((!input.value || input.value === "UTC") && window.Intl) {
      input.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    }
  });

  // The CSRF token for fetch() calls made by page scripts (forms carry it as a field).
  window.CareLens = window.CareLens || {};
  window.CareLens.csrfToken = function () {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  };
})();
