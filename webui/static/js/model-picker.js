/*
 * The chat page's model picker: search, capability / price / favourites filters, stars (saved
 * per person with POST /api/me/model-favourites), models that can't be used tucked away behind
 * "Show them", and the last models picked remembered for the next new chat (localStorage, per
 * signed-in person). Without JavaScript the picker is the plain list of checkboxes.
 *
 * Picking is still workspace.js's business: this file only ticks boxes and announces it with a
 * bubbling "change" event, as a click would.
 */
(function () {
  "use strict";

  var fieldset = document.querySelector("#model-picker .model-choices");
  if (!fieldset) return;
  var rows = Array.prototype.slice.call(fieldset.querySelectorAll(".model-row[data-model]"));
  var filters = document.getElementById("model-filters");
  var search = document.getElementById("model-search");
  var capability = document.getElementById("model-capability");
  var price = document.getElementById("model-price");
  var favouritesOnly = document.getElementById("model-favourites-only");
  var empty = document.getElementById("model-filter-empty");
  var showUnusable = document.getElementById("model-show-unusable");
  var workspace = document.getElementById("workspace");
  var storageKey = "multinotes.lastModels." + (fieldset.getAttribute("data-user") || "");
  var unusableShown = false;

  function boxOf(row) {
    return row.querySelector('input[name="models"]');
  }

  function apply() {
    var terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var cap = capability.value;
    var maxPrice = price.value === "" ? null : Number(price.value);
    var onlyFavourites = favouritesOnly.checked;
    var shown = 0;
    rows.forEach(function (row) {
      var usable = row.getAttribute("data-available") === "true";
      var text = row.getAttribute("data-search") || "";
      var caps = (row.getAttribute("data-capabilities") || "").split(" ");
      var cost = Number(row.getAttribute("data-price") || 0);
      var match = (usable || unusableShown) &&
        terms.every(function (t) { return text.indexOf(t) >= 0; }) &&
        (!cap || caps.indexOf(cap) >= 0) &&
        (maxPrice === null || cost <= maxPrice) &&
        (!onlyFavourites || row.getAttribute("data-favourite") === "true");
      row.hidden = !match;
      if (match) shown++;
    });
    empty.hidden = shown > 0;
  }

  function star(button) {
    var row = button.closest(".model-row");
    var on = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", on ? "true" : "false");
    row.setAttribute("data-favourite", on ? "true" : "false");
    window.Multinotes.request("POST", fieldset.getAttribute("data-favourites-url"), {
      model: button.getAttribute("data-star"), favourite: on,
    }).then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
    }).catch(function () {
      button.setAttribute("aria-pressed", on ? "false" : "true");
      row.setAttribute("data-favourite", on ? "false" : "true");
    }).then(apply);
  }

  function remember() {
    var chosen = rows.map(boxOf).filter(function (box) { return box.checked && !box.disabled; })
      .map(function (box) { return box.value; });
    try {
      if (chosen.length) localStorage.setItem(storageKey, JSON.stringify(chosen));
    } catch (e) { /* storage off: nothing to remember with */ }
  }

  function restore() {
    // Only a new, plain chat: a conversation keeps its models, a tool has its own.
    if (!workspace || workspace.getAttribute("data-conversation-id") ||
        workspace.getAttribute("data-tool")) return;
    var saved;
    try {
      saved = JSON.parse(localStorage.getItem(storageKey) || "[]");
    } catch (e) {
      return;
    }
    if (!Array.isArray(saved)) return;
    var boxes = rows.map(boxOf).filter(function (box) { return !box.disabled; });
    var usable = boxes.filter(function (box) { return saved.indexOf(box.value) >= 0; });
    if (!usable.length) return;
    boxes.forEach(function (box) { box.checked = usable.indexOf(box) >= 0; });
    usable[0].dispatchEvent(new Event("change", { bubbles: true }));
  }

  filters.hidden = false;
  fieldset.querySelectorAll(".model-star").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { star(button); });
  });
  [search, capability, price, favouritesOnly].forEach(function (control) {
    control.addEventListener(control === search ? "input" : "change", apply);
  });
  // Enter in the search box must not send the prompt's form.
  search.addEventListener("keydown", function (evt) {
    if (evt.key === "Enter") evt.preventDefault();
  });
  document.getElementById("model-filter-clear").addEventListener("click", function () {
    search.value = "";
    capability.value = "";
    price.value = "";
    favouritesOnly.checked = false;
    apply();
    search.focus();
  });
  if (showUnusable) {
    showUnusable.hidden = false;
    showUnusable.addEventListener("click", function () {
      unusableShown = !unusableShown;
      showUnusable.setAttribute("aria-expanded", unusableShown ? "true" : "false");
      showUnusable.textContent = unusableShown ? "Hide them" : "Show them";
      apply();
    });
  }
  fieldset.addEventListener("change", function (evt) {
    if (evt.target.name === "models") remember();
  });
  restore();
  apply();
})();
