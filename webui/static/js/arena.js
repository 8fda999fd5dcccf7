/* Blind comparisons (/comparisons): start one and watch its answers stream as A, B, C.
 *
 *   POST /api/comparisons {prompt, models? | count}  -> text/event-stream:
 *     comparison {id, labels}, start/delta/done/error {label, ...}, end {id}
 *
 * The events carry only labels (the server strips model names, costs and provider errors), so
 * nothing here can reveal a model. When the answers are in, the comparison's own page (vote
 * form, then the names) takes over.
 */
(function () {
  "use strict";
  var form = document.querySelector("[data-arena-form]");
  if (!form || !window.Multinotes) return;
  var status = document.getElementById("arena-status");
  var area = document.getElementById("arena-answers");
  var button = document.getElementById("arena-start");

  function column(label) {
    var article = document.createElement("article");
    article.className = "arena-answer";
    article.id = "answer-" + label;
    var title = document.createElement("h2");
    title.textContent = "Answer " + label;
    var text = document.createElement("div");
    text.className = "arena-text";
    text.setAttribute("aria-live", "polite");
    article.appendChild(title);
    article.appendChild(text);
    area.appendChild(article);
    return text;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    var chosen = Array.prototype.map.call(
      form.querySelectorAll('input[name="models"]:checked'), function (box) { return box.value; });
    var body = { prompt: form.elements.prompt.value };
    if (chosen.length) body.models = chosen;
    else body.count = parseInt(form.elements.count.value, 10);
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    status.textContent = "Asking the models…";
    area.replaceChildren();
    var texts = {};
    var comparison = null;
    try {
      var response = await window.Multinotes.request("POST", "/api/comparisons", body);
      if (!response.ok) {
        var problem = await response.json().catch(function () { return {}; });
        var error = problem.error || {};
        var fields = error.fields ? " " + Object.values(error.fields).join("; ") : "";
        status.textContent = (error.message || "The comparison could not start.") + fields;
        return;
      }
      area.hidden = false;
      await window.Multinotes.readEvents(response, function (name, data) {
        if (name === "comparison") {
          comparison = data.id;
          data.labels.forEach(function (label) { texts[label] = column(label); });
          status.textContent = "The answers are being written.";
        } else if (name === "delta" && texts[data.label]) {
          texts[data.label].textContent += data.text;
        } else if (name === "done" && texts[data.label]) {
          // Sanitised on the server (the same renderer as the chat's answers).
          texts[data.label].innerHTML = data.html;
        } else if (name === "error" && texts[data.label]) {
          texts[data.label].textContent = data.message;
        }
      });
      if (comparison) window.location.assign("/comparisons/" + comparison);
    } catch (e) {
      status.textContent = "The connection was lost." + (comparison ? " Your comparison is saved below." : "");
      if (comparison) window.location.assign("/comparisons/" + comparison);
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  });
})();
