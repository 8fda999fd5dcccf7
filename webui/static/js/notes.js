/*
 * The notes pages (/notes, /notes/{id}, /trash). Plain JS, no build step, CSP-safe.
 *
 * Everything here improves forms that work without it:
 *   - the folder list as a drawer on phones (toggle, Esc, backdrop; focus moves in and back);
 *   - expand/collapse in the folder tree, remembered in localStorage;
 *   - the list/grid toggle, remembered in a cookie the server reads;
 *   - bulk selection (select all, a count, buttons enabled only with a selection);
 *   - row menus that close when another opens, on Esc and on a click elsewhere;
 *   - "Move to…": a dialog around the move form (POST /notes/move);
 *   - drag and drop of rows onto folders (in the tree or in the list), which fills the same
 *     move form and submits it.
 */
(function () {
  "use strict";

  var EXPANDED_KEY = "mn.notes.expanded";
  var VIEW_COOKIE = "mn_notes_view";

  function $(id) {
    return document.getElementById(id);
  }

  function all(selector, scope) {
    return Array.prototype.slice.call((scope || document).querySelectorAll(selector));
  }

  function announce(text) {
    var box = $("notes-announcer");
    if (!box) return;
    box.textContent = "";
    window.setTimeout(function () { box.textContent = text; }, 50);
  }

  // -- the drawer (phones) -------------------------------------------------------------------

  var layout = $("notes-layout");
  var toggle = $("drawer-toggle");

  function drawerOpen() {
    return !!layout && layout.classList.contains("drawer-open");
  }

  function setDrawer(open) {
    if (!layout || !toggle) return;
    layout.classList.toggle("drawer-open", open);
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    var backdrop = $("drawer-backdrop");
    if (backdrop) backdrop.hidden = !open;
    // While the drawer is open the page behind it is out of reach, for the keyboard too.
    var main = document.querySelector(".notes-main");
    if (main) main.inert = open;
    if (open) {
      var current = document.querySelector('#notes-sidebar a[aria-current="page"]') ||
        document.querySelector("#notes-sidebar button, #notes-sidebar a");
      if (current) current.focus();
    } else {
      toggle.focus();
    }
  }

  if (toggle) {
    toggle.addEventListener("click", function () { setDrawer(!drawerOpen()); });
    var close = $("drawer-close");
    if (close) close.addEventListener("click", function () { setDrawer(false); });
    var backdrop = $("drawer-backdrop");
    if (backdrop) backdrop.addEventListener("click", function () { setDrawer(false); });
    // A screen that grows wide enough shows the folders beside the page: no drawer left open.
    var narrow = window.matchMedia("(max-width: 768px)");
    narrow.addEventListener("change", function () {
      if (!narrow.matches && drawerOpen()) {
        layout.classList.remove("drawer-open");
        toggle.setAttribute("aria-expanded", "false");
        var main = document.querySelector(".notes-main");
        if (main) main.inert = false;
      }
    });
  }

  // -- the folder tree -------------------------------------------------------------------------

  function storedExpanded() {
    try {
      var value = JSON.parse(window.localStorage.getItem(EXPANDED_KEY) || "{}");
      return value && typeof value === "object" ? value : {};
    } catch (e) {
      return {};
    }
  }

  function storeExpanded(id, open) {
    var state = storedExpanded();
    state[id] = open;
    try {
      window.localStorage.setItem(EXPANDED_KEY, JSON.stringify(state));
    } catch (e) {
      /* private mode: the tree simply forgets */
    }
  }

  function setExpanded(button, open) {
    button.setAttribute("aria-expanded", open ? "true" : "false");
    var list = $(button.getAttribute("aria-controls"));
    if (list) list.hidden = !open;
  }

  var remembered = storedExpanded();
  all(".tree-toggle").forEach(function (button) {
    var id = button.getAttribute("data-folder");
    // The server opens the way to the current folder; the user's choices apply elsewhere.
    if (button.getAttribute("aria-expanded") !== "true" && remembered[id] === true) {
      setExpanded(button, true);
    }
    button.addEventListener("click", function () {
      var open = button.getAttribute("aria-expanded") !== "true";
      setExpanded(button, open);
      storeExpanded(id, open);
    });
  });

  // -- list or grid ----------------------------------------------------------------------------

  document.addEventListener("click", function (evt) {
    var link = evt.target.closest ? evt.target.closest(".view-toggle [data-view]") : null;
    if (!link) return;
    var items = $("notes-items");
    var view = link.getAttribute("data-view");
    document.cookie = VIEW_COOKIE + "=" + view + "; path=/; max-age=31536000; SameSite=Lax";
    if (!items) return; // nothing to switch yet: the link still works as a link
    evt.preventDefault();
    items.classList.remove("view-list", "view-grid");
    items.classList.add("view-" + view);
    all(".view-toggle [data-view]").forEach(function (other) {
      var on = other === link;
      other.setAttribute("aria-pressed", on ? "true" : "false");
      other.classList.toggle("outline", !on);
    });
    announce(view === "grid" ? "Showing a grid." : "Showing a list.");
  });

  // -- bulk selection --------------------------------------------------------------------------

  function checks() {
    return all("#notes-items .item-check");
  }

  function syncBulk() {
    var boxes = checks();
    var chosen = boxes.filter(function (b) { return b.checked; });
    boxes.forEach(function (b) {
      var row = b.closest(".item");
      if (row) row.classList.toggle("selected", b.checked);
    });
    var count = $("bulk-count");
    if (count) count.textContent = chosen.length ? chosen.length + " selected" : "Select all";
    var selectAll = $("select-all");
    if (selectAll) {
      selectAll.checked = boxes.length > 0 && chosen.length === boxes.length;
      selectAll.indeterminate = chosen.length > 0 && chosen.length < boxes.length;
    }
    // The actions show only with something chosen (css: .bulk-bar[data-selected="0"]).
    var form = $("bulk-form");
    if (form) form.setAttribute("data-selected", String(chosen.length));
    ["bulk-move", "bulk-delete", "bulk-target", "bulk-share-submit"].forEach(function (id) {
      var el = $(id);
      if (el) el.disabled = chosen.length === 0;
    });
  }

  document.addEventListener("change", function (evt) {
    var target = evt.target;
    if (target.id === "select-all") {
      checks().forEach(function (b) { b.checked = target.checked; });
      syncBulk();
    } else if (target.classList && target.classList.contains("item-check")) {
      syncBulk();
    }
  });

  // Enter in the share field shares: the form's default button is "Move".
  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Enter" || !evt.target || evt.target.id !== "bulk-share-email") return;
    evt.preventDefault();
    var submit = $("bulk-share-submit");
    if (submit && !submit.disabled) submit.click();
  });

  document.addEventListener("htmx:afterSettle", function () {
    syncBulk();
    wireDragging();
  });

  // -- row menus -------------------------------------------------------------------------------

  document.addEventListener("toggle", function (evt) {
    var menu = evt.target;
    if (!menu.classList || !menu.classList.contains("row-menu") || !menu.open) return;
    all(".row-menu[open]").forEach(function (other) {
      if (other !== menu) other.open = false;
    });
    var first = menu.querySelector(".row-menu-body input, .row-menu-body button");
    if (first && menu.contains(document.activeElement)) first.focus();
  }, true);

  document.addEventListener("click", function (evt) {
    all(".row-menu[open]").forEach(function (menu) {
      if (!menu.contains(evt.target)) menu.open = false;
    });
  });

  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Escape") return;
    var menu = evt.target.closest ? evt.target.closest(".row-menu[open]") : null;
    if (menu) {
      menu.open = false;
      menu.querySelector("summary").focus();
      evt.preventDefault();
    } else if (drawerOpen()) {
      setDrawer(false);
      evt.preventDefault();
    }
  });

  // -- "Move to…" ------------------------------------------------------------------------------

  var dialog = $("move-dialog");
  var moveForm = $("move-form");
  var opener = null;

  function fillMove(items, target) {
    var box = $("move-items");
    box.textContent = "";
    items.forEach(function (item) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = "item";
      input.value = item;
      box.appendChild(input);
    });
    if (target !== undefined) $("move-target").value = target;
  }

  function openMove(items, title, button) {
    if (!dialog) return;
    fillMove(items);
    $("move-what").textContent = items.length === 1
      ? "Where should “" + title + "” go?"
      : "Where should the " + items.length + " selected items go?";
    // A folder cannot go into itself or below itself: offer only the places it may go.
    var folderIds = items.filter(function (i) { return i.indexOf("folder:") === 0; })
      .map(function (i) { return i.slice(7); });
    all("#move-target option").forEach(function (option) {
      option.disabled = folderIds.length > 0 && insideAny(option.value, folderIds);
    });
    var select = $("move-target");
    if (select.selectedOptions[0] && select.selectedOptions[0].disabled) select.value = "";
    opener = button || null;
    dialog.showModal();
    select.focus();
  }

  /** Whether folder `id` is one of `folderIds` or lies below one (from the tree's nesting). */
  function insideAny(id, folderIds) {
    if (!id) return false;
    var row = document.querySelector('#folder-tree .tree-row[data-drop-target="' + id + '"]');
    var node = row ? row.closest(".tree-node") : null;
    while (node) {
      var own = node.querySelector(":scope > .tree-row");
      var nodeId = own ? own.getAttribute("data-drop-target") : "";
      if (folderIds.indexOf(nodeId) >= 0) return true;
      node = node.parentElement ? node.parentElement.closest(".tree-node") : null;
    }
    return folderIds.indexOf(id) >= 0;
  }

  if (dialog) {
    document.addEventListener("click", function (evt) {
      var button = evt.target.closest ? evt.target.closest("[data-move]") : null;
      if (!button) return;
      evt.preventDefault();
      var menu = button.closest(".row-menu");
      if (menu) menu.open = false;
      openMove([button.getAttribute("data-move")], button.getAttribute("data-title"), button);
    });
    dialog.addEventListener("click", function (evt) {
      if (evt.target.closest && evt.target.closest("[data-close-dialog]")) dialog.close();
      else if (evt.target === dialog) dialog.close(); // a click on the backdrop
    });
    dialog.addEventListener("close", function () {
      if (opener && document.contains(opener)) opener.focus();
      opener = null;
    });
  }

  // -- drag and drop ---------------------------------------------------------------------------

  var dragged = null;

  function draggedItems(row) {
    var box = row.querySelector(".item-check");
    if (box && box.checked) {
      return checks().filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
    }
    return [row.getAttribute("data-item")];
  }

  function wireDragging() {
    all(".item[draggable]").forEach(function (row) {
      if (row.getAttribute("data-drag-wired")) return;
      row.setAttribute("data-drag-wired", "true");
      row.addEventListener("dragstart", function (evt) {
        dragged = draggedItems(row);
        evt.dataTransfer.effectAllowed = "move";
        evt.dataTransfer.setData("text/plain", dragged.join("\n"));
        row.classList.add("dragging");
      });
      row.addEventListener("dragend", function () {
        row.classList.remove("dragging");
        dragged = null;
        all(".drop-over").forEach(function (el) { el.classList.remove("drop-over"); });
      });
    });
  }

  function dropTarget(evt) {
    var el = evt.target.closest ? evt.target.closest("[data-drop-target]") : null;
    if (!el || !dragged) return null;
    var id = el.getAttribute("data-drop-target");
    // Nothing moves onto itself.
    if (id && dragged.indexOf("folder:" + id) >= 0) return null;
    return el;
  }

  document.addEventListener("dragover", function (evt) {
    var el = dropTarget(evt);
    if (!el) return;
    evt.preventDefault();
    evt.dataTransfer.dropEffect = "move";
    all(".drop-over").forEach(function (other) {
      if (other !== el) other.classList.remove("drop-over");
    });
    el.classList.add("drop-over");
  });

  document.addEventListener("dragleave", function (evt) {
    var el = evt.target.closest ? evt.target.closest("[data-drop-target]") : null;
    if (el && !el.contains(evt.relatedTarget)) el.classList.remove("drop-over");
  });

  document.addEventListener("drop", function (evt) {
    var el = dropTarget(evt);
    if (!el || !moveForm) return;
    evt.preventDefault();
    el.classList.remove("drop-over");
    var target = el.getAttribute("data-drop-target");
    fillMove(dragged, target);
    announce("Moving to " + (el.getAttribute("data-folder-name") || "the folder") + "…");
    dragged = null;
    moveForm.requestSubmit();
  });

  wireDragging();
  syncBulk();
})();
