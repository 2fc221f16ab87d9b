// CareLens service worker: caches the app shell, serves /offline when the network is gone.
// Push, notification clicks and background sync of queued checks are added in their own sections.
const SHELL_CACHE = "carelens-shell-v1";
const SHELL_URLS = [
  "/offline",
  "/static/css/app.css",
  "/static/js/app.js",
  "/static/icons/icon-192.png",
  "/manifest.webmanifest",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL_CACHE).then((cache) => cache.addAll(SHELL_URLS)));
  self.skipWaiting();
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys().then((keys) =>
      Promise.all(keys.filter((k) => k.startsWith("carelens-shell-") && k !== SHELL_CACHE)
        .map((k) => caches.delete(k)))
    ).then(() => self.clients.claim())
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    // Pages are always fresh from the network; the offline page stands in when it is down.
    event.respondWith(fetch(request).catch(() => caches.match("/offline")));
    return;
  }
  if (url.pathname.startsWith("/static/")) {
    // Shell assets: cache first, refreshed in the background.
    event.respondWith(
      caches.open(SHELL_CACHE).then(async (cache) => {
        const cached = await cache.match(request);
        const network = fetch(request).then((response) => {
          if (response.ok) cache.put(request, response.clone());
          return response;
        }).catch(() => cached);
        return cached || network;
      })
    );
  }
});

// ---- Push notifications and notification clicks (vitals/push) ----
// A push carries JSON {title, body, url, tag, silent}; the click opens (or focuses) that page.
self.addEventListener("push", (event) => {
  let message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch (err) {
    message = { body: event.data ? event.data.text() : "" };
  }
  const title = message.title || "CareLens";
  const url = new URL(message.url || "/", self.location.origin);
  const options = {
    body: message.body || "",
    tag: message.tag || undefined,
    silent: Boolean(message.silent),
    icon: "/static/icons/icon-192.png",
    badge: "/static/icons/icon-192.png",
    // Only same-origin pages are ever opened from a notification.
    data: { url: url.origin === self.location.origin ? url.pathname + url.search : "/" },
  };
  event.waitUntil(self.registration.showNotification(title, options));
});

async function openNotificationTarget(path) {
  const target = new URL(path || "/", self.location.origin).href;
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  for (const client of windows) {
    if (new URL(client.url).origin !== self.location.origin) continue;
    if (client.url === target) return client.focus();
    if ("navigate" in client) {
      const navigated = await client.navigate(target).catch(() => null);
      if (navigated) return navigated.focus().catch(() => navigated);
    }
  }
  return self.clients.openWindow(target);
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const path = (event.notification.data && event.notification.data.url) || "/";
  const opening = openNotificationTarget(path);
  try {
    event.waitUntil(opening);
  } catch (err) {
    // A synthetic event (DevTools, tests) cannot extend its lifetime; the page still opens.
  }
});
// ---- end push ----

// ---------------------------------------------------------------- background sync: queued checks
// capture.js stores checks taken offline in IndexedDB (carelens / queued-checks) and registers
// the "carelens-checks" sync tag; here they are sent once the browser is online again. The
// Web Lock keeps this and an open page from sending the same check twice.
const CHECK_QUEUE_DB = "carelens";
const CHECK_QUEUE_STORE = "queued-checks";

function checkQueueDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(CHECK_QUEUE_DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(CHECK_QUEUE_STORE, { keyPath: "id", autoIncrement: true });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function checkQueueRequest(mode, fn) {
  return checkQueueDb().then((db) => new Promise((resolve, reject) => {
    const t = db.transaction(CHECK_QUEUE_STORE, mode);
    const req = fn(t.objectStore(CHECK_QUEUE_STORE));
    t.oncomplete = () => resolve(req.result);
    t.onerror = () => reject(t.error);
  }));
}

async function sendQueuedChecks() {
  const items = await checkQueueRequest("readonly", (s) => s.getAll());
  let retry = false;
  for (const item of items) {
    const form = new FormData();
    item.files.forEach((f) => form.append("file", f.blob, f.name));
    let response;
    try {
      response = await fetch(`/api/v1/checks/${item.kind}?wait=false`, {
        method: "POST", body: form, credentials: "same-origin",
        headers: { "x-csrftoken": item.csrf, accept: "application/json" },
      });
    } catch (err) {
      retry = true;
      continue;
    }
    if (response.status >= 500 || response.status === 429) { retry = true; continue; }
    await checkQueueRequest("readwrite", (s) => s.delete(item.id));
    const body = response.ok ? await response.json() : null;
    const clients = await self.clients.matchAll({ type: "window" });
    clients.forEach((c) => c.postMessage({ type: "carelens-queued-sent", check: body }));
  }
  // A rejected promise asks the browser to retry the sync later.
  if (retry) throw new Error("some queued checks could not be sent yet");
}

self.addEventListener("sync", (event) => {
  if (event.tag !== "carelens-checks") return;
  const run = () => sendQueuedChecks();
  event.waitUntil(self.navigator && self.navigator.locks ? self.navigator.locks.request("carelens-queue", run) : run());
});
