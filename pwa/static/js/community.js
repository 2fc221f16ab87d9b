// Community: like without a page reload, and a confirmation before deleting.
(function () {
  "use strict";
  document.querySelectorAll("form.like-form").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.fetch) return;
      event.preventDefault();
      var button = form.querySelector("button");
      button.disabled = true;
      fetch("/api/v1/posts/" + form.getAttribute("data-post") + "/like", {
        method: "POST", credentials: "same-origin",
        headers: { "x-csrftoken": window.CareLens.csrfToken(), "accept": "application/json" }
      }).then(function (r) { return r.ok ? r.json() : Promise.reject(r); })
        .then(function (body) {
          button.setAttribute("aria-pressed", body.liked ? "true" : "false");
          form.querySelector(".like-count").textContent = String(body.like_count);
        })
        .catch(function () { form.submit(); })
        .finally(function () { button.disabled = false; });
    });
  });
  document.querySelectorAll("form.confirm-form").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm") || "?")) event.preventDefault();
    });
  });
})();
