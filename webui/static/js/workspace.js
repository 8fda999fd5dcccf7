/*
 * The chat workspace (/chat, /chat/{id}). Plain JS, no build step, CSP-safe: no inline code,
 * no eval, and the only HTML ever inserted from a response is the `html` of a `done` event
 * (Markdown rendered and sanitised by the server with nh3). Streamed text goes in as text.
 *
 * It drives the JSON/SSE API:
 *   POST /api/messages                         a new chat with its first prompt -> text/event-stream
 *   POST /api/conversations/{id}/messages      a prompt to 1..N models  -> text/event-stream
 *   GET  /api/messages/{id}/stream             follow an answer still being written (SSE)
 *   POST /api/messages/{id}/regenerate         another answer (same SSE events)
 *   POST /api/generations/{id}/cancel          stop one model
 *   POST /api/messages/{id}/rating             1-5 stars and a comment
 *   GET  /api/wallet                           the credit meter
 * and swaps in two server-rendered partials with htmx: the thread (/chat/{id}/thread?leaf=)
 * once a stream ends, and the conversation list (/chat/sidebar).
 *
 * Answers belong to the server: leaving the page does not stop them (only Stop does), and an
 * answer still pending when the page opens (or when a stream is cut) is followed to its end.
 *
 * SSE events: prompt {message_id, conversation_id}; start {generation_id, model, message_id,
 * conversation_id, dropped_turns};
 * delta {generation_id, model, text}; media {generation_id, model, id, media_type, name, url};
 * error {generation_id, model, code, message}; done {generation_id, model, message_id, status,
 * usage, cost, latency_ms, duration_ms, html}; end {}.
 */
