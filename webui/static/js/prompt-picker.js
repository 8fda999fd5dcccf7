/*
 * The workspace's template picker: choose a prompt template (the list and each template's
 * variables form are server-rendered partials, /prompts/picker and /prompts/{id}/fill, loaded
 * with htmx), fill its variables, and the rendered prompt goes in the composer
 * (POST /api/templates/{id}/render, which records nothing). The template's preferred models
 * are selected and its system prompt goes to every model that takes one. Once the composer's
 * prompt was accepted by the server (workspace.js dispatches "multinotes:prompt-accepted"),
 * the run is counted: POST /api/templates/{id}/uses. Opening /chat?template=<id> starts with
 * that template's form. While a prompt is typed, templates that fit it are suggested below the
 * composer.
 */
(function () {
  "use strict";

  var picker = document.getElementById("template-picker");
  var composer = document.getElementById("composer");
  if (!picker || !composer) return;
  var promptBox = document.getElementById("prompt");
  var fillBox = document.getElementById("template-fill");
  var request = window.Multinotes.request;
  /** The template whose rendered prompt is in the composer: {id, values, prompt}. */
  var pending = null;

  function valuesOf(form) {
    var values = {};
    form.querySelectorAll("[data-variable]").forEach(function (input) {
      var value = input.value;
      if (input.type === "number" && value.trim() !== "") value = Number(value);
      values[input.getAttribute("data-variable")] = value === "" ? null : value;
    });
    return values;
  }

  function showErrors(form, message, fields) {
    var alertBox = form.querySelector("#template-fill-alert");
    form.querySelectorAll("[data-error-for]").forEach(function (el) { el.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
    alertBox.textContent = message || "";
    alertBox.hidden = !message;
    var first = null;
    Object.keys(fields || {}).forEach(function (key) {
      var name = key.replace(/^values\./, "");
      var slot = form.querySelector('[data-error-for="' + name + '"]');
      var input = form.querySelector('[data-variable="' + name + '"]');
      if (slot) slot.textContent = fields[key];
      if (input) {
        input.setAttribute("aria-invalid", "true");
        first = first || input;
      }
    });
    if (first) first.focus();
  }

  function selectModels(ids) {
    var boxes = Array.prototype.slice.call(document.querySelectorAll('#model-picker input[name="models"]'));
    var available = boxes.filter(function (b) { return !b.disabled && ids.indexOf(b.value) >= 0; });
    if (!available.length) return; // none of them offered here: keep the user's choice
    boxes.forEach(function (box) { box.checked = available.indexOf(box) >= 0; });
    document.getElementById("model-picker").dispatchEvent(new Event("change", { bubbles: true }));
  }

  function setSystemPrompt(text) {
    document.querySelectorAll('[data-options-for] [data-option="system"]').forEach(function (input) {
      input.value = text || "";
    });
  }

  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (!form || form.id !== "template-fill-form") return;
    evt.preventDefault();
    var id = form.getAttribute("data-template-id");
    var values = valuesOf(form);
    request("POST", "/api/templates/" + encodeURIComponent(id) + "/render", { values: values })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (result) {
        if (!result.ok) {
          var error = (result.body && result.body.error) || {};
          showErrors(form, error.message || "The template could not be filled in.", error.fields);
          return;
        }
        var rendered = result.body;
        promptBox.value = rendered.prompt;
        if (rendered.preferred_models.length) selectModels(rendered.preferred_models);
        if (rendered.system_prompt) setSystemPrompt(rendered.system_prompt);
        pending = { id: id, values: values, prompt: rendered.prompt.trim() };
        picker.open = false;
        fillBox.textContent = "";
        promptBox.focus();
      })
      .catch(function () {
        showErrors(form, "The template could not be filled in; check your connection.", {});
      });
  });

  composer.addEventListener("multinotes:prompt-accepted", function (evt) {
    if (!pending) return;
    var sent = pending;
    // Counted only when what was sent is the template's prompt (not replaced by other text).
    if ((evt.detail && evt.detail.content) !== sent.prompt) return;
    pending = null;
    request("POST", "/api/templates/" + encodeURIComponent(sent.id) + "/uses", { values: sent.values });
  });

  /*
   * Suggestions from the library while the prompt is written (GET /api/templates/suggestions):
   * up to three templates whose title, description or tags fit its words. Choosing one opens
   * the picker with that template's form.
   */
  var suggestions = document.getElementById("template-suggestions");
  var suggestTimer = null;
  var suggestedFor = "";

  function openTemplate(id) {
    picker.open = true;
    if (window.htmx) {
      window.htmx.ajax("GET", "/prompts/" + encodeURIComponent(id) + "/fill", { source: "#template-fill", target: "#template-fill", swap: "innerHTML" });
    }
    picker.scrollIntoView({ block: "nearest" });
  }

  function showSuggestions(templates) {
    var list = suggestions.querySelector("ul");
    list.textContent = "";
    templates.forEach(function (t) {
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "secondary outline";
      button.setAttribute("data-suggested-template", t.id);
      button.textContent = t.title;
      button.title = t.description || t.title;
      button.addEventListener("click", function () {
        suggestions.hidden = true;
        openTemplate(t.id);
      });
      item.appendChild(button);
      list.appendChild(item);
    });
    suggestions.hidden = templates.length === 0;
  }

  function suggest() {
    var text = promptBox.value.trim();
    if (text === suggestedFor) return;
    suggestedFor = text;
    // Not for a prompt a template just wrote, nor for a word or two.
    if (text.length < 8 || (pending && pending.prompt === text)) {
      showSuggestions([]);
      return;
    }
    var url = "/api/templates/suggestions?" + new URLSearchParams({ text: text.slice(0, 2000) });
    request("GET", url)
      .then(function (response) { return response.ok ? response.json() : { templates: [] }; })
      .then(function (body) {
        if (promptBox.value.trim() === text) showSuggestions(body.templates || []);
      })
      .catch(function () { /* suggestions are a nicety */ });
  }

  if (suggestions && promptBox) {
    promptBox.addEventListener("input", function () {
      clearTimeout(suggestTimer);
      suggestTimer = setTimeout(suggest, 400);
    });
    composer.addEventListener("multinotes:prompt-accepted", function () {
      suggestedFor = "";
      showSuggestions([]);
    });
  }

  var asked = new URLSearchParams(window.location.search).get("template");
  if (asked && /^[A-Za-z0-9]{1,32}$/.test(asked) && window.htmx) {
    picker.open = true;
    window.htmx.ajax("GET", "/prompts/" + asked + "/fill", { source: "#template-fill", target: "#template-fill", swap: "innerHTML" });
  }
})();
