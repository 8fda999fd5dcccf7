/*
 * The note editor (/notes/{id}). Plain JS, no build step, CSP-safe: the only HTML inserted from
 * a response is Markdown rendered and sanitised by the server (the `html` of a re-run's `done`
 * event); streamed text goes in as text. The live preview is htmx (hx-post="/notes/preview" on
 * the textarea).
 *
 * Autosave: a pause in typing (or Ctrl+S, or leaving the tab or the page) sends
 *   PATCH /api/documents/{id}  {version, title?, content?}
 * with the version the text was based on, as a keepalive request, so a save started as the page
 * goes away still arrives. Until the server has the text, it is also kept in localStorage (a
 * draft per note); a note opened with a draft the server does not have offers it back. A 409 `stale_version` (saved elsewhere meanwhile)
 * stops autosaving and shows the conflict banner with their text: "Keep mine" saves ours on top
 * of their version, "Take theirs" loads theirs and keeps ours on the page to copy. Nothing the
 * user typed is ever thrown away without them seeing it.
 *
 * While the note is edited together (js/collab.js: live, or connecting/reconnecting to that), the
 * text is saved by the server after a pause (Ctrl+S: at once) and this page only hears of it
 * (`collab:saved`); titles still go out as a PATCH. If the session never connects
 * (`collab:ended`), the text goes over REST as above.
 *
 * Re-run: POST /api/documents/{id}/rerun {models} streams SSE events like a prompt (start,
 * delta, error, done, end); each new answer is shown beside the saved one.
 */
