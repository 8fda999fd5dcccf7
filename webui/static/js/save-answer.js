/*
 * "Save" under an answer in the chat workspace: pick a folder, keep the answer as a note
 * (POST /api/messages/{id}/save, or /save-comparison for every answer to the prompt), then link
 * to the new note from the answer. Plain JS, CSP-safe; folder names go in as text.
 */
(function () {
  "use strict";

  var thread = document.getElementById("thread");
  var dialog = document.getElementById("save-dialog");
  if (!thread || !dialog) return;

  var FOLDER_KEY = "mn.save.folder";
  var form = document.getElementById("save-form");
  var select = document.getElementById("save-folder");
  var errorBox = document.getElementById("save-error");
  var allLabel = document.getElementById("save-all-label");
  var allBox = document.getElementById("save-all");
  var submit = document.getElementById("save-submit");
  var card = null; // the answer being saved
  var opener = null;
  var saved = {}; // message id -> {href, text}: the links to notes made on this page

  var request = window.Multinotes.request;

  function announce(text) {
    var box = document.getElementById("ws-announcer");
    if (!box) return;
    box.textContent = "";
    window.setTimeout(function () { box.textContent = text; }, 50);
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  /** The folders as "Parent / Child" choices in tree order, indented by depth. */
  function fillFolders(folders) {
    var children = {};
    folders.forEach(function (f) {
      var key = f.parent_id || "";
      (children[key] = children[key] || []).push(f);
    });
    var remembered = "";
    try {
      remembered = window.localStorage.getItem(FOLDER_KEY) || "";
    } catch (e) {
      remembered = "";
    }
    while (select.options.length > 1) select.remove(1);
    var seen = {};
    (function walk(parent, depth) {
      (children[parent] || []).forEach(function (f) {
        if (seen[f.id]) return;
        seen[f.id] = true;
        var option = document.createElement("option");
        option.value = f.id;
        option.textContent = "\u00a0\u00a0\u00a0".repeat(depth + 1) + f.name;
        select.appendChild(option);
        walk(f.id, depth + 1);
      });
    })("", 0);
    select.value = seen[remembered] ? remembered : "";
  }

  function open(answer, button) {
    card = answer;
    opener = button;
    errorBox.hidden = true;
    submit.disabled = true;
    var turn = answer.closest(".turn");
    var answers = turn ? turn.querySelectorAll(".answer:not([hidden])") : [];
    allLabel.hidden = answers.length < 2;
    allBox.checked = false;
    dialog.showModal();
    select.focus();
    request("GET", "/api/folders").then(function (response) {
      return response.ok ? response.json() : Promise.reject(response);
    }).then(function (body) {
      fillFolders(body.folders || []);
    }, function () {
      showError("Your folders could not be loaded; the note can still be saved at the top level.");
    }).then(function () {
      submit.disabled = false;
    });
  }

  function showLink(answer) {
    var note = saved[answer.getAttribute("data-message-id")];
    var save = answer.querySelector('.answer-actions [data-action="save"]');
    if (!note || !save) return null;
    var link = answer.querySelector(".saved-link") || document.createElement("a");
    link.className = "saved-link";
    link.href = note.href;
    link.textContent = note.text;
    save.after(link);
    return link;
  }

  // The thread is re-rendered by the server after every stream: keep the links to new notes.
  document.body.addEventListener("htmx:afterSettle", function (evt) {
    if (!evt.detail.target || evt.detail.target.id !== "thread") return;
    Array.prototype.forEach.call(thread.querySelectorAll(".answer[data-message-id]"), showLink);
  });

  thread.addEventListener("click", function (evt) {
    var button = evt.target.closest ? evt.target.closest('[data-action="save"]') : null;
    if (!button) return;
    var answer = button.closest(".answer");
    if (!answer) return;
    if (answer.getAttribute("data-status") === "pending" || !answer.getAttribute("data-message-id")) {
      announce("Wait until the answer is complete, then save it.");
      return;
    }
    open(answer, button);
  });

  dialog.addEventListener("click", function (evt) {
    if (evt.target.closest && evt.target.closest("[data-close-dialog]")) dialog.close();
    else if (evt.target === dialog) dialog.close();
  });

  dialog.addEventListener("close", function () {
    if (opener && document.contains(opener)) opener.focus();
    opener = null;
  });

  form.addEventListener("submit", function (evt) {
    evt.preventDefault();
    if (!card) return;
    var answer = card;
    var folderId = select.value || null;
    var folderName = folderId ? select.selectedOptions[0].textContent.trim() : "Notes";
    var url;
    if (allBox.checked && !allLabel.hidden) {
      var turn = answer.closest(".turn");
      url = "/api/messages/" + encodeURIComponent(turn.getAttribute("data-message-id")) + "/save-comparison";
    } else {
      url = "/api/messages/" + encodeURIComponent(answer.getAttribute("data-message-id")) + "/save";
    }
    submit.disabled = true;
    submit.setAttribute("aria-busy", "true");
    errorBox.hidden = true;
    request("POST", url, { folder_id: folderId }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (result) {
      if (!result.ok) {
        showError((result.body.error && result.body.error.message) || "The note could not be saved.");
        return;
      }
      try {
        window.localStorage.setItem(FOLDER_KEY, folderId || "");
      } catch (e) { /* not remembered, that is all */ }
      opener = null; // focus goes to the new link, not back to the button
      dialog.close();
      saved[answer.getAttribute("data-message-id")] = {
        href: "/notes/" + encodeURIComponent(result.body.document_id),
        text: "Saved in " + folderName + ": open the note",
      };
      var link = showLink(answer);
      announce("Saved as a note in " + folderName + ".");
      if (link) link.focus();
    }, function () {
      showError("The server could not be reached. Try again.");
    }).then(function () {
      submit.disabled = false;
      submit.setAttribute("aria-busy", "false");
    });
  });
})();
