// Push subscription on the settings page: subscribe/unsubscribe this device, send a test.
(function () {
  "use strict";
  var panel = document.getElementById("push-panel");
  if (!panel) return;
  var status = document.getElementById("push-status");
  var messages = document.getElementById("push-messages").dataset;
  var subscribeButton = document.getElementById("push-subscribe");
  var unsubscribeButton = document.getElementById("push-unsubscribe");
  var testButton = document.getElementById("push-test");

  function api(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "x-csrftoken": CareLens.csrfToken() },
      body: body ? JSON.stringify(body) : undefined,
    }).then(function (response) {
      if (!response.ok && response.status !== 204) throw new Error("HTTP " + response.status);
      return response.status === 204 ? null : response.json();
    });
  }

  function base64UrlToBytes(text) {
    var padded = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(padded);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  function show(subscribed) {
    panel.dataset.state = subscribed ? "on" : "off";
    status.textContent = subscribed ? messages.on : messages.off;
    subscribeButton.hidden = subscribed;
    unsubscribeButton.hidden = !subscribed;
    testButton.hidden = !subscribed;
  }

  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    status.hidden = true;
    document.getElementById("push-unsupported").hidden = false;
    return;
  }

  function registration() {
    return navigator.serviceWorker.register("/sw.js", { scope: "/" }).then(function () {
      return navigator.serviceWorker.ready;
    });
  }

  registration().then(function (reg) {
    return reg.pushManager.getSubscription();
  }).then(function (sub) {
    if (Notification.permission === "denied") status.textContent = messages.denied;
    show(Boolean(sub));
  }).catch(function () { show(false); });

  subscribeButton.addEventListener("click", function () {
    subscribeButton.disabled = true;
    Notification.requestPermission().then(function (permission) {
      if (permission !== "granted") throw new Error("denied");
      return Promise.all([registration(), api("GET", "/api/v1/push/vapid-public-key")]);
    }).then(function (results) {
      return results[0].pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: base64UrlToBytes(results[1].public_key),
      });
    }).then(function (sub) {
      return api("POST", "/api/v1/push/subscriptions", sub.toJSON());
    }).then(function () {
      show(true);
    }).catch(function (err) {
      status.textContent = err && err.message === "denied" ? messages.denied : messages.failed;
    }).finally(function () { subscribeButton.disabled = false; });
  });

  unsubscribeButton.addEventListener("click", function () {
    registration().then(function (reg) {
      return reg.pushManager.getSubscription();
    }).then(function (sub) {
      if (!sub) return null;
      return api("DELETE", "/api/v1/push/subscriptions", { endpoint: sub.endpoint })
        .then(function () { return sub.unsubscribe(); });
    }).then(function () { show(false); })
      .catch(function () { status.textContent = messages.failed; });
  });

  testButton.addEventListener("click", function () {
    api("POST", "/api/v1/push/test").then(function () {
      status.textContent = messages.sent;
    }).catch(function () { status.textContent = messages.failed; });
  });
})();
