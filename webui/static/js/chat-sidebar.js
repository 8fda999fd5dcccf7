/*
 * The chat page's conversation sidebar: each conversation's menu (rename in a dialog, pin,
 * archive, delete with Undo), the archived list, and the "/" shortcut that focuses the prompt.
 * Plain JS, CSP-safe. Talks to PATCH/DELETE /api/conversations/{id}; the list itself comes from
 * /chat/sidebar (htmx), which groups it (Pinned, Today, Yesterday, ...).
 *
 * A delete waits a few seconds for Undo before it is sent; leaving the page sends it at once
 * (Multinotes.sendOnLeave: a keepalive fetch, replayed by the next page if the browser dropped
 * it), so a delete that was not undone never depends on staying on the page.
 */
(function () {
  "use strict";

  var list = document.getElementById("conversation-list");
  if (!list) return;
  var workspace = document.getElementById("workspace");
  var search = document.getElementById("conversation-search");
  var archivedButton = document.getElementById("ws-archived");
  var renameDialog = document.getElementById("rename-dialog");
  var renameForm = document.getElementById("rename-form");
  var renameInput = document.getElementById("rename-input");
  var renameError = document.getElementById("rename-error");
  var toast = document.getElementById("ws-toast");
  var toastText = document.getElementById("ws-toast-text");
  var undoButton = document.getElementById("ws-toast-undo");
  var UNDO_MS = 6000;
  var showingArchived = false;
  var renaming = null;
  var pending = null; // {item, id, timer}

  function current() {
    return workspace ? workspace.getAttribute("data-conversation-id") || "" : "";
  }

  function api(method, id, body) {
    return window.Multinotes.request(method, "/api/conversations/" + encodeURIComponent(id), body);
  }

  function reveal() {
    list.querySelectorAll(".conv-menu[hidden]").forEach(function (menu) { menu.hidden = false; });
  }

  function refresh() {
    var url = "/chat/sidebar?current=" + encodeURIComponent(current()) +
      "&q=" + encodeURIComponent(search ? search.value : "") + (showingArchived ? "&archived=1" : "");
    // The list is the request's source: its refreshes wait for each other, not for the thread's.
    return window.htmx.ajax("GET", url, { source: list, target: list, swap: "innerHTML" });
  }

  // A prompt was answered (js/workspace.js): the conversation may be new or moved up.
  document.addEventListener("multinotes:conversations-changed", function () { refresh(); });

  function closeMenus(except) {
    list.querySelectorAll(".conv-menu[open]").forEach(function (menu) {
      if (menu !== except) menu.open = false;
    });
  }

  // -- rename ----------------------------------------------------------------------------------
  function openRename(item) {
    renaming = item;
    renameInput.value = item.getAttribute("data-title") || "";
    renameError.hidden = true;
    renameDialog.showModal();
    renameInput.select();
  }

  renameForm.addEventListener("submit", function (evt) {
    evt.preventDefault();
    var title = renameInput.value.trim();
    if (!title || !renaming) return;
    var item = renaming;
    var id = item.getAttribute("data-conversation");
    api("PATCH", id, { title: title }).then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
      item.setAttribute("data-title", title);
      var link = item.querySelector("a");
      link.textContent = title;
      link.title = title;
      if (id === current()) {
        var heading = document.getElementById("ws-title");
        if (heading) heading.textContent = title;
        document.title = title + " · MultinotesAI";
      }
      renameDialog.close();
      item.querySelector(".conv-menu summary").focus();
    }).catch(function () {
      renameError.textContent = "Could not rename the chat. Try again.";
      renameError.hidden = false;
    });
  });
  renameDialog.addEventListener("click", function (evt) {
    if (evt.target.closest && evt.target.closest("[data-close-dialog]")) renameDialog.close();
  });

  // -- pin, archive ----------------------------------------------------------------------------
  function toggle(item, field) {
    var on = item.getAttribute("data-" + field) !== "true";
    var body = {};
    body[field] = on;
    api("PATCH", item.getAttribute("data-conversation"), body).then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
      var verb = field === "pinned" ? (on ? "Pinned" : "Unpinned") : (on ? "Archived" : "Unarchived");
      announce(verb + " “" + item.getAttribute("data-title") + "”.", false);
      return refresh();
    }).catch(function () {
      announce("That did not work. Try again.", false);
    });
  }

  // -- delete with undo ------------------------------------------------------------------------
  function announce(text, undoable) {
    toastText.textContent = text;
    undoButton.hidden = !undoable;
    toast.hidden = false;
    clearTimeout(toast._timer);
    toast._timer = setTimeout(function () { toast.hidden = true; }, UNDO_MS);
  }

  function commitDelete(keepalive) {
    if (!pending) return;
    var job = pending;
    pending = null;
    clearTimeout(job.timer);
    if (keepalive) {
      window.Multinotes.sendOnLeave("DELETE", "/api/conversations/" + encodeURIComponent(job.id));
      return;
    }
    api("DELETE", job.id).then(function (response) {
      if (!response.ok && response.status !== 404) throw new Error(String(response.status));
      job.item.remove();
      if (job.id === current()) window.location.assign("/chat");
    }).catch(function () {
      job.item.hidden = false;
      announce("Could not delete “" + job.title + "”.", false);
    });
  }

  function startDelete(item) {
    commitDelete(false); // one pending delete at a time: the previous one goes now
    item.hidden = true;
    var title = item.getAttribute("data-title") || "";
    pending = {
      item: item, id: item.getAttribute("data-conversation"), title: title,
      timer: setTimeout(function () { commitDelete(false); }, UNDO_MS),
    };
    announce("Deleted “" + title + "”.", true);
    undoButton.focus();
  }

  undoButton.addEventListener("click", function () {
    if (!pending) return;
    clearTimeout(pending.timer);
    var item = pending.item;
    pending = null;
    item.hidden = false;
    toast.hidden = true;
    var summary = item.querySelector(".conv-menu summary");
    if (summary) summary.focus();
  });
  window.addEventListener("pagehide", function () { commitDelete(true); });

  // -- the menus -------------------------------------------------------------------------------
  list.addEventListener("click", function (evt) {
    var button = evt.target.closest ? evt.target.closest("[data-conv-action]") : null;
    if (!button) return;
    var item = button.closest(".conversation");
    var menu = button.closest(".conv-menu");
    if (menu) menu.open = false;
    var action = button.getAttribute("data-conv-action");
    if (action === "rename") openRename(item);
    else if (action === "pin") toggle(item, "pinned");
    else if (action === "archive") toggle(item, "archived");
    else if (action === "delete") startDelete(item);
  });
  list.addEventListener("toggle", function (evt) {
    if (evt.target.classList && evt.target.classList.contains("conv-menu") && evt.target.open) {
      closeMenus(evt.target);
    }
  }, true);
  document.addEventListener("click", function (evt) {
    if (!evt.target.closest || !evt.target.closest(".conv-menu")) closeMenus(null);
  });
  list.addEventListener("keydown", function (evt) {
    var menu = evt.target.closest ? evt.target.closest(".conv-menu[open]") : null;
    if (menu && evt.key === "Escape") {
      evt.stopPropagation();
      menu.open = false;
      menu.querySelector("summary").focus();
    }
  });
  document.body.addEventListener("htmx:afterSwap", function (evt) {
    if (list.contains(evt.target) || evt.target === list) {
      reveal();
      // A delete still waiting for Undo stays out of a refreshed list.
      if (pending) {
        var again = list.querySelector('[data-conversation="' + pending.id + '"]');
        if (again) {
          again.hidden = true;
          pending.item = again;
        }
      }
    }
  });

  // -- archived chats --------------------------------------------------------------------------
  if (archivedButton) {
    archivedButton.hidden = false;
    archivedButton.addEventListener("click", function () {
      showingArchived = !showingArchived;
      archivedButton.setAttribute("aria-pressed", showingArchived ? "true" : "false");
      list.setAttribute("aria-label", showingArchived ? "Archived conversations" : "Your conversations");
      if (search) {
        var vals = { current: current() };
        if (showingArchived) vals.archived = "1";
        search.setAttribute("hx-vals", JSON.stringify(vals));
      }
      refresh();
    });
  }

  // -- phone: the drawer closes with its Close button or Escape -------------------------------
  var toggleButton = document.getElementById("ws-sidebar-toggle");
  var closeButton = document.getElementById("ws-sidebar-close");
  function closeDrawer() {
    if (toggleButton && toggleButton.getAttribute("aria-expanded") === "true") {
      toggleButton.click();
      toggleButton.focus();
    }
  }
  if (closeButton) closeButton.addEventListener("click", closeDrawer);
  document.addEventListener("keydown", function (evt) {
    if (evt.key === "Escape" && workspace && workspace.classList.contains("sidebar-open") &&
        !document.querySelector("dialog[open]")) closeDrawer();
  });
  list.addEventListener("click", function (evt) {
    // Opening a conversation from the drawer: the page changes, nothing to do; a menu stays.
    if (evt.target.closest && evt.target.closest("a[href^='/chat/']")) closeMenus(null);
  });

  // -- "/" focuses the prompt ------------------------------------------------------------------
  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "/" || evt.ctrlKey || evt.metaKey || evt.altKey) return;
    var el = evt.target;
    if (el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName))) return;
    var prompt = document.getElementById("prompt");
    if (!prompt) return;
    evt.preventDefault();
    prompt.focus();
  });

  reveal();
})();
