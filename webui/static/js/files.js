/*
 * The files page (/files). Plain JS, no build step, CSP-safe (text goes in as text).
 *
 * Uploads: each chosen or dropped file is sent on its own to POST /api/files (multipart, field
 * "file") with an XMLHttpRequest, whose upload progress events drive a <progress> bar. When the
 * uploads are over, the list and the usage indicator are fetched again from /files.
 * The page ships a plain upload form (POST /files/upload) for browsers without JavaScript; this
 * script turns it into the dropzone and takes over its submission, so nothing is sent twice.
 * Text files get a preview of their first lines from GET /api/files/{id}/preview.
 */
(function () {
  "use strict";

  var input = document.getElementById("file-input");
  var dropzone = document.getElementById("dropzone");
  var list = document.getElementById("upload-list");
  if (!input || !dropzone || !list) return;

  var maxBytes = Number(dropzone.getAttribute("data-max-bytes")) || 0;
  var active = 0;

  // From the plain form to the dropzone: the label becomes the button, the Upload button goes
  // (files are sent as soon as they are chosen or dropped).
  var form = document.getElementById("upload-form");
  // In an organisation's space (the workspace switch) a file counts against its quota.
  var uploadOrgId = form ? form.getAttribute("data-org-id") : null;
  var uploadUrl = uploadOrgId ? "/api/files?org_id=" + encodeURIComponent(uploadOrgId) : "/api/files";
  var submit = document.getElementById("upload-submit");
  var label = dropzone.querySelector("label[for='file-input']");
  var hint = dropzone.querySelector(".drop-hint");
  input.classList.add("visually-hidden");
  if (label) {
    label.classList.remove("visually-hidden");
    label.setAttribute("role", "button");
    label.classList.add("upload-button");
  }
  if (hint) hint.hidden = false;
  if (submit) submit.hidden = true;

  function csrfToken() {
    return window.Multinotes ? window.Multinotes.csrfToken() : "";
  }

  function announce(text) {
    var box = document.getElementById("files-announcer");
    box.textContent = "";
    window.setTimeout(function () { box.textContent = text; }, 50);
  }

  function size(bytes) {
    var units = ["bytes", "KB", "MB", "GB"];
    var value = bytes;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? value + " bytes" : value.toFixed(1).replace(/\.0$/, "") + " " + units[unit];
  }

  function row(file) {
    var item = document.createElement("li");
    item.setAttribute("data-state", "uploading");
    var name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = file.name + " (" + size(file.size) + ")";
    var state = document.createElement("span");
    state.className = "upload-state";
    state.textContent = "0%";
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Uploading " + file.name);
    item.appendChild(name);
    item.appendChild(state);
    item.appendChild(bar);
    list.hidden = false;
    list.prepend(item);
    return { item: item, state: state, bar: bar };
  }

  function failed(view, message) {
    view.item.setAttribute("data-state", "failed");
    view.bar.remove();
    view.state.textContent = message;
    view.state.setAttribute("role", "alert");
  }

  function problemText(xhr) {
    try {
      var error = JSON.parse(xhr.responseText).error || {};
      var fields = error.fields || {};
      var detail = Object.keys(fields).map(function (k) { return fields[k]; }).join("; ");
      return (error.message || "The upload failed.") + (detail && error.message !== detail ? " (" + detail + ")" : "");
    } catch (e) {
      return "The upload failed (" + xhr.status + ").";
    }
  }

  function upload(file) {
    var view = row(file);
    if (maxBytes && file.size > maxBytes) {
      failed(view, "Not uploaded: larger than " + size(maxBytes) + ".");
      return Promise.resolve(false);
    }
    return new Promise(function (resolve) {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", uploadUrl);
      xhr.setRequestHeader("X-CSRF-Token", csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (evt) {
        if (!evt.lengthComputable) return;
        var percent = Math.round((evt.loaded / evt.total) * 100);
        view.bar.value = percent;
        view.state.textContent = percent + "%";
      });
      xhr.addEventListener("load", function () {
        if (xhr.status === 201) {
          view.bar.value = 100;
          view.item.setAttribute("data-state", "done");
          view.state.textContent = "Uploaded";
          resolve(true);
        } else {
          failed(view, "Not uploaded: " + problemText(xhr));
          resolve(false);
        }
      });
      xhr.addEventListener("error", function () {
        failed(view, "Not uploaded: the server could not be reached.");
        resolve(false);
      });
      var form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
  }

  function uploadAll(files) {
    if (!files.length) return;
    active += files.length;
    announce("Uploading " + files.length + " file" + (files.length === 1 ? "" : "s") + ".");
    // One after another: the quota is checked per upload, and progress stays readable.
    var chain = Promise.resolve();
    var done = 0;
    files.forEach(function (file) {
      chain = chain.then(function () { return upload(file); }).then(function (ok) {
        if (ok) done += 1;
      });
    });
    chain.then(function () {
      active -= files.length;
      announce(done + " of " + files.length + " uploaded.");
      if (done) refresh();
    });
  }

  /** The list and the usage indicator as the server now sees them. */
  function refresh() {
    fetch("/files", { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        ["files-usage-slot", "files-section"].forEach(function (id) {
          var now = document.getElementById(id);
          var next = fresh.getElementById(id);
          if (now && next) now.replaceWith(document.adoptNode(next));
        });
        loadTextPreviews();
      }, function () {});
  }

  function uploadChosen() {
    var files = Array.prototype.slice.call(input.files || []);
    input.value = "";
    uploadAll(files);
  }

  input.addEventListener("change", uploadChosen);
  if (form) {
    form.addEventListener("submit", function (evt) {
      evt.preventDefault(); // never the plain post: chosen files go (or went) to /api/files
      uploadChosen();
    });
  }

  ["dragenter", "dragover"].forEach(function (name) {
    dropzone.addEventListener(name, function (evt) {
      if (!evt.dataTransfer || Array.prototype.indexOf.call(evt.dataTransfer.types, "Files") < 0) return;
      evt.preventDefault();
      dropzone.classList.add("drop-over");
    });
  });
  dropzone.addEventListener("dragleave", function (evt) {
    if (!dropzone.contains(evt.relatedTarget)) dropzone.classList.remove("drop-over");
  });
  dropzone.addEventListener("drop", function (evt) {
    evt.preventDefault();
    dropzone.classList.remove("drop-over");
    uploadAll(Array.prototype.slice.call((evt.dataTransfer && evt.dataTransfer.files) || []));
  });

  window.addEventListener("beforeunload", function (evt) {
    if (active > 0) {
      evt.preventDefault();
      evt.returnValue = "";
    }
  });

  // -- text previews ---------------------------------------------------------------------------

  function loadTextPreviews() {
    Array.prototype.forEach.call(document.querySelectorAll("pre[data-preview]"), function (pre) {
      var url = pre.getAttribute("data-preview");
      pre.removeAttribute("data-preview");
      if (!/^\/api\/files\/[A-Za-z0-9_-]+\/preview$/.test(url)) return;
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (info) {
          pre.textContent = info && typeof info.text === "string" ? info.text.slice(0, 600) : "(no preview)";
        }, function () { pre.textContent = "(no preview)"; });
    });
  }

  loadTextPreviews();
})();
