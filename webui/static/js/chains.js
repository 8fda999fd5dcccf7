/* Chains (/chains): the step editor's "Add a step", uploading a document from a chain's page,
 * and a run's page following the run live.
 *
 *   GET /api/chains/runs/{id}/stream -> text/event-stream:
 *     run {..}, step {position, model, message_id, status}, delta {position, text},
 *     step_done {position, status, html, cost, error_message}, run_done {status, cost, ...}, end
 *
 * Every page works without this script: the editor offers one blank step, the run form takes a
 * document already in Files, and the run page shows the run as it was when loaded.
 */
(function () {
  "use strict";
  if (!window.Multinotes) return;

  // --- the step editor -------------------------------------------------------
  var editor = document.querySelector("[data-chain-editor]");
  if (editor) {
    var list = editor.querySelector("#chain-steps");
    var add = editor.querySelector("[data-add-step]");
    var MAX = 10;
    add.hidden = false;
    add.addEventListener("click", function () {
      var rows = list.querySelectorAll("[data-step-row]");
      if (rows.length >= MAX) { add.disabled = true; return; }
      var last = rows[rows.length - 1];
      var copy = last.cloneNode(true);
      var from = "step-" + (rows.length - 1) + "-";
      var to = "step-" + rows.length + "-";
      copy.querySelectorAll("[id], [name], [for]").forEach(function (el) {
        ["id", "name", "for"].forEach(function (attr) {
          var value = el.getAttribute(attr);
          if (value && value.indexOf(from) === 0) el.setAttribute(attr, to + value.slice(from.length));
        });
      });
      copy.querySelectorAll("textarea, input").forEach(function (el) { el.value = ""; });
      copy.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
      copy.querySelectorAll(".field-error").forEach(function (el) { el.remove(); });
      copy.querySelector("[data-step-number]").textContent = String(rows.length + 1);
      list.appendChild(copy);
      if (rows.length + 1 >= MAX) add.disabled = true;
      var prompt = copy.querySelector("textarea");
      if (prompt) prompt.focus();
    });
  }

  // --- a document for a run ---------------------------------------------------
  var upload = document.querySelector("[data-chain-upload]");
  if (upload) {
    var uploadLabel = document.querySelector("[data-upload-label]");
    var select = document.getElementById("run-file");
    var uploadStatus = document.getElementById("run-upload-status");
    uploadLabel.hidden = false;
    upload.addEventListener("change", async function () {
      var file = upload.files && upload.files[0];
      if (!file) return;
      var body = new FormData();
      body.append("file", file, file.name);
      uploadStatus.textContent = "Uploading " + file.name + "…";
      var headers = {};
      var token = window.Multinotes.csrfToken();
      if (token) headers["X-CSRF-Token"] = token;
      try {
        var response = await fetch("/api/files", {
          method: "POST", body: body, headers: headers, credentials: "same-origin",
        });
        var data = await response.json().catch(function () { return {}; });
        if (!response.ok) {
          var error = data.error || {};
          var fields = error.fields ? " " + Object.values(error.fields).join("; ") : "";
          uploadStatus.textContent = (error.message || "The upload failed.") + fields;
          return;
        }
        var option = document.createElement("option");
        option.value = data.id;
        option.textContent = data.name;
        select.appendChild(option);
        select.value = data.id;
        uploadStatus.textContent = data.name + " is uploaded: the run reads its text.";
      } catch (e) {
        uploadStatus.textContent = "The upload failed: the connection was lost.";
      }
    });
  }

  // --- a run, live ------------------------------------------------------------
  var page = document.querySelector("[data-chain-run]");
  if (!page || page.getAttribute("data-run-status") !== "running") return;
  var runId = page.getAttribute("data-chain-run");
  var outcome = document.getElementById("run-status");
  var stopForm = document.querySelector("[data-stop-form]");

  function stepOf(position) { return document.getElementById("step-" + position); }

  function setStatus(li, status) {
    li.setAttribute("data-step-status", status);
    li.querySelector("[data-status-label]").textContent = status;
  }

  if (stopForm) {
    stopForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      var button = stopForm.querySelector("button");
      button.disabled = true;
      button.textContent = "Stopping…";
      var response = await window.Multinotes.request("POST", "/api/chains/runs/" + runId + "/cancel");
      if (!response.ok) { button.disabled = false; button.textContent = "Stop"; }
    });
  }

  async function follow() {
    var response = await window.Multinotes.request("GET", "/api/chains/runs/" + runId + "/stream");
    if (!response.ok) { outcome.textContent = "The run could not be followed; reload the page."; return; }
    var ended = false;
    await window.Multinotes.readEvents(response, function (name, data) {
      var li = data && data.position !== undefined ? stepOf(data.position) : null;
      if (name === "step" && li) {
        setStatus(li, data.status);
        li.querySelector("[data-answer]").textContent = "";
      } else if (name === "delta" && li) {
        li.querySelector("[data-answer]").textContent += data.text;
      } else if (name === "step_done" && li) {
        setStatus(li, data.status);
        // Sanitised on the server (the same renderer as the chat's answers).
        li.querySelector("[data-answer]").innerHTML = data.html;
        if (data.cost) li.querySelector("[data-cost]").textContent = " · " + data.cost + " credits";
        if (data.error_message) {
          var note = document.createElement("p");
          note.className = "form-error";
          note.setAttribute("data-step-error", "");
          note.textContent = data.error_message;
          li.appendChild(note);
        }
      } else if (name === "run_done") {
        ended = true;
        page.setAttribute("data-run-status", data.status);
        var words = { complete: "Finished: every step answered.", stopped: "Stopped.", failed: "Failed" };
        outcome.textContent = (words[data.status] || data.status) +
          (data.status === "failed" && data.error_message ? ": " + data.error_message : "") +
          " " + data.cost + " credits.";
        if (stopForm) stopForm.hidden = true;
      }
    });
    // The page as the server renders an ended run (with "Re-run from here").
    if (ended) window.setTimeout(function () { window.location.reload(); }, 1500);
  }

  follow().catch(function () {
    outcome.textContent = "The connection was lost; reload the page to see the run.";
  });
})();
