/* The chat's context policy: what happens when the conversation outgrows a model's window
 * (drop the oldest turns, or summarise them). Saved at once with PATCH /api/conversations/{id};
 * a refused change puts the previous choice back and says why. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function setUp() {
    var box = document.getElementById("context-policy");
    if (!box) return;
    var select = document.getElementById("context-policy-select");
    var status = document.getElementById("context-policy-status");
    var saved = select.value;
    select.addEventListener("change", async function () {
      var chosen = select.value;
      status.textContent = "Saving…";
      try {
        var response = await fetch(
          "/api/conversations/" + encodeURIComponent(box.getAttribute("data-conversation-id")),
          {
            method: "PATCH",
            credentials: "same-origin",
            headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
            body: JSON.stringify({ context_policy: chosen })
          }
        );
        if (!response.ok) {
          var problem = await response.json().catch(function () { return {}; });
          throw new Error((problem.error && problem.error.message) || "The change was not saved.");
        }
        saved = chosen;
        status.textContent = chosen === "summarise"
          ? "Older turns will be summarised when the chat outgrows a model."
          : "Older turns will be left out when the chat outgrows a model.";
      } catch (error) {
        select.value = saved;
        status.textContent = error.message || "The change was not saved.";
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