(function () {
  "use strict";

  var page = document.getElementById("note-page");
  if (!page) return;

  var SAVE_DELAY = 800;
  var RETRY_DELAY = 4000;

  var documentId = page.getAttribute("data-document-id");
  var canEdit = page.getAttribute("data-can-edit") === "true";
  var titleBox = document.getElementById("note-title");
  var contentBox = document.getElementById("note-content");
  var statusBox = document.getElementById("save-status");

  function $(id) {
    return document.getElementById(id);
  }

  var request = window.Multinotes.request;
  // Browsers cap the bodies of keepalive requests in flight at 64 KiB in all.
  var KEEPALIVE_LIMIT = 60000;

  function patchNote(body) {
    var json = JSON.stringify(body);
    var headers = { Accept: "application/json", "Content-Type": "application/json" };
    var token = window.Multinotes.csrfToken();
    if (token) headers["X-CSRF-Token"] = token;
    return fetch("/api/documents/" + encodeURIComponent(documentId), {
      method: "PATCH",
      headers: headers,
      body: json,
      credentials: "same-origin",
      keepalive: new Blob([json]).size < KEEPALIVE_LIMIT,
    });
  }

  function problemOf(response) {
    return response.json().then(
      function (body) {
        var error = (body && body.error) || {};
        var fields = error.fields || {};
        var details = Object.keys(fields).map(function (name) { return name + " " + fields[name]; });
        return {
          status: response.status,
          code: error.code,
          message: error.message || "Something went wrong (" + response.status + ").",
          details: details,
          current: error.current,
        };
      },
      function () {
        return { status: response.status, message: "Something went wrong (" + response.status + ")." };
      }
    );
  }

  // -- phones: write or preview --------------------------------------------------------------

  var editor = $("editor");
  if (editor && canEdit) {
    editor.setAttribute("data-pane", "write");
    editor.addEventListener("click", function (evt) {
      var button = evt.target.closest ? evt.target.closest("[data-pane]") : null;
      if (!button || button === editor) return;
      var pane = button.getAttribute("data-pane");
      editor.setAttribute("data-pane", pane);
      Array.prototype.forEach.call(editor.querySelectorAll(".pane-switch [data-pane]"), function (b) {
        var on = b === button;
        b.setAttribute("aria-pressed", on ? "true" : "false");
        b.classList.toggle("outline", !on);
      });
    });
  }

  if (!canEdit || !titleBox || !contentBox) return;

  // -- autosave --------------------------------------------------------------------------------

  var version = Number(page.getAttribute("data-version"));
  var saved = { title: titleBox.value, content: contentBox.value };
  var timer = null;
  var saving = null; // the request in flight
  var conflict = null; // the server's current note while the banner is up

  function setStatus(state, text) {
    statusBox.setAttribute("data-state", state);
    // Rewriting the same words would make screen readers announce them again on every pause.
    if (statusBox.textContent !== text) statusBox.textContent = text;
  }

  // While the note is edited together (js/collab.js), or that session is connecting, the
  // session owns the text and the server saves it: only the title still goes out from here.
  function collab() {
    return window.multinotesCollab || null;
  }

  function collabOwnsText() {
    return !!(collab() && collab().owns());
  }

  function textChanged() {
    return !collabOwnsText() && contentBox.value !== saved.content;
  }

  /** Text the live session has that the server has not saved yet. */
  function sessionUnsaved() {
    return collabOwnsText() && contentBox.value !== saved.content;
  }

  /** What this page must still send over REST. */
  function changed() {
    return titleBox.value.trim() !== saved.title || textChanged();
  }

  /** What the server does not have yet, whoever sends it (this page or the live session). */
  function unsaved() {
    return titleBox.value.trim() !== saved.title || contentBox.value !== saved.content;
  }

  function schedule(delay) {
    window.clearTimeout(timer);
    timer = window.setTimeout(save, delay === undefined ? SAVE_DELAY : delay);
  }

  // -- the draft kept in this browser until the server has it -----------------------------------

  var DRAFT_KEY = "multinotes:note-draft:" + documentId;

  function keepDraft() {
    try {
      if (unsaved()) {
        window.localStorage.setItem(DRAFT_KEY, JSON.stringify({
          title: titleBox.value, content: contentBox.value, version: version, at: Date.now(),
        }));
      } else {
        window.localStorage.removeItem(DRAFT_KEY);
      }
    } catch (e) {
      // Storage full or switched off: the server copy is all there is.
    }
  }

  function readDraft() {
    try {
      var draft = JSON.parse(window.localStorage.getItem(DRAFT_KEY) || "null");
      return draft && typeof draft.content === "string" && typeof draft.title === "string" ? draft : null;
    } catch (e) {
      return null;
    }
  }

  function dropDraft() {
    try {
      window.localStorage.removeItem(DRAFT_KEY);
    } catch (e) {
      // nothing kept, nothing to drop
    }
  }

  function offerDraft() {
    var draft = readDraft();
    if (!draft) return;
    if (draft.title.trim() === saved.title && draft.content === saved.content) {
      dropDraft(); // the server got it after all (a save sent as the page went away)
      return;
    }
    var box = $("draft");
    $("draft-text").value = draft.content;
    var when = new Date(draft.at);
    var stamp = $("draft-when");
    stamp.setAttribute("datetime", when.toISOString());
    stamp.textContent = when.toLocaleString();
    box.hidden = false;
    $("draft-restore").addEventListener("click", function () {
      box.hidden = true;
      titleBox.value = draft.title;
      contentBox.value = draft.content;
      refreshPreview();
      onEdit();
      save();
      contentBox.focus();
    });
    $("draft-discard").addEventListener("click", function () {
      box.hidden = true;
      dropDraft();
      contentBox.focus();
    });
  }

  function onEdit() {
    keepDraft();
    if (conflict) return; // the banner decides what happens next
    if (sessionUnsaved()) {
      setStatus("dirty", "Unsaved changes"); // the server saves after a pause
    }
    if (changed()) {
      setStatus("dirty", "Unsaved changes");
      schedule();
    }
  }

  function showSaved() {
    setStatus("saved", "Saved · version " + version);
    $("note-version").textContent = String(version);
  }

  /** Saved, unless the live session has text the server has not saved yet. */
  function showSavedOrPending() {
    if (sessionUnsaved()) {
      setStatus("dirty", "Unsaved changes");
    } else {
      showSaved();
    }
  }

  function save() {
    window.clearTimeout(timer);
    if (conflict) return Promise.resolve();
    if (saving) {
      // One save at a time: the next one starts from the version this one returns.
      return saving.then(function () { return save(); });
    }
    if (!changed()) {
      if (sessionUnsaved()) {
        // Ctrl+S: the session saves the text now (or once it is connected).
        collab().saveNow();
        if (collab().active()) setStatus("saving", "Saving…");
        else setStatus("dirty", "Unsaved changes");
      } else if (statusBox.getAttribute("data-state") !== "error") {
        showSaved();
      }
      return Promise.resolve();
    }
    var title = titleBox.value.trim();
    var body = { version: version };
    if (title && title !== saved.title) body.title = title;
    if (textChanged()) body.content = contentBox.value;
    if (!title && body.content === undefined) {
      setStatus("error", "Not saved: a note needs a title.");
      return Promise.resolve();
    }
    var sent = { title: body.title !== undefined ? body.title : saved.title,
                 content: body.content !== undefined ? body.content : saved.content };
    setStatus("saving", "Saving…");
    saving = patchNote(body).then(
      function (response) {
        if (response.ok) {
          return response.json().then(function (note) {
            version = note.version;
            saved = sent;
            keepDraft();
            page.setAttribute("data-version", String(version));
            var stamp = document.createElement("time");
            stamp.setAttribute("datetime", new Date().toISOString());
            $("note-updated").replaceChildren(stamp);
            if (window.Multinotes.showTimes) window.Multinotes.showTimes($("note-updated"));
            renameEverywhere(note.title);
            if (changed()) {
              setStatus("dirty", "Unsaved changes");
              schedule();
            } else if (!title) {
              setStatus("error", "Text saved (version " + version + "); a note needs a title.");
            } else {
              showSavedOrPending();
            }
          });
        }
        return problemOf(response).then(function (problem) {
          if (problem.status === 409 && problem.current) {
            showConflict(problem.current);
          } else if (problem.status === 404) {
            setStatus("error", "Not saved: this note was deleted or moved out of reach.");
          } else if (problem.status === 422) {
            setStatus("error", "Not saved: " + (problem.details.length ? problem.details.join("; ") : problem.message));
          } else {
            setStatus("error", "Not saved: " + problem.message + " Retrying…");
            schedule(RETRY_DELAY);
          }
        });
      },
      function () {
        setStatus("error", "Not saved: the server cannot be reached. Retrying…");
        schedule(RETRY_DELAY);
      }
    ).then(function () { saving = null; });
    return saving;
  }

  function renameEverywhere(title) {
    var crumb = $("crumb-title");
    if (crumb) crumb.textContent = title;
    document.title = title + " · MultinotesAI";
    var move = $("move-note");
    if (move) move.setAttribute("data-title", title);
  }

  page.addEventListener("collab:changed", onEdit);
  page.addEventListener("collab:saved", function (event) {
    version = Math.max(version, Number(event.detail.version) || version);
    page.setAttribute("data-version", String(version));
    saved.content = contentBox.value;
    keepDraft();
    if (!changed() && !saving) showSaved();
  });
  page.addEventListener("collab:live", function (event) {
    // The shared text as the session found it is the server's; what was typed here while it
    // connected is merged on top and saved by the server after a pause.
    var shared = event.detail && event.detail.text;
    saved.content = typeof shared === "string" ? shared : contentBox.value;
    keepDraft();
    if (!conflict && !changed() && !saving) showSavedOrPending();
  });
  page.addEventListener("collab:ended", function () {
    // No session after all (or it ended): the text goes over REST again.
    onEdit();
  });

  titleBox.addEventListener("input", onEdit);
  contentBox.addEventListener("input", onEdit);
  titleBox.addEventListener("keydown", function (evt) {
    if (evt.key === "Enter") {
      evt.preventDefault();
      contentBox.focus();
    }
  });

  document.addEventListener("keydown", function (evt) {
    if ((evt.ctrlKey || evt.metaKey) && (evt.key === "s" || evt.key === "S")) {
      evt.preventDefault();
      save();
    }
  });

  // Leaving the tab or the page saves at once (the keepalive request outlives the page); the
  // draft in localStorage covers a save that fails or cannot be sent.
  function saveOnLeave() {
    if (changed() && !conflict) {
      keepDraft();
      save();
    }
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") saveOnLeave();
  });
  window.addEventListener("pagehide", saveOnLeave);
  window.addEventListener("beforeunload", saveOnLeave);

  // -- conflicts -------------------------------------------------------------------------------

  function showConflict(current) {
    conflict = current;
    window.clearTimeout(timer);
    $("conflict-theirs").value = current.content;
    $("conflict-version").textContent = "(version " + current.version + (current.title !== titleBox.value.trim() ? ", titled “" + current.title + "”" : "") + ")";
    $("conflict").hidden = false;
    setStatus("conflict", "Not saved: this note changed elsewhere");
    $("conflict").scrollIntoView({ block: "nearest" });
  }

  function refreshPreview() {
    if (window.htmx) window.htmx.trigger(contentBox, "preview");
  }

  $("keep-mine").addEventListener("click", function () {
    var theirs = conflict;
    if (!theirs) return;
    conflict = null;
    $("conflict").hidden = true;
    version = theirs.version;
    // Ours goes on top of theirs: send both fields, whatever we last saved.
    saved = { title: theirs.title, content: theirs.content };
    save().then(function () { contentBox.focus(); });
  });

  $("take-theirs").addEventListener("click", function () {
    var theirs = conflict;
    if (!theirs) return;
    conflict = null;
    $("conflict").hidden = true;
    $("discarded-text").value = contentBox.value;
    $("discarded").hidden = false;
    version = theirs.version;
    saved = { title: theirs.title, content: theirs.content };
    titleBox.value = theirs.title;
    contentBox.value = theirs.content;
    renameEverywhere(theirs.title);
    showSaved();
    refreshPreview();
    contentBox.focus();
  });

  $("discarded-close").addEventListener("click", function () {
    $("discarded").hidden = true;
    $("discarded-text").value = "";
    contentBox.focus();
  });

  offerDraft();

  if (page.getAttribute("data-new") === "true") {
    titleBox.focus();
    titleBox.select();
    // Reloading the page should not select the title again.
    history.replaceState(null, "", "/notes/" + documentId);
  }

  // -- re-run ----------------------------------------------------------------------------------

  var rerunForm = $("rerun-form");
  if (!rerunForm) return;
  var results = $("rerun-results");
  var rerunButton = $("rerun");
  var stopButton = $("rerun-stop");
  var errorBox = $("rerun-error");
  var running = null; // {controller, cards: {generation_id: card}}

  function announce(text) {
    var box = $("rerun-announcer");
    box.textContent = "";
    window.setTimeout(function () { box.textContent = text; }, 50);
  }

  function field(el, name) {
    return el.querySelector('[data-field="' + name + '"]');
  }

  function modelName(id) {
    var box = rerunForm.querySelector('input[name="models"][value="' + CSS.escape(id) + '"]');
    return (box && box.getAttribute("data-name")) || id;
  }

  function number(n) {
    return Number(n || 0).toLocaleString("en-US");
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return "–";
    return ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(1) + " s";
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  var readEvents = window.Multinotes.readEvents;

  function newCard(modelId) {
    var card = $("tpl-rerun-card").content.firstElementChild.cloneNode(true);
    card.setAttribute("data-model", modelId);
    field(card, "name").textContent = modelName(modelId);
    card.source = "";
    results.appendChild(card);
    return card;
  }

  function setCardStatus(card, status) {
    card.setAttribute("data-status", status);
    var badge = field(card, "status");
    badge.className = "badge status status-" + status;
    badge.textContent = { pending: "Streaming…", complete: "Complete", stopped: "Stopped", failed: "Failed" }[status] || status;
  }

  function appendText(card, text) {
    var body = field(card, "body");
    var node = body.querySelector(".streaming-text");
    if (!node) {
      node = document.createElement("p");
      node.className = "streaming-text";
      body.appendChild(node);
    }
    node.appendChild(document.createTextNode(text));
    card.source += text;
  }

  function finishCard(card, data) {
    var body = field(card, "body");
    if (typeof data.html === "string" && data.html) {
      // Sanitised on the server (markdown-it without raw HTML, then nh3).
      body.innerHTML = data.html;
    }
    body.setAttribute("aria-busy", "false");
    setCardStatus(card, data.status || "complete");
    var usage = data.usage || {};
    field(card, "stats").textContent = number(usage.input_tokens) + " in / " + number(usage.output_tokens) +
      " out · " + number(data.cost) + " credit" + (data.cost === 1 ? "" : "s") + " · " + duration(data.duration_ms);
    card.querySelector('[data-action="use-answer"]').disabled = !card.source;
  }

  function setRunning(on) {
    rerunButton.disabled = on;
    rerunButton.setAttribute("aria-busy", on ? "true" : "false");
    stopButton.hidden = !on;
  }

  async function rerun(models) {
    errorBox.hidden = true;
    var controller = new AbortController();
    running = { controller: controller, cards: {} };
    var state = running;
    setRunning(true);
    // The saved answer (what the note says now) on the left, the new ones beside it.
    var old = $("rerun-old-body");
    old.textContent = "";
    Array.prototype.forEach.call($("note-preview").childNodes, function (node) {
      old.appendChild(node.cloneNode(true));
    });
    Array.prototype.forEach.call(results.querySelectorAll(".rerun-card:not(.rerun-old)"), function (c) {
      c.remove();
    });
    results.hidden = false;
    try {
      var response;
      try {
        response = await request("POST", "/api/documents/" + encodeURIComponent(documentId) + "/rerun",
          { models: models }, controller.signal);
      } catch (e) {
        if (e.name !== "AbortError") showError("The server could not be reached. Try again.");
        results.hidden = true;
        return;
      }
      if (!response.ok) {
        var problem = await problemOf(response);
        showError(problem.status === 402
          ? "Out of credits: " + problem.message + " Buy credits on the Pricing page (/pricing)."
          : problem.message + (problem.details.length ? " (" + problem.details.join("; ") + ")" : ""));
        results.hidden = true;
        announce("The re-run did not start: " + problem.message);
        return;
      }
      announce("Re-running on " + models.map(modelName).join(", ") + ".");
      var finished = [];
      try {
        await readEvents(response, function (name, data) {
          var card = data.generation_id ? state.cards[data.generation_id] : null;
          if (name === "start") {
            card = newCard(data.model);
            card.setAttribute("data-generation-id", data.generation_id);
            state.cards[data.generation_id] = card;
          } else if (name === "delta" && card) {
            appendText(card, data.text || "");
          } else if (name === "error" && card) {
            var box = field(card, "error");
            box.textContent = data.message || "The model failed.";
            box.hidden = false;
          } else if (name === "done" && card) {
            finishCard(card, data);
            finished.push(modelName(data.model));
          } else if (name === "error" && !card) {
            showError(data.message || "The re-run failed.");
          }
        });
      } catch (e) {
        if (e.name !== "AbortError") showError("The connection was interrupted; what arrived is shown.");
      }
      Object.keys(state.cards).forEach(function (id) {
        var card = state.cards[id];
        if (card.getAttribute("data-status") === "pending") {
          setCardStatus(card, "stopped");
          field(card, "body").setAttribute("aria-busy", "false");
          card.querySelector('[data-action="use-answer"]').disabled = !card.source;
        }
      });
      announce(finished.length ? "New answers finished: " + finished.join(", ") + "." : "Stopped.");
    } finally {
      running = null;
      setRunning(false);
    }
  }

  rerunForm.addEventListener("submit", function (evt) {
    evt.preventDefault();
    if (running) return;
    var models = Array.prototype.filter.call(rerunForm.querySelectorAll('input[name="models"]'), function (b) {
      return b.checked;
    }).map(function (b) { return b.value; });
    if (!models.length) {
      showError("Choose at least one model.");
      var first = rerunForm.querySelector('input[name="models"]');
      if (first) first.focus();
      return;
    }
    rerun(models);
  });

  stopButton.addEventListener("click", function () {
    if (!running) return;
    var state = running;
    var pending = Object.keys(state.cards).filter(function (id) {
      return state.cards[id].getAttribute("data-status") === "pending";
    });
    if (!pending.length) {
      state.controller.abort();
      return;
    }
    pending.forEach(function (id) {
      request("POST", "/api/generations/" + encodeURIComponent(id) + "/cancel", {}).then(
        function (response) { if (!response.ok) state.controller.abort(); },
        function () { state.controller.abort(); }
      );
    });
  });

  results.addEventListener("click", function (evt) {
    var button = evt.target.closest ? evt.target.closest('[data-action="use-answer"]') : null;
    if (!button || button.disabled) return;
    var card = button.closest(".rerun-card");
    if (!card || !card.source) return;
    // The old text stays in the history; the note now says what the new answer says.
    contentBox.value = card.source;
    refreshPreview();
    onEdit();
    save();
    announce("The note now holds the answer of " + field(card, "name").textContent + ". The old text is in the history.");
    contentBox.focus();
  });
})();
