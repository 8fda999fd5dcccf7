/*
 * The command palette: Ctrl+K (Cmd+K on a Mac), or any [data-palette-open] button, opens a
 * dialog that jumps to a conversation, a note, a folder or an action as you type.
 *
 * Quick matches come from GET /api/palette?q= (titles only, no semantic search, so it keeps up
 * with typing); the last option always runs a full search on /search. Accessible as an ARIA
 * combobox: the input owns a listbox, aria-activedescendant names the highlighted option,
 * Up/Down/Home/End move, Enter opens, Esc closes (a native <dialog>, so focus returns to where
 * it was). Works on touch screens through the nav button. CSP-safe: no inline script or style.
 */
(function () {
  "use strict";

  var DEBOUNCE_MS = 120;
  var dialog = null;
  var input = null;
  var list = null;
  var status = null;
  var items = [];
  var active = -1;
  var timer = null;
  var inflight = null;
  var lastQuery = null;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      node.setAttribute(name, attrs[name]);
    });
    if (text) node.textContent = text;
    return node;
  }

  function build() {
    dialog = el("dialog", { id: "palette", "aria-label": "Jump to", class: "palette" });
    var article = el("article");
    var label = el("label", { for: "palette-input", class: "visually-hidden" }, "Jump to a chat, note, folder or action");
    input = el("input", {
      id: "palette-input",
      type: "text",
      role: "combobox",
      "aria-expanded": "true",
      "aria-controls": "palette-list",
      "aria-autocomplete": "list",
      autocomplete: "off",
      spellcheck: "false",
      placeholder: "Jump to a chat, note, folder or action…",
    });
    list = el("ul", { id: "palette-list", role: "listbox", "aria-label": "Matches" });
    status = el("p", { class: "palette-status", role: "status", "aria-live": "polite" });
    var hint = el("p", { class: "palette-hint" });
    hint.innerHTML = "<kbd>↑</kbd> <kbd>↓</kbd> to move · <kbd>Enter</kbd> to open · <kbd>Esc</kbd> to close";
    var close = el("button", { type: "button", class: "palette-close secondary outline", "aria-label": "Close" }, "Close");
    article.append(label, input, list, status, hint, close);
    dialog.appendChild(article);
    document.body.appendChild(dialog);

    input.addEventListener("input", schedule);
    input.addEventListener("keydown", onKey);
    close.addEventListener("click", hide);
    // A click on the backdrop (the dialog itself, outside the article) closes it.
    dialog.addEventListener("click", function (evt) {
      if (evt.target === dialog) hide();
    });
    dialog.addEventListener("close", function () {
      if (inflight) inflight.abort();
    });
    list.addEventListener("click", function (evt) {
      var option = evt.target.closest ? evt.target.closest("[role=option]") : null;
      if (option) go(Number(option.getAttribute("data-index")));
    });
  }

  function show() {
    if (!dialog) build();
    if (dialog.open) return;
    input.value = "";
    lastQuery = null;
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
    input.focus();
    fetchItems("");
  }

  function hide() {
    if (!dialog || !dialog.open) return;
    if (typeof dialog.close === "function") dialog.close();
    else dialog.removeAttribute("open");
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(function () {
      fetchItems(input.value.trim());
    }, DEBOUNCE_MS);
  }

  function fetchItems(q) {
    if (q === lastQuery) return;
    lastQuery = q;
    if (inflight) inflight.abort();
    inflight = typeof AbortController === "function" ? new AbortController() : null;
    fetch("/api/palette?q=" + encodeURIComponent(q), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      signal: inflight ? inflight.signal : undefined,
    })
      .then(function (response) {
        if (!response.ok) throw new Error("palette " + response.status);
        return response.json();
      })
      .then(function (body) {
        render(q, body.items || []);
      })
      .catch(function (err) {
        if (err && err.name === "AbortError") return;
        render(q, []);
        status.textContent = "Could not load matches. Press Enter to search instead.";
      });
  }

  function render(q, found) {
    items = found.slice();
    if (q) {
      items.push({ kind: "search", title: "Search everything for “" + q + "”", url: "/search?q=" + encodeURIComponent(q), hint: "Search", method: "get" });
    }
    list.textContent = "";
    items.forEach(function (item, index) {
      var option = el("li", {
        id: "palette-opt-" + index,
        role: "option",
        "aria-selected": "false",
        "data-index": String(index),
        "data-kind": item.kind,
        class: "palette-option",
      });
      option.appendChild(el("span", { class: "palette-title" }, item.title));
      option.appendChild(el("small", { class: "palette-kind" }, item.hint || item.kind));
      list.appendChild(option);
    });
    var count = items.length - (q ? 1 : 0);
    status.textContent = q ? (count ? count + (count === 1 ? " match" : " matches") : "No quick match") : "";
    select(items.length ? 0 : -1);
  }

  function select(index) {
    var options = list.querySelectorAll("[role=option]");
    if (active >= 0 && options[active]) options[active].setAttribute("aria-selected", "false");
    active = index;
    if (index < 0 || !options[index]) {
      input.removeAttribute("aria-activedescendant");
      return;
    }
    options[index].setAttribute("aria-selected", "true");
    input.setAttribute("aria-activedescendant", options[index].id);
    if (options[index].scrollIntoView) options[index].scrollIntoView({ block: "nearest" });
  }

  function onKey(evt) {
    var last = items.length - 1;
    if (evt.key === "ArrowDown") {
      evt.preventDefault();
      select(active >= last ? 0 : active + 1);
    } else if (evt.key === "ArrowUp") {
      evt.preventDefault();
      select(active <= 0 ? last : active - 1);
    } else if (evt.key === "Home" && items.length) {
      evt.preventDefault();
      select(0);
    } else if (evt.key === "End" && items.length) {
      evt.preventDefault();
      select(last);
    } else if (evt.key === "Enter") {
      evt.preventDefault();
      // Typed faster than the debounce: the typed text is what counts, so search it.
      var q = input.value.trim();
      if (q !== lastQuery && q) {
        window.location.assign("/search?q=" + encodeURIComponent(q));
        return;
      }
      go(active);
    } else if (evt.key === "Escape") {
      evt.preventDefault();
      hide();
    }
  }

  function go(index) {
    var item = items[index];
    if (!item) return;
    if (item.method === "post") {
      // Actions that change something are forms, with the page's CSRF token.
      var form = el("form", { method: "post", action: item.url, class: "visually-hidden" });
      var token = window.Multinotes ? window.Multinotes.csrfToken() : "";
      form.appendChild(el("input", { type: "hidden", name: "csrf_token", value: token }));
      document.body.appendChild(form);
      form.submit();
      return;
    }
    window.location.assign(item.url);
  }

  document.addEventListener("keydown", function (evt) {
    if ((evt.ctrlKey || evt.metaKey) && !evt.altKey && (evt.key === "k" || evt.key === "K")) {
      evt.preventDefault();
      if (dialog && dialog.open) hide();
      else show();
    }
  });

  document.addEventListener("click", function (evt) {
    var opener = evt.target.closest ? evt.target.closest("[data-palette-open]") : null;
    if (!opener) return;
    evt.preventDefault();
    show();
  });
})();
