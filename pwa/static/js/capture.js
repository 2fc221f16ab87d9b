// CareLens check flow: camera with framing guide and live hints, client-side downscale with
// EXIF orientation, XHR upload with progress and cancel, polling for the result, and an
// offline queue in IndexedDB sent by Background Sync (sw.js) or on the next open/online.
(function () {
  "use strict";

  var DB_NAME = "carelens";
  var STORE = "queued-checks";
  var SYNC_TAG = "carelens-checks";
  var POLL_MS = 700;

  function $(id) { return document.getElementById(id); }
  var i18n = ($("i18n") || document.createElement("template")).dataset;
  function csrf() { return window.CareLens && window.CareLens.csrfToken ? window.CareLens.csrfToken() : ""; }

  // ------------------------------------------------------------------ IndexedDB queue
  function openDb() {
    return new Promise(function (resolve, reject) {
      var req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = function () {
        req.result.createObjectStore(STORE, { keyPath: "id", autoIncrement: true });
      };
      req.onsuccess = function () { resolve(req.result); };
      req.onerror = function () { reject(req.error); };
    });
  }
  function tx(mode, fn) {
    return openDb().then(function (db) {
      return new Promise(function (resolve, reject) {
        var t = db.transaction(STORE, mode);
        var out = fn(t.objectStore(STORE));
        t.oncomplete = function () { resolve(out && out.result !== undefined ? out.result : out); };
        t.onerror = function () { reject(t.error); };
      });
    });
  }
  function queueCheck(kind, files) {
    var record = { kind: kind, csrf: csrf(), created: Date.now(),
      files: files.map(function (f) { return { name: f.name, type: f.type, blob: f.blob }; }) };
    return tx("readwrite", function (s) { return s.add(record); }).then(function () {
      if ("serviceWorker" in navigator && "SyncManager" in window) {
        return navigator.serviceWorker.ready.then(function (reg) {
          return reg.sync.register(SYNC_TAG);
        }).catch(function () {});
      }
    });
  }
  function queuedChecks() { return tx("readonly", function (s) { return s.getAll(); }); }
  function removeQueued(id) { return tx("readwrite", function (s) { return s.delete(id); }); }

  function formOf(files) {
    var form = new FormData();
    files.forEach(function (f) { form.append("file", f.blob, f.name); });
    return form;
  }

  // Sends every queued check once; the lock keeps this page and the service worker's sync
  // handler from sending the same check twice.
  function flushQueue() {
    if (!navigator.onLine) return Promise.resolve([]);
    var run = function () {
      return queuedChecks().then(function (items) {
        var sent = [];
        return items.reduce(function (p, item) {
          return p.then(function () {
            return fetch("/api/v1/checks/" + item.kind + "?wait=false", {
              method: "POST", body: formOf(item.files), credentials: "same-origin",
              headers: { "x-csrftoken": csrf() || item.csrf, "accept": "application/json" },
            }).then(function (r) {
              if (r.status >= 500 || r.status === 429) return null; // keep it for later
              return removeQueued(item.id).then(function () { return r.ok ? r.json() : null; });
            }).then(function (body) { if (body && body.id) sent.push(body); })
              .catch(function () {});
          });
        }, Promise.resolve()).then(function () { return sent; });
      });
    };
    return (navigator.locks ? navigator.locks.request("carelens-queue", run) : run())
      .then(function (sent) { sent.forEach(showSent); return sent; });
  }

  function showSent(check) {
    var list = $("queued-list");
    var box = $("queued");
    if (!list || !box) return;
    box.hidden = false;
    list.querySelectorAll("[data-queued]").forEach(function (el) { el.remove(); });
    $("queued-text").textContent = i18n.sending || "";
    var li = document.createElement("li");
    var a = document.createElement("a");
    a.href = "/checks/" + check.id;
    a.textContent = i18n.sentItem || "Open the result";
    li.appendChild(a);
    list.appendChild(li);
    pollUntilDone(check.id, function (done) {
      if (done.status === "done" || done.status === "failed") {
        a.textContent = (i18n.sentItem || "Open the result");
        a.dataset.status = done.status;
        li.classList.add("ready");
      }
    }, true);
  }

  function renderQueued() {
    return queuedChecks().then(function (items) {
      var box = $("queued");
      if (!box || !items.length) return;
      box.hidden = false;
      var list = $("queued-list");
      list.textContent = "";
      items.forEach(function (item) {
        var li = document.createElement("li");
        li.textContent = i18n.queuedItem + " · " + new Date(item.created).toLocaleTimeString();
        li.dataset.queued = "1";
        list.appendChild(li);
      });
    }).catch(function () {});
  }

  // ------------------------------------------------------------------ images
  function downscale(blob, maxSide) {
    if (!/^image\//.test(blob.type) || !window.createImageBitmap) return Promise.resolve(blob);
    // imageOrientation 'from-image' applies the EXIF rotation before we draw.
    return createImageBitmap(blob, { imageOrientation: "from-image" }).then(function (bmp) {
      var scale = Math.min(1, maxSide / Math.max(bmp.width, bmp.height));
      var canvas = document.createElement("canvas");
      canvas.width = Math.round(bmp.width * scale);
      canvas.height = Math.round(bmp.height * scale);
      canvas.getContext("2d").drawImage(bmp, 0, 0, canvas.width, canvas.height);
      bmp.close && bmp.close();
      return new Promise(function (resolve) {
        canvas.toBlob(function (out) { resolve(out || blob); }, "image/jpeg", 0.9);
      });
    }).catch(function () { return blob; });
  }

  // Mean brightness and a Laplacian-variance sharpness on a small grey frame.
  function frameQuality(ctx, w, h) {
    var px = ctx.getImageData(0, 0, w, h).data;
    var grey = new Float32Array(w * h);
    var sum = 0;
    for (var i = 0, j = 0; i < px.length; i += 4, j++) {
      grey[j] = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
      sum += grey[j];
    }
    var mean = sum / grey.length;
    var lsum = 0, lsq = 0, n = 0;
    for (var y = 1; y < h - 1; y++) {
      for (var x = 1; x < w - 1; x++) {
        var k = y * w + x;
        var lap = grey[k - 1] + grey[k + 1] + grey[k - w] + grey[k + w] - 4 * grey[k];
        lsum += lap; lsq += lap * lap; n++;
      }
    }
    var lmean = lsum / n;
    return { brightness: mean, sharpness: lsq / n - lmean * lmean };
  }

  // ------------------------------------------------------------------ upload + progress
  var currentXhr = null;
  var polling = null;
  var currentCheckId = null;
  var cameraReady = false;

  function setStage(label, value) {
    $("upload").hidden = false;
    $("progress-label").textContent = value === null ? label : label + " " + value + " %";
    var bar = $("upload-progress");
    if (value === null) { bar.removeAttribute("value"); } else { bar.value = value; bar.textContent = value + " %"; }
  }

  function showError(message) {
    var box = $("capture-error");
    box.textContent = message;
    box.hidden = false;
    $("upload").hidden = true;
    $("check-form").hidden = false;
    if (cameraReady) $("camera").hidden = false;
  }

  function pollUntilDone(id, onUpdate, quiet) {
    var timer = setInterval(function () {
      fetch("/api/v1/checks/" + id, { credentials: "same-origin", headers: { accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) {
          if (!body) return;
          if (body.status === "done" || body.status === "failed") clearInterval(timer);
          onUpdate(body);
        }).catch(function () { if (quiet) return; });
    }, POLL_MS);
    return timer;
  }

  function upload(kind, files) {
    $("capture-error").hidden = true;
    if (!navigator.onLine) {
      return queueCheck(kind, files).then(renderQueued).then(function () {
        $("upload").hidden = true;
      });
    }
    setStage(i18n.uploading, 0);
    $("upload-status").textContent = "";
    var xhr = new XMLHttpRequest();
    currentXhr = xhr;
    xhr.open("POST", "/api/v1/checks/" + kind + "?wait=false");
    xhr.setRequestHeader("x-csrftoken", csrf());
    xhr.setRequestHeader("accept", "application/json");
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) setStage(i18n.uploading, Math.round(100 * e.loaded / e.total));
    };
    xhr.onload = function () {
      currentXhr = null;
      var body = {};
      try { body = JSON.parse(xhr.responseText || "{}"); } catch (err) { body = {}; }
      if (xhr.status >= 400) { showError(body.error || i18n.networkError); return; }
      currentCheckId = body.id;
      setStage(i18n.analysing, null);
      $("upload-status").textContent = i18n.queuedStatus;
      polling = pollUntilDone(body.id, function (check) {
        if (check.status === "done") { window.location.assign("/checks/" + check.id); }
        else if (check.status === "failed") { showError((i18n.failed || "") + " " + (check.error || "")); }
        else { $("upload-status").textContent = check.status === "running" ? i18n.analysing : i18n.queuedStatus; }
      });
    };
    xhr.onerror = function () {
      currentXhr = null;
      // The connection dropped during the upload: keep the check for later.
      queueCheck(kind, files).then(renderQueued).then(function () { $("upload").hidden = true; });
    };
    xhr.onabort = function () { currentXhr = null; };
    xhr.send(formOf(files));
  }

  function cancel() {
    if (currentXhr) currentXhr.abort();
    if (polling) clearInterval(polling);
    polling = null;
    if (currentCheckId) {
      fetch("/api/v1/checks/" + currentCheckId, { method: "DELETE", credentials: "same-origin",
        headers: { "x-csrftoken": csrf() } }).catch(function () {});
      currentCheckId = null;
    }
    $("upload").hidden = true;
    $("check-form").hidden = false;
    if (cameraReady) $("camera").hidden = false;
    $("capture-error").hidden = true;
    $("upload-status").textContent = i18n.cancelled;
  }

  // ------------------------------------------------------------------ camera
  function startCamera(section, kind, maxSide) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return;
    var video = $("camera-video");
    var hint = $("camera-hint");
    var shot = $("camera-shot");
    var stream = null;
    var captured = null;
    var hintTimer = null;
    var small = document.createElement("canvas");
    small.width = 160; small.height = 120;
    var sctx = small.getContext("2d", { willReadFrequently: true });

    navigator.mediaDevices.getUserMedia({
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1920 }, height: { ideal: 1440 } },
      audio: false,
    }).then(function (s) {
      stream = s;
      video.srcObject = s;
      video.addEventListener("loadedmetadata", function () {
        // The viewfinder takes the camera's own shape, so the guide sits on the real frame.
        if (video.videoWidth && video.videoHeight) {
          video.parentNode.style.aspectRatio = video.videoWidth + " / " + video.videoHeight;
        }
      });
      section.hidden = false;
      cameraReady = true;
      var track = s.getVideoTracks()[0];
      var caps = track.getCapabilities ? track.getCapabilities() : {};
      if (caps.torch) {
        var torch = $("torch-button");
        torch.hidden = false;
        torch.addEventListener("click", function () {
          var on = torch.getAttribute("aria-pressed") !== "true";
          track.applyConstraints({ advanced: [{ torch: on }] }).then(function () {
            torch.setAttribute("aria-pressed", on ? "true" : "false");
          }).catch(function () {});
        });
      }
      var last = "";
      hintTimer = setInterval(function () {
        if (!video.videoWidth || captured) return;
        sctx.drawImage(video, 0, 0, small.width, small.height);
        var q = frameQuality(sctx, small.width, small.height);
        // Thresholds on a 160x120 grey frame, tuned on phone photos of paper and skin.
        var text = q.brightness < 50 ? i18n.tooDark : q.sharpness < 12 ? i18n.tooBlurry : i18n.looksGood;
        if (text !== last) { hint.textContent = text; last = text; }
        hint.dataset.brightness = q.brightness.toFixed(0);
        hint.dataset.sharpness = q.sharpness.toFixed(0);
      }, 500);
    }).catch(function () {
      hint.textContent = i18n.noCamera;
    });

    $("capture-button").addEventListener("click", function () {
      if (!video.videoWidth) return;
      var canvas = document.createElement("canvas");
      var scale = Math.min(1, maxSide / Math.max(video.videoWidth, video.videoHeight));
      canvas.width = Math.round(video.videoWidth * scale);
      canvas.height = Math.round(video.videoHeight * scale);
      canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
      canvas.toBlob(function (blob) {
        captured = blob;
        shot.src = URL.createObjectURL(blob);
        shot.hidden = false;
        $("capture-button").hidden = true;
        $("use-button").hidden = false;
        $("retake-button").hidden = false;
        $("use-button").focus();
      }, "image/jpeg", 0.9);
    });
    $("retake-button").addEventListener("click", function () {
      captured = null;
      shot.hidden = true;
      $("capture-button").hidden = false;
      $("use-button").hidden = true;
      $("retake-button").hidden = true;
    });
    $("use-button").addEventListener("click", function () {
      if (!captured) return;
      $("check-form").hidden = true;
      section.hidden = true;
      upload(kind, [{ name: "camera.jpg", type: "image/jpeg", blob: captured }]);
    });
    window.addEventListener("pagehide", function () {
      clearInterval(hintTimer);
      if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    });
  }

  // ------------------------------------------------------------------ wiring
  var section = $("camera");
  if (section) {
    var kind = section.dataset.kind;
    var maxSide = parseInt(section.dataset.maxSide, 10) || 1024;
    startCamera(section, kind, maxSide);
    $("cancel-button").addEventListener("click", cancel);
    $("check-form").addEventListener("submit", function (event) {
      var inputs = Array.prototype.slice.call(this.querySelectorAll("input[type=file]"));
      var picked = [];
      inputs.forEach(function (input) {
        Array.prototype.forEach.call(input.files || [], function (f) { picked.push(f); });
      });
      event.preventDefault();
      if (!picked.length) { showError(i18n.chooseFile); return; }
      Promise.all(picked.map(function (f) {
        var photo = /^image\//.test(f.type) && picked.length === 1;
        return (photo ? downscale(f, maxSide) : Promise.resolve(f)).then(function (blob) {
          var name = photo ? f.name.replace(/\.[^.]*$/, "") + ".jpg" : f.name;
          return { name: name, type: blob.type, blob: blob };
        });
      })).then(function (files) {
        this.hidden = true;
        section.hidden = true;
        upload(kind, files);
      }.bind(this));
    });
    renderQueued().then(flushQueue);
    window.addEventListener("online", function () { flushQueue(); });
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.addEventListener("message", function (event) {
        var data = event.data || {};
        if (data.type === "carelens-queued-sent" && data.check) {
          showSent(data.check);
        }
      });
    }
  } else {
    // Other pages still send what was queued while offline (retry on next open).
    if (window.indexedDB) { flushQueue().catch(function () {}); }
  }

  var pending = document.querySelector("[data-poll-check]");
  if (pending) {
    pollUntilDone(pending.dataset.pollCheck, function (check) {
      if (check.status === "done" || check.status === "failed") window.location.reload();
    });
  }
})();
