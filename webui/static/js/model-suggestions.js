/*
 * The composer's "Suggested models" (issue #18 item 7). htmx fetches the list while a prompt is
 * written (GET /chat/model-suggestions, which changes nothing); a click on a suggestion ticks
 * that model in the model picker, announced with a bubbling "change" event as a click on its
 * box would be (workspace.js does the picking). A second click unticks it.
 */
(function () {
  "use strict";

  var box = document.getElementById("model-suggestions");
  if (!box) return;

  function checkboxFor(modelId) {
    var boxes = document.querySelectorAll('#model-picker input[name="models"]');
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].value === modelId) return boxes[i];
    }
    return null;
  }

  function markApplied() {
    box.querySelectorAll("[data-apply-model]").forEach(function (button) {
      var input = checkboxFor(button.getAttribute("data-apply-model"));
      button.setAttribute("aria-pressed", input && input.checked ? "true" : "false");
    });
  }

  box.addEventListener("click", function (evt) {
    var button = evt.target.closest("[data-apply-model]");
    if (!button) return;
    var input = checkboxFor(button.getAttribute("data-apply-model"));
    if (!input || input.disabled) return;
    input.checked = !input.checked;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    markApplied();
  });

  // The first 2,000 characters judge a prompt; a longer one would not fit in the GET's URL.
  box.addEventListener("htmx:configRequest", function (evt) {
    var text = evt.detail.parameters.content;
    if (typeof text === "string" && text.length > 2000) {
      evt.detail.parameters.content = text.slice(0, 2000);
    }
  });

  // Suggestions arriving (htmx swap) or the picker changing by hand keep the pressed states true.
  box.addEventListener("htmx:afterSwap", markApplied);
  document.addEventListener("change", function (evt) {
    if (evt.target && evt.target.name === "models") markApplied();
  });
})();