(function () {
  "use strict";

  var root = document.getElementById("workspace");
  if (!root) return;

  var composer = document.getElementById("composer");
  var promptBox = document.getElementById("prompt");
  var thread = document.getElementById("thread");
  var sendButton = document.getElementById("send");
  var stopAllButton = document.getElementById("stop-all");
  var alertBox = document.getElementById("composer-alert");
  var announcer = document.getElementById("ws-announcer");
  var picker = document.getElementById("model-picker");
  var pickerSummary = document.getElementById("model-summary");
  var attachInput = document.getElementById("attach");
  var attachmentList = document.getElementById("attachment-list");

  var MAX_ATTACHMENT_BYTES = 7 * 1024 * 1024; // the request limit is 10 MiB; base64 adds a third
  var MEDIA_TYPE = /^(image|audio|video)\/[a-z0-9.+-]+$|^application\/pdf$/;

  /** The stream in flight: {controller, cards: {generation_id: card}, ended, finished: []}. */
  var active = null;
  // A finished stream's thread is being re-rendered: its buttons are about to be replaced.
  var settling = false;
  var settled = Promise.resolve(); // resolves when that re-render has landed
  var attachments = []; // [{media_type, data, name, size}]

  // -- small helpers ---------------------------------------------------------------------------

  function conversationId() {
    return root.getAttribute("data-conversation-id") || "";
  }

  var request = window.Multinotes.request;

  /** The message of a JSON problem response ({"error": {code, message, fields}}). */
  function problemOf(response) {
    return response.json().then(
      function (body) {
        var error = (body && body.error) || {};
        var message = error.message || "Something went wrong (" + response.status + ").";
        var fields = error.fields || {};
        var details = Object.keys(fields).map(function (name) {
          return name + ": " + fields[name];
        });
        return { status: response.status, code: error.code, message: message, details: details };
      },
      function () {
        return { status: response.status, message: "Something went wrong (" + response.status + ")." };
      }
    );
  }

  function announce(text) {
    // Clear first so the same words are announced again.
    announcer.textContent = "";
    window.setTimeout(function () { announcer.textContent = text; }, 50);
  }

  function showAlert(message, details, link) {
    alertBox.textContent = "";
    var strong = document.createElement("strong");
    strong.textContent = message;
    alertBox.appendChild(strong);
    if (details && details.length) {
      var list = document.createElement("ul");
      details.forEach(function (line) {
        var item = document.createElement("li");
        item.textContent = line;
        list.appendChild(item);
      });
      alertBox.appendChild(list);
    }
    if (link) {
      alertBox.appendChild(document.createTextNode(" "));
      var a = document.createElement("a");
      a.href = link.href;
      a.textContent = link.text;
      alertBox.appendChild(a);
    }
    alertBox.hidden = false;
  }

  function clearAlert() {
    alertBox.hidden = true;
    alertBox.textContent = "";
  }

  function durationText(ms) {
    if (ms === null || ms === undefined) return "–";
    return ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(1) + " s";
  }

  function number(n) {
    return Number(n || 0).toLocaleString("en-US");
  }

  function statusText(status) {
    return { pending: "Streaming…", complete: "Complete", stopped: "Stopped", failed: "Failed" }[status] || status;
  }

  function field(el, name) {
    return el.querySelector('[data-field="' + name + '"]');
  }

  function modelInfo(modelId) {
    var boxes = document.querySelectorAll('#model-picker input[name="models"]');
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].value === modelId) {
        var label = boxes[i].closest("label").querySelector(".badge.demo");
        return { name: boxes[i].getAttribute("data-name") || modelId, label: label ? label.textContent : "" };
      }
    }
    return { name: modelId, label: "" };
  }

  // -- the model picker and options ------------------------------------------------------------

  function modelBoxes() {
    return Array.prototype.slice.call(document.querySelectorAll('#model-picker input[name="models"]'));
  }

  function selectedModels() {
    return modelBoxes().filter(function (box) { return box.checked && !box.disabled; })
      .map(function (box) { return box.value; });
  }

  function optionSets() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-options-for]"));
  }

  function syncPicker() {
    var chosen = modelBoxes().filter(function (box) { return box.checked && !box.disabled; });
    var names = chosen.map(function (box) { return box.getAttribute("data-name"); });
    pickerSummary.textContent = names.length
      ? "Models: " + names.join(", ")
      : "Choose models";
    var ids = chosen.map(function (box) { return box.value; });
    optionSets().forEach(function (set) {
      set.hidden = ids.indexOf(set.getAttribute("data-options-for")) < 0;
    });
    var empty = document.querySelector(".model-options .options-empty");
    if (empty) empty.hidden = ids.length > 0;
  }

  function selectModels(ids) {
    var any = false;
    modelBoxes().forEach(function (box) {
      box.checked = !box.disabled && ids.indexOf(box.value) >= 0;
      any = any || box.checked;
    });
    syncPicker();
    return any;
  }

  function readOption(input) {
    var raw = input.value.trim();
    if (raw === "") return undefined;
    if (input.type === "number") {
      var value = Number(raw);
      if (!isFinite(value)) return undefined;
      return input.getAttribute("data-integer") === "true" ? Math.round(value) : value;
    }
    return input.value;
  }

  function offers(select, value) {
    return Array.prototype.some.call(select.options, function (option) {
      return option.value !== "" && option.value === String(value);
    });
  }

  /** Per-model options: only what was set, plus the tool's inputs for models that take them. */
  function collectOptions(models) {
    var options = {};
    var shared = {};
    // A tool's inputs (image size, voice, its system prompt) go to every model that takes them.
    document.querySelectorAll("#tool-inputs [data-tool-option]").forEach(function (input) {
      var value = readOption(input);
      if (value !== undefined) shared[input.getAttribute("data-tool-option")] = value;
    });
    optionSets().forEach(function (set) {
      var model = set.getAttribute("data-options-for");
      if (models.indexOf(model) < 0) return;
      var values = {};
      var inputs = {};
      set.querySelectorAll("[data-option]").forEach(function (input) {
        var name = input.getAttribute("data-option");
        inputs[name] = input;
        var value = readOption(input);
        if (value !== undefined) values[name] = value;
      });
      Object.keys(shared).forEach(function (name) {
        if (!inputs[name] || name in values) return;
        // A tool's choice goes only to models that offer it (a wide-only image model has no
        // square size): the others keep their own default instead of refusing the request.
        if (inputs[name].tagName === "SELECT" && !offers(inputs[name], shared[name])) return;
        values[name] = shared[name];
      });
      if (Object.keys(values).length) options[model] = values;
    });
    return options;
  }

  // -- attachments -----------------------------------------------------------------------------

  function renderAttachments() {
    attachmentList.textContent = "";
    attachmentList.hidden = attachments.length === 0;
    attachments.forEach(function (item, index) {
      var li = document.createElement("li");
      var name = document.createElement("span");
      name.textContent = item.name + " (" + Math.max(1, Math.round(item.size / 1024)) + " KB)";
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "secondary outline";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", "Remove " + item.name);
      remove.addEventListener("click", function () {
        attachments.splice(index, 1);
        renderAttachments();
        attachInput.focus();
      });
      li.appendChild(name);
      li.appendChild(remove);
      attachmentList.appendChild(li);
    });
  }

  function readFile(file) {
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onload = function () {
        var url = String(reader.result);
        resolve(url.slice(url.indexOf(",") + 1));
      };
      reader.onerror = function () { reject(reader.error); };
      reader.readAsDataURL(file);
    });
  }

  attachInput.addEventListener("change", function () {
    var files = Array.prototype.slice.call(attachInput.files || []);
    clearAlert();
    var total = attachments.reduce(function (sum, a) { return sum + a.size; }, 0);
    var reads = [];
    files.forEach(function (file) {
      if (!MEDIA_TYPE.test(file.type)) {
        showAlert(file.name + " cannot be attached: only images, audio, video and PDF files.");
        return;
      }
      total += file.size;
      if (total > MAX_ATTACHMENT_BYTES) {
        showAlert(file.name + " is too large: attachments may add up to 7 MB.");
        return;
      }
      reads.push(readFile(file).then(function (data) {
        attachments.push({ media_type: file.type, data: data, name: file.name, size: file.size });
      }));
    });
    Promise.all(reads).then(renderAttachments, function () {
      showAlert("A file could not be read.");
      renderAttachments();
    });
    attachInput.value = "";
  });

  // -- cards -----------------------------------------------------------------------------------

  function fromTemplate(id) {
    return document.getElementById(id).content.firstElementChild.cloneNode(true);
  }

  /** A streaming answer card for `messageId` (the template's ids carry the placeholder __ID__). */
  function newCard(messageId, modelId, generationId) {
    var card = fromTemplate("tpl-answer");
    [card].concat(Array.prototype.slice.call(card.querySelectorAll("*"))).forEach(function (el) {
      ["id", "for", "aria-labelledby", "data-copy"].forEach(function (name) {
        var value = el.getAttribute(name);
        if (value && value.indexOf("__ID__") >= 0) el.setAttribute(name, value.split("__ID__").join(messageId));
      });
    });
    var info = modelInfo(modelId);
    card.setAttribute("data-message-id", messageId);
    card.setAttribute("data-generation-id", generationId);
    card.setAttribute("data-model", modelId);
    card.querySelector(".rating-form").setAttribute("data-message-id", messageId);
    field(card, "model-name").textContent = info.name;
    var label = field(card, "model-label");
    label.textContent = info.label;
    label.hidden = !info.label;
    field(card, "body").setAttribute("aria-busy", "true");
    return card;
  }

  function setStatus(card, status) {
    card.setAttribute("data-status", status);
    var badge = field(card, "status");
    badge.className = "badge status status-" + status;
    badge.textContent = statusText(status);
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
    field(card, "source").value += text;
  }

  function addMedia(card, data) {
    var box = field(card, "media");
    var figure = document.createElement("figure");
    var name = modelInfo(card.getAttribute("data-model")).name;
    var kind = (data.media_type || "").split("/")[0];
    var el;
    if (kind === "image") {
      el = document.createElement("img");
      el.alt = name + ": " + (data.name || "generated image");
    } else if (kind === "audio" || kind === "video") {
      el = document.createElement(kind);
      el.controls = true;
      el.setAttribute("preload", "metadata");
      el.setAttribute("aria-label", name + ": " + (data.name || kind));
    } else {
      el = document.createElement("a");
      el.textContent = data.name || "Download";
    }
    // Only our own media URLs.
    var url = String(data.url || "");
    if (!/^\/api\/media\/[A-Za-z0-9]+$/.test(url)) return;
    if (el.tagName === "A") el.href = url; else el.src = url;
    figure.appendChild(el);
    box.appendChild(figure);
  }

  function showError(card, message) {
    var box = field(card, "error");
    box.textContent = message;
    box.hidden = false;
  }

  function fillStats(card, data) {
    var usage = data.usage || {};
    var tokens = number(usage.input_tokens) + " in / " + number(usage.output_tokens) + " out";
    if (usage.images) tokens += " · " + usage.images + " image" + (usage.images === 1 ? "" : "s");
    if (usage.audio_seconds) tokens += " · " + Math.round(usage.audio_seconds) + " s audio";
    var stats = field(card, "stats");
    stats.querySelector('[data-stat="tokens"]').textContent = tokens;
    stats.querySelector('[data-stat="cost"]').textContent =
      number(data.cost) + " credit" + (data.cost === 1 ? "" : "s");
    stats.querySelector('[data-stat="latency"]').textContent = durationText(data.latency_ms);
    stats.querySelector('[data-stat="duration"]').textContent = durationText(data.duration_ms);
    stats.hidden = false;
  }

  function finishCard(card, data) {
    var body = field(card, "body");
    if (typeof data.html === "string" && (data.html || !body.querySelector(".streaming-text"))) {
      // Sanitised on the server (markdown-it without raw HTML, then nh3): the one HTML insert.
      body.innerHTML = data.html;
    }
    body.setAttribute("aria-busy", "false");
    setStatus(card, data.status || "complete");
    fillStats(card, data);
    var stop = card.querySelector('[data-action="stop"]');
    var regenerate = card.querySelector('[data-action="regenerate"]');
    // While other answers of the same request stream (or the thread is being re-rendered after
    // them), a click could not start anything: setBusy enables it once the thread has settled.
    regenerate.disabled = !!active || settling;
    if (document.activeElement === stop) regenerate.focus();
    stop.hidden = true;
  }

  // -- streaming -------------------------------------------------------------------------------

  var readEvents = window.Multinotes.readEvents;

  function setBusy(busy) {
    sendButton.disabled = busy;
    sendButton.setAttribute("aria-busy", busy ? "true" : "false");
    stopAllButton.disabled = !busy;
    root.classList.toggle("streaming", busy);
    document.querySelectorAll('#thread [data-action="regenerate"], #thread [data-action="edit"]').forEach(function (b) {
      if (busy) b.disabled = true;
      else if (!b.closest('.answer[data-status="pending"]')) b.disabled = false;
    });
  }

  /**
   * Send a request whose answer is an SSE stream and show it.
   * target: {turn, column (regenerate: the column the new answer joins)}.
   * Resolves with {ok, promptId, answerIds}.
   */
  async function stream(url, body, target, onAccepted) {
    var controller = new AbortController();
    active = { controller: controller, cards: {}, ended: false, finished: [] };
    var state = active;
    var promptId = null;
    var answerIds = [];
    setBusy(true);
    clearAlert();
    try {
      var response;
      try {
        response = await request("POST", url, body, controller.signal);
      } catch (e) {
        if (e.name !== "AbortError") showAlert("The server could not be reached. Check your connection and try again.");
        return { ok: false };
      }
      if (!response.ok) {
        var problem = await problemOf(response);
        if (problem.status === 402) {
          showAlert("Out of credits.", [problem.message], { href: "/pricing", text: "Buy credits" });
        } else {
          showAlert(problem.message, problem.details);
        }
        announce(problem.status === 402 ? "Out of credits." : "The prompt was not sent: " + problem.message);
        return { ok: false, status: problem.status };
      }
      if (onAccepted) onAccepted();
      var names = (body.models || []).map(function (m) { return modelInfo(m).name; });
      announce(names.length ? "Asking " + names.join(", ") + "." : "Generating a new answer.");
      try {
        await readEvents(response, function (name, data) {
          var card = data.generation_id ? state.cards[data.generation_id] : null;
          if (name === "prompt") {
            promptId = data.message_id;
            if (target.turn) target.turn.setAttribute("data-message-id", promptId);
            adoptConversation(data.conversation_id);
          } else if (name === "start") {
            card = newCard(data.message_id, data.model, data.generation_id);
            state.cards[data.generation_id] = card;
            answerIds.push(data.message_id);
            placeCard(target, card, data.model);
            showContext(card, data);
          } else if (name === "delta" && card) {
            appendText(card, data.text || "");
          } else if (name === "media" && card) {
            addMedia(card, data);
          } else if (name === "error" && card) {
            showError(card, data.message || "The model failed.");
          } else if (name === "done" && card) {
            finishCard(card, data);
            state.finished.push(modelInfo(data.model).name + " " + statusText(data.status).toLowerCase());
            refreshWallet();
          } else if (name === "end") {
            state.ended = true;
          } else if (name === "error" && !card) {
            showAlert(data.message || "The request failed.");
          }
        });
      } catch (e) {
        // Cut off (network, sleep): the answers go on on the server; follow them below.
      }
      Object.keys(state.cards).forEach(function (id) {
        var card = state.cards[id];
        if (card.getAttribute("data-status") === "pending") follow(card);
      });
      announce(state.finished.length ? "Answers finished: " + state.finished.join(", ") + "." : "Stopped.");
      settling = true; // until afterStream's re-render has landed
      return { ok: true, promptId: promptId, answerIds: answerIds };
    } finally {
      active = null;
      setBusy(settling);
    }
  }

  function placeCard(target, card, modelId) {
    var answers = field(target.turn, "answers");
    if (target.column) {
      // A regenerated answer takes the place of the one it regenerates, in the same column.
      var old = target.column.querySelector(".answer:not([hidden])");
      var hadFocus = old && old.contains(document.activeElement);
      if (old) old.hidden = true;
      target.column.appendChild(card);
      if (hadFocus) card.querySelector('[data-action="stop"]').focus();
      return;
    }
    var column = document.createElement("div");
    column.className = "answer-column";
    column.setAttribute("data-model", modelId);
    column.appendChild(card);
    answers.appendChild(column);
  }

  function stopAll() {
    if (!active) return;
    var ids = Object.keys(active.cards).filter(function (id) {
      return active.cards[id].getAttribute("data-status") === "pending";
    });
    if (!ids.length) {
      active.controller.abort(); // no answer has started yet: nothing to stop, stop waiting
      return;
    }
    ids.forEach(stopOne);
    announce("Stopping all answers.");
  }

  function stopOne(generationId) {
    var card = active && active.cards[generationId];
    if (card) {
      var button = card.querySelector('[data-action="stop"]');
      button.disabled = true;
      button.textContent = "Stopping…";
    }
    return request("POST", "/api/generations/" + encodeURIComponent(generationId) + "/cancel", {}).then(
      function (response) {
        if (!response.ok && active) active.controller.abort();
      },
      function () {
        if (active) active.controller.abort();
      }
    );
  }

  // -- after a stream: the server's view of the thread, the URL, the list, the wallet ---------

  /**
   * Swap in the server's copy of the thread. Resolves once it has landed (or failed), not when
   * htmx takes the request: htmx.ajax's promise resolves at once for a request that waits its
   * turn behind another on the same element, and a send must not add its turn to a thread that
   * is about to be replaced.
   */
  function refreshThread(leaf) {
    var id = conversationId();
    if (!id || !window.htmx) return Promise.resolve();
    var url = "/chat/" + id + "/thread" + (leaf ? "?leaf=" + encodeURIComponent(leaf) : "");
    var thread = document.getElementById("thread");
    var kept = null;
    // What is open (Rate, Details) and typed there is read right before the swap, not when the
    // copy is asked for: someone may open Rate while it is on its way. A request that fails (an
    // error answer, or none) swaps nothing; its listeners go then too, not pile up. Swaps inside
    // the thread (a rating's form) bubble up here; only the thread's own count.
    var ending = ["htmx:afterSwap", "htmx:responseError", "htmx:sendError"];
    return new Promise(function (resolve) {
      function own(event) {
        return !event.detail || !event.detail.target || event.detail.target === thread;
      }
      function capture(event) {
        if (own(event)) kept = threadState();
      }
      // Never wait forever (a request htmx dropped without a word): the page stays usable.
      var fallback = window.setTimeout(function () { restore({ type: "timeout" }); }, 15000);
      function restore(event) {
        if (!own(event)) return;
        window.clearTimeout(fallback);
        thread.removeEventListener("htmx:beforeSwap", capture);
        ending.forEach(function (name) { thread.removeEventListener(name, restore); });
        if (event.type === "htmx:afterSwap" && kept) restoreThreadState(kept);
        resolve();
      }
      thread.addEventListener("htmx:beforeSwap", capture);
      ending.forEach(function (name) { thread.addEventListener(name, restore); });
      // The thread is the request's source, so it waits only for another copy of the thread,
      // never behind (or is replaced by) a refresh of the conversation list.
      window.htmx.ajax("GET", url, { source: thread, target: thread, swap: "innerHTML" })
        .catch(function () { restore({ type: "htmx:sendError" }); });
    });
  }

  /**
   * What someone is in the middle of inside the thread: open panels (Rate, Details), what they
   * typed or picked there, and focus. The re-render after an answer ends lands while they may
   * already be rating it; the server's copy has the same ids, so all of it is carried across.
   */
  function threadState() {
    var thread = document.getElementById("thread");
    var state = { open: [], values: [], focus: document.activeElement && document.activeElement.id };
    if (!thread) return state;
    thread.querySelectorAll("details[open]").forEach(function (details) {
      var owner = details.closest("[id]");
      if (!owner) return;
      state.open.push([owner.id, details.getAttribute("data-field") || ""]);
      details.querySelectorAll("input[id], textarea[id]").forEach(function (input) {
        var choice = input.type === "radio" || input.type === "checkbox";
        state.values.push([input.id, choice ? input.checked : input.value, choice]);
      });
    });
    return state;
  }

  function restoreThreadState(state) {
    state.open.forEach(function (entry) {
      var owner = document.getElementById(entry[0]);
      if (!owner) return;
      owner.querySelectorAll("details").forEach(function (details) {
        if ((details.getAttribute("data-field") || "") === entry[1] && details.closest("[id]") === owner) {
          details.open = true;
        }
      });
    });
    state.values.forEach(function (entry) {
      var input = document.getElementById(entry[0]);
      if (!input) return;
      if (entry[2]) input.checked = entry[1];
      else input.value = entry[1];
    });
    var focused = state.focus && document.getElementById(state.focus);
    if (focused && document.activeElement !== focused) focused.focus();
  }

  /** The conversation list (js/chat-sidebar.js) shows the list it shows (search, archived)
   *  again: this conversation may be new, renamed or moved up. */
  function refreshSidebar() {
    document.dispatchEvent(new CustomEvent("multinotes:conversations-changed"));
  }

  function refreshTitle() {
    var id = conversationId();
    if (!id) return;
    request("GET", "/api/conversations?limit=1").then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (page) {
      var first = page && page.conversations && page.conversations[0];
      if (first && first.id === id) {
        document.getElementById("ws-title").textContent = first.title;
        document.title = first.title + " · MultinotesAI";
      }
    }, function () {});
  }

  function refreshWallet() {
    request("GET", "/api/wallet").then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (wallet) {
      if (!wallet) return;
      document.getElementById("wallet-balance").textContent = number(wallet.available);
      var reserved = document.getElementById("wallet-reserved");
      reserved.textContent = "(" + number(wallet.reserved) + " held)";
      reserved.hidden = !wallet.reserved;
      document.getElementById("wallet-meter").classList.toggle("low", !!wallet.low_balance);
      document.getElementById("wallet-low").hidden = !wallet.low_balance;
    }, function () {});
  }

  /** What was just sent is the newest message, which is what /chat/{id} shows by default. */
  function afterStream(result) {
    if (!result.ok) return Promise.resolve();
    history.replaceState(null, "", "/chat/" + conversationId());
    refreshSidebar();
    refreshTitle();
    refreshWallet();
    settled = refreshThread(null).then(function () {
      settling = false;
      setBusy(!!active);
    });
    return settled;
  }

  /** A new chat exists as soon as its first prompt is accepted: its URL from then on. */
  function adoptConversation(id) {
    if (!id || conversationId()) return;
    root.setAttribute("data-conversation-id", id);
    history.replaceState(null, "", "/chat/" + id);
  }

  // -- following answers still being written ---------------------------------------------------

  /**
   * Follow a pending answer from the server (GET /api/messages/{id}/stream): its text so far,
   * then live, then its end. For answers that were streaming when the page was left, or when a
   * stream was cut off.
   */
  async function follow(card) {
    var messageId = card.getAttribute("data-message-id");
    if (!messageId || card.getAttribute("data-following") === "true") return;
    card.setAttribute("data-following", "true");
    var ended = false;
    try {
      for (var attempt = 0; attempt < 5 && !ended; attempt++) {
        if (attempt) await new Promise(function (resolve) { window.setTimeout(resolve, 1000 * attempt); });
        var response;
        try {
          response = await request("GET", "/api/messages/" + encodeURIComponent(messageId) + "/stream");
        } catch (e) {
          continue;
        }
        if (!response.ok) return;
        var body = field(card, "body");
        body.textContent = ""; // the whole text comes again, from the start
        field(card, "source").value = "";
        body.setAttribute("aria-busy", "true");
        try {
          await readEvents(response, function (name, data) {
            if (name === "start") {
              card.setAttribute("data-generation-id", data.generation_id);
            } else if (name === "delta") {
              appendText(card, data.text || "");
            } else if (name === "media") {
              addMedia(card, data);
            } else if (name === "error") {
              showError(card, data.message || "The model failed.");
            } else if (name === "done") {
              ended = true;
              finishCard(card, data);
              refreshWallet();
            }
          });
        } catch (e) {
          // cut off again: try once more
        }
      }
    } finally {
      card.setAttribute("data-following", "false");
    }
  }

  function followPending() {
    thread.querySelectorAll('.answer[data-status="pending"][data-message-id]').forEach(function (card) {
      if (card.getAttribute("data-message-id") && !(active && isActiveCard(card))) follow(card);
    });
  }

  /** How the conversation was fitted to the model's window (the start event): the summary
   * sent in place of older turns, or how many were left out (and whether summarising failed). */
  function showContext(card, data) {
    var summary = data.summary;
    if (summary) {
      var box = field(card, "summary");
      field(box, "summary-meta").textContent = summary.turns + " older message" +
        (summary.turns === 1 ? "" : "s") + ", summarised by " + summary.model;
      field(box, "summary-text").textContent = summary.content;
      box.hidden = false;
    } else if (data.dropped_turns) {
      var note = field(card, "note");
      var many = data.dropped_turns !== 1;
      note.textContent = data.dropped_turns + " older message" + (many ? "s " : " ") +
        (data.context_policy === "summarise_failed"
          ? "could not be summarised, so " + (many ? "they were" : "it was") + " "
          : "") +
        "left out to fit the model's context window.";
      note.hidden = false;
    }
  }

  function isActiveCard(card) {
    return Object.keys(active.cards).some(function (id) { return active.cards[id] === card; });
  }

  // -- sending ---------------------------------------------------------------------------------

  function defaultContent() {
    if (!attachments.length) return "";
    var capability = root.getAttribute("data-tool-capability");
    if (capability === "speech_to_text") return "Transcribe the attached audio.";
    return "Describe the attached file.";
  }

  function newTurn(content) {
    var empty = document.getElementById("thread-empty");
    if (empty) empty.remove();
    var turn = fromTemplate("tpl-turn");
    field(turn, "prompt-text").textContent = content;
    if (attachments.length) {
      var media = field(turn, "prompt-media");
      media.hidden = false;
      media.textContent = attachments.map(function (a) { return "📎 " + a.name; }).join("  ");
    }
    thread.appendChild(turn);
    return turn;
  }

  async function send(options) {
    options = options || {};
    if (active) {
      // Ctrl+Enter while answers still come in (Send is disabled): the prompt stays in the box.
      announce("Answers are still coming in: send when they end, or press Escape to stop them.");
      return;
    }
    // Ctrl+Enter works while Send waits for the last answer's re-render: the new turn goes into
    // the thread after that lands, or the swap would replace it while it streams.
    if (settling) await settled;
    if (active) return;
    clearAlert();
    var models = options.models || selectedModels();
    var content = (options.content !== undefined ? options.content : promptBox.value).trim() || defaultContent();
    if (!models.length) {
      showAlert("Choose at least one model.");
      picker.open = true;
      var first = modelBoxes().filter(function (b) { return !b.disabled; })[0];
      if (first) first.focus();
      return;
    }
    if (root.getAttribute("data-file-required") === "true" && !attachments.length && options.content === undefined) {
      showAlert("Choose a file first.");
      attachInput.focus();
      return;
    }
    if (!content) {
      showAlert("Write a prompt first.");
      promptBox.focus();
      return;
    }
    var id = conversationId();
    var body = { content: content, models: models };
    var tool = root.getAttribute("data-tool");
    // A new chat: created with its first prompt, only if the server accepts it.
    if (!id && tool) body.tool = tool;
    // The organisation workspace chosen on /organisations: its shared wallet pays.
    var orgId = root.getAttribute("data-org-id");
    if (orgId) body.org_id = orgId;
    var parent = options.parentId !== undefined ? options.parentId : replyTo();
    // null is meaningful: a new first prompt (editing the first prompt makes a new root).
    if (parent !== undefined) body.parent_id = parent;
    var modelOptions = collectOptions(models);
    if (Object.keys(modelOptions).length) body.options = modelOptions;
    if (!options.content && attachments.length) {
      body.attachments = attachments.map(function (a) {
        return { media_type: a.media_type, data: a.data, name: a.name };
      });
    }
    if (options.replaceFrom) {
      // An edited prompt starts a new branch: what followed the old one is not on it.
      var node = options.replaceFrom;
      while (node) {
        var next = node.nextElementSibling;
        node.remove();
        node = next;
      }
    }
    var turn = newTurn(content);
    turn.scrollIntoView({ block: "start", behavior: "smooth" });
    var sentFromComposer = options.content === undefined;
    var url = id ? "/api/conversations/" + encodeURIComponent(id) + "/messages" : "/api/messages";
    var result = await stream(
      url, body, { turn: turn },
      function () {
        if (!sentFromComposer) return;
        // The prompt picker counts a template's run from this (prompt-picker.js).
        composer.dispatchEvent(new CustomEvent("multinotes:prompt-accepted", { detail: { content: content } }));
        promptBox.value = ""; // accepted: the prompt is in the thread now
        attachments = [];
        renderAttachments();
      }
    );
    if (result.ok) {
      await afterStream(result);
    } else if (!result.promptId) {
      turn.remove();
      if (!thread.children.length) refreshThread();
    }
  }

  function replyTo() {
    var checked = document.querySelector('input[name="reply-to"]:checked');
    if (checked) return checked.value;
    var answers = thread.querySelectorAll(".turn:last-child .answer[data-message-id]");
    return answers.length ? answers[0].getAttribute("data-message-id") : null;
  }

  async function regenerate(card) {
    if (active) return;
    var messageId = card.getAttribute("data-message-id");
    var modelId = card.getAttribute("data-model");
    var body = {};
    var modelOptions = collectOptions([modelId]);
    if (Object.keys(modelOptions).length) body.options = modelOptions;
    var target = { turn: card.closest(".turn"), column: card.closest(".answer-column") };
    body.models = [modelId];
    var orgId = root.getAttribute("data-org-id");
    if (orgId) body.org_id = orgId;
    var result = await stream("/api/messages/" + encodeURIComponent(messageId) + "/regenerate", body, target);
    if (!result.ok) {
      card.hidden = false;
      return;
    }
    await afterStream(result);
    var focused = document.activeElement;
    if (!focused || focused === document.body) {
      var again = document.getElementById("answer-" + result.answerIds[0] + "-regenerate");
      if (again) again.focus();
    }
  }

  async function rate(form) {
    var messageId = form.getAttribute("data-message-id");
    var status = field(form, "rate-status");
    var checked = form.querySelector('input[name="stars"]:checked');
    if (!checked) {
      status.textContent = "Choose 1 to 5 stars.";
      form.querySelector('input[name="stars"]').focus();
      return;
    }
    var body = { stars: Number(checked.value) };
    var comment = form.querySelector('textarea[name="comment"]').value.trim();
    if (comment) body.comment = comment;
    status.textContent = "Saving…";
    var response = await request("POST", "/api/messages/" + encodeURIComponent(messageId) + "/rating", body);
    if (!response.ok) {
      status.textContent = (await problemOf(response)).message;
      return;
    }
    status.textContent = "Thanks! Rating saved.";
    var details = form.closest("details");
    field(details, "rate-summary").textContent = "Rated " + body.stars + "/5";
  }

  function editPrompt(turn) {
    if (active || turn.querySelector(".prompt-edit")) return;
    var text = field(turn, "prompt-text");
    var form = fromTemplate("tpl-edit");
    var box = form.querySelector("textarea");
    box.id = "prompt-edit-" + turn.getAttribute("data-message-id");
    form.querySelector("label").setAttribute("for", box.id);
    box.value = text.textContent;
    text.hidden = true;
    text.after(form);
    box.focus();
    form.addEventListener("submit", function (evt) {
      evt.preventDefault();
      var content = box.value.trim();
      if (!content) { box.focus(); return; }
      var models = Array.prototype.map.call(turn.querySelectorAll(".answer-column"), function (c) {
        return c.getAttribute("data-model");
      }).filter(Boolean);
      if (!models.length) models = selectedModels();
      send({
        content: content,
        models: models,
        parentId: turn.getAttribute("data-parent-id") || null,
        replaceFrom: turn,
      });
    });
    form.querySelector('[data-action="cancel-edit"]').addEventListener("click", function () {
      form.remove();
      text.hidden = false;
      turn.querySelector('[data-action="edit"]').focus();
    });
  }

  // -- events ----------------------------------------------------------------------------------

  composer.addEventListener("submit", function (evt) {
    evt.preventDefault();
    send();
  });

  stopAllButton.addEventListener("click", stopAll);

  picker.addEventListener("change", syncPicker);

  thread.addEventListener("click", function (evt) {
    var button = evt.target.closest ? evt.target.closest("[data-action]") : null;
    if (!button || button.disabled) return;
    var action = button.getAttribute("data-action");
    var card = button.closest(".answer");
    if (action === "stop" && card) {
      var stopping = stopOne(card.getAttribute("data-generation-id"));
      if (!active) {
        // An answer streaming elsewhere (another tab): show how it ended once it has.
        stopping.then(function () {
          window.setTimeout(function () {
            refreshThread(new URLSearchParams(window.location.search).get("leaf"));
          }, 800);
        });
      }
    } else if (action === "regenerate" && card) {
      regenerate(card);
    } else if (action === "edit") {
      editPrompt(button.closest(".turn"));
    }
  });

  thread.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (form.classList && form.classList.contains("rating-form")) {
      evt.preventDefault();
      rate(form);
    }
  });

  // Branch switching swaps the thread: keep keyboard focus on the switcher that was used.
  var switcherFocus = null;
  document.body.addEventListener("htmx:beforeRequest", function (evt) {
    var nav = evt.detail.elt && evt.detail.elt.closest ? evt.detail.elt.closest(".switcher") : null;
    switcherFocus = nav ? nav.id : null;
  });
  document.body.addEventListener("htmx:afterSettle", function (evt) {
    if (!evt.detail.target || evt.detail.target.id !== "thread") return;
    setBusy(!!active || settling);
    followPending();
    if (!switcherFocus) return;
    var nav = document.getElementById(switcherFocus);
    switcherFocus = null;
    if (nav && (document.activeElement === document.body || !document.activeElement)) {
      var link = nav.querySelector("a");
      if (link) link.focus();
    }
  });

  // Phone: the conversation list folds away behind a button.
  var sidebarToggle = document.getElementById("ws-sidebar-toggle");
  sidebarToggle.addEventListener("click", function () {
    var open = sidebarToggle.getAttribute("aria-expanded") !== "true";
    sidebarToggle.setAttribute("aria-expanded", open ? "true" : "false");
    root.classList.toggle("sidebar-open", open);
    if (open) document.getElementById("conversation-search").focus();
  });

  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  document.addEventListener("keydown", function (evt) {
    var mod = evt.ctrlKey || evt.metaKey;
    if (mod && evt.key === "Enter") {
      // In an edited prompt or a rating, that form; anywhere else, the composer.
      var form = evt.target.closest ? evt.target.closest("form") : null;
      evt.preventDefault();
      if (form && form !== composer) form.requestSubmit();
      else send();
    } else if (evt.key === "Escape" && active) {
      evt.preventDefault();
      stopAll();
    } else if (mod && evt.shiftKey && (evt.key === "O" || evt.key === "o")) {
      evt.preventDefault();
      window.location.assign("/chat");
    } else if (evt.key === "?" && !mod && !typing(evt.target)) {
      evt.preventDefault();
      var help = document.getElementById("ws-help");
      help.open = !help.open;
      if (help.open) help.querySelector("summary").focus();
    } else if (evt.key === "Escape") {
      var helpBox = document.getElementById("ws-help");
      if (helpBox.open) {
        helpBox.open = false;
        helpBox.querySelector("summary").focus();
      }
    }
  });

  // htmx "settles" the style attribute of swapped elements by setting it again, which CSP
  // (style-src 'self') blocks; a textarea the user resized carries one. Settle without it.
  document.addEventListener("DOMContentLoaded", function () {
    if (window.htmx) window.htmx.config.attributesToSettle = ["class", "width", "height"];
  });

  syncPicker();
  followPending();
})();
