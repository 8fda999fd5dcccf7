/*
 * Editing a note together (issue #20 item 4). Plain JS, CSP-safe; needs the vendored Yjs bundle
 * (vendor/yjs/yjs-collab.min.js: window.YCollab).
 *
 * The note page connects to the WebSocket /api/documents/{id}/collab, which speaks the Yjs sync
 * and awareness protocol (y-websocket frames). The textarea is bound to the shared Y.Text:
 * - what the person types is turned into the smallest edit (the common start and end of the old
 *   and new value are kept) and applied to the Y.Text, which sends it;
 * - edits from others are applied to the textarea with the caret and selection moved along
 *   (positions before an insert stay, after it shift), and the preview is refreshed.
 * Where the others' carets are is shared as awareness (relative positions, so they survive
 * edits): each is drawn over the textarea as a coloured caret with the person's name, and listed
 * as text ("Carl Colleague · line 3") for screen readers and small screens.
 *
 * The server saves the merged text as a version after a pause; the page hears `collab.saved`
 * and tells the note editor (js/note-editor.js: `collab:saved`), which stops sending the text
 * itself while this is live. Viewers get the text live into the preview, and send nothing.
 * Losing access (4403) or the note (4404) ends it: the textarea turns read-only and says why.
 * Without WebSockets (or Yjs) nothing here runs and the editor autosaves over REST as before.
 */
(function () {
  "use strict";

  var page = document.getElementById("note-page");
  if (!page || !window.YCollab || !("WebSocket" in window)) return;
  var C = window.YCollab;
  var Y = C.Y, encoding = C.encoding, decoding = C.decoding;
  var syncProtocol = C.syncProtocol, awarenessProtocol = C.awarenessProtocol;
  var MESSAGE_SYNC = 0, MESSAGE_AWARENESS = 1;
  var ACCESS_LOST = 4403, NOTE_GONE = 4404, SIGNED_OUT = 4401;
  var PREVIEW_DELAY = 350;

  var documentId = page.getAttribute("data-document-id");
  var box = document.getElementById("note-content"); // null for viewers
  var preview = document.getElementById("note-preview");
  var overlay = document.getElementById("collab-carets");
  var list = document.getElementById("collab-people");
  var notice = document.getElementById("collab-notice");

  var ydoc = null, ytext = null, awareness = null;
  var socket = null, epoch = null, role = null;
  var synced = false, active = false, stopped = false, opened = false, gaveUp = false;
  var attempts = 0, reconnectTimer = null, previewTimer = null;
  var saveWanted = false; // Ctrl+S while connecting: saved as soon as the session is live
  // The textarea's value as last applied to or from the Y.Text. What is typed while the session
  // is not in sync (connecting, reconnecting) is the difference from this, merged on sync.
  var known = box ? box.value : "";

  // For js/note-editor.js, which saves the title (and, without a session, the text) over REST.
  window.multinotesCollab = {
    /** Live: the text goes to the others and the server saves it. */
    active: function () { return active && synced && !!box && role !== "viewer"; },
    /** Live or getting there (connecting, reconnecting): the session owns the text, so the
     *  editor leaves it alone (a REST save of it would be refused while the room is open). */
    owns: function () { return !!box && !stopped && !gaveUp && role !== "viewer"; },
    saveNow: function () {
      if (active && synced) sendJson({ type: "collab.save" });
      else saveWanted = true; // sent once (re)connected
    },
  };

  function emit(name, detail) {
    page.dispatchEvent(new CustomEvent(name, { detail: detail || {} }));
  }

  // -- the shared document ---------------------------------------------------------------------

  function freshDoc() {
    if (awareness) awareness.destroy();
    if (ydoc) ydoc.destroy();
    ydoc = new Y.Doc();
    ytext = ydoc.getText("content");
    awareness = new awarenessProtocol.Awareness(ydoc);
    synced = false;
    ytext.observe(function (event, transaction) {
      if (transaction.origin === "textarea") return;
      remoteChange(event.delta);
    });
    ydoc.on("update", function (update, origin) {
      if (origin === socket || origin === "remote") return;
      if (role === "viewer") return;
      var encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, MESSAGE_SYNC);
      syncProtocol.writeUpdate(encoder, update);
      sendBinary(encoding.toUint8Array(encoder));
    });
    awareness.on("update", function (changes, origin) {
      if (origin !== "local") return;
      var changed = changes.added.concat(changes.updated, changes.removed);
      sendBinary(awarenessFrame(changed));
    });
    awareness.on("change", drawOthers);
  }

  function awarenessFrame(clients) {
    var encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MESSAGE_AWARENESS);
    encoding.writeVarUint8Array(encoder, awarenessProtocol.encodeAwarenessUpdate(awareness, clients));
    return encoding.toUint8Array(encoder);
  }

  // -- the textarea ----------------------------------------------------------------------------

  /* The smallest edit turning `before` into `after`: [index, deleted, inserted]. */
  function diff(before, after) {
    var start = 0;
    var shortest = Math.min(before.length, after.length);
    while (start < shortest && before.charCodeAt(start) === after.charCodeAt(start)) start++;
    var endBefore = before.length, endAfter = after.length;
    while (endBefore > start && endAfter > start &&
           before.charCodeAt(endBefore - 1) === after.charCodeAt(endAfter - 1)) {
      endBefore--;
      endAfter--;
    }
    return [start, endBefore - start, after.slice(start, endAfter)];
  }

  function applyLocal(value) {
    var change = diff(known, value);
    known = value;
    if (!change[1] && !change[2]) return;
    ydoc.transact(function () {
      if (change[1]) ytext.delete(change[0], change[1]);
      if (change[2]) ytext.insert(change[0], change[2]);
    }, "textarea");
    emit("collab:changed");
  }

  /* Where an index ends up after a remote delta (inserts at the caret push it along only when
     they come before it). */
  function moved(index, delta) {
    var position = 0;
    var result = index;
    for (var i = 0; i < delta.length; i++) {
      var op = delta[i];
      if (op.retain) {
        position += op.retain;
      } else if (op.insert) {
        var length = typeof op.insert === "string" ? op.insert.length : 1;
        if (position < index || (position === index && position < result)) result += length;
        position += length;
      } else if (op["delete"]) {
        var gone = op["delete"];
        if (position < index) result -= Math.min(gone, index - position);
      }
      if (position > index) break;
    }
    return Math.max(0, result);
  }

  /* Put `text` in the textarea (it is then what the Y.Text holds), keeping its scroll and,
     when it has focus, the selection where `place(start, end)` says it went. */
  function showText(text, place) {
    var focused = document.activeElement === box;
    var start = box.selectionStart, end = box.selectionEnd, scroll = box.scrollTop;
    box.value = text;
    known = text;
    if (focused) {
      var to = place(start, end);
      box.setSelectionRange(to[0], to[1]);
    }
    box.scrollTop = scroll;
  }

  function remoteChange(delta) {
    // While (re)connecting the textarea keeps what is typed there; firstSync merges the two.
    if (!synced) return;
    var text = ytext.toString();
    if (box) {
      showText(text, function (start, end) { return [moved(start, delta), moved(end, delta)]; });
      emit("collab:changed");
    } else {
      known = text;
    }
    schedulePreview();
    drawOthers();
  }

  /* The preview of text changed by others: rendered and sanitised by the server, as the
     editor's own preview is (htmx on the textarea, for what this person types). */
  var previewing = null;
  function schedulePreview() {
    window.clearTimeout(previewTimer);
    previewTimer = window.setTimeout(function () {
      if (!preview || !window.Multinotes) return;
      if (previewing) previewing.abort();
      previewing = new AbortController();
      var body = new URLSearchParams({ content: known });
      fetch("/notes/preview", {
        method: "POST",
        body: body,
        credentials: "same-origin",
        signal: previewing.signal,
        headers: { "X-CSRF-Token": window.Multinotes.csrfToken() || "" },
      }).then(function (response) {
        return response.ok ? response.text() : null;
      }).then(function (html) {
        if (html !== null) preview.innerHTML = html; // sanitised by the server
      }, function () { /* replaced by a newer one, or offline: the next change retries */ });
    }, PREVIEW_DELAY);
  }

  function shareCaret() {
    if (!box || !synced || !awareness || document.activeElement !== box) return;
    var anchor = Y.createRelativePositionFromTypeIndex(ytext, box.selectionStart);
    var head = Y.createRelativePositionFromTypeIndex(ytext, box.selectionEnd);
    awareness.setLocalStateField("cursor", {
      anchor: Y.relativePositionToJSON(anchor),
      head: Y.relativePositionToJSON(head),
    });
  }

  if (box) {
    box.addEventListener("input", function () {
      if (!synced || role === "viewer") return;
      applyLocal(box.value);
      shareCaret();
    });
    ["select", "keyup", "click", "focus"].forEach(function (name) {
      box.addEventListener(name, shareCaret);
    });
    document.addEventListener("selectionchange", function () {
      if (document.activeElement === box) shareCaret();
    });
    box.addEventListener("blur", function () {
      if (awareness && synced) awareness.setLocalStateField("cursor", null);
    });
    box.addEventListener("scroll", drawOthers);
    window.addEventListener("resize", drawOthers);
  }

  // -- the others' carets ----------------------------------------------------------------------

  function absolute(json) {
    if (!json) return null;
    try {
      var position = Y.createAbsolutePositionFromRelativePosition(
        Y.createRelativePositionFromJSON(json), ydoc);
      return position && position.type === ytext ? position.index : null;
    } catch (e) {
      return null;
    }
  }

  function lineOf(text, index) {
    var line = 1, column = 1;
    for (var i = 0; i < index && i < text.length; i++) {
      if (text.charCodeAt(i) === 10) { line++; column = 1; } else { column++; }
    }
    return { line: line, column: column };
  }

  /* Where `index` is drawn inside the textarea (a mirror element with the same text layout). */
  var mirror = null;
  function pointOf(index) {
    if (!mirror) {
      mirror = document.createElement("div");
      mirror.className = "collab-mirror";
      mirror.setAttribute("aria-hidden", "true");
      document.body.appendChild(mirror);
    }
    var style = window.getComputedStyle(box);
    ["fontFamily", "fontSize", "fontWeight", "lineHeight", "letterSpacing", "paddingTop",
     "paddingRight", "paddingBottom", "paddingLeft", "borderTopWidth", "borderRightWidth",
     "borderBottomWidth", "borderLeftWidth", "boxSizing", "tabSize", "textIndent"].forEach(function (name) {
      mirror.style[name] = style[name];
    });
    mirror.style.width = box.offsetWidth + "px";
    mirror.textContent = box.value.slice(0, index);
    var marker = document.createElement("span");
    marker.textContent = "\u200b";
    mirror.appendChild(marker);
    var point = { top: marker.offsetTop - box.scrollTop, left: marker.offsetLeft - box.scrollLeft,
                  height: marker.offsetHeight || parseFloat(style.lineHeight) || 20 };
    return point;
  }

  function drawOthers() {
    if (!awareness || !list) return;
    var text = ytext ? ytext.toString() : "";
    var mine = ydoc ? ydoc.clientID : null;
    var seen = {};
    var items = [];
    if (overlay) overlay.textContent = "";
    awareness.getStates().forEach(function (state, clientId) {
      if (clientId === mine || !state || !state.user) return;
      var user = state.user;
      var cursor = state.cursor || null;
      var head = cursor ? absolute(cursor.head) : null;
      var anchor = cursor ? absolute(cursor.anchor) : null;
      var key = user.id + ":" + clientId;
      if (seen[key]) return;
      seen[key] = true;
      var where = head !== null ? lineOf(text, head) : null;
      var item = document.createElement("li");
      item.className = "collab-person";
      item.setAttribute("data-user-id", String(user.id || ""));
      var swatch = document.createElement("span");
      swatch.className = "collab-swatch";
      swatch.setAttribute("aria-hidden", "true");
      swatch.style.backgroundColor = user.color || "#888";
      item.appendChild(swatch);
      var label = String(user.name || "Someone");
      if (user.role === "viewer") label += " (viewing)";
      if (where) {
        label += " · line " + where.line + ", column " + where.column;
        if (anchor !== null && anchor !== head) {
          label += " (selecting " + Math.abs(head - anchor) + " characters)";
        }
      }
      item.appendChild(document.createTextNode(label));
      items.push(item);
      if (overlay && box && head !== null) drawCaret(user, head, anchor);
    });
    list.replaceChildren.apply(list, items);
    var holder = document.getElementById("collab-others");
    if (holder) holder.hidden = items.length === 0;
  }

  function drawCaret(user, head, anchor) {
    var point = pointOf(head);
    if (point.top < -point.height || point.top > box.clientHeight) return;
    var caret = document.createElement("span");
    caret.className = "collab-caret";
    caret.setAttribute("aria-hidden", "true");
    caret.style.top = (box.offsetTop + point.top) + "px";
    caret.style.left = (box.offsetLeft + point.left) + "px";
    caret.style.height = point.height + "px";
    caret.style.borderColor = user.color || "#888";
    var name = document.createElement("span");
    name.className = "collab-caret-name";
    name.style.backgroundColor = user.color || "#888";
    name.textContent = String(user.name || "Someone");
    caret.appendChild(name);
    overlay.appendChild(caret);
    if (anchor !== null && anchor !== head) {
      var from = pointOf(Math.min(anchor, head));
      var mark = document.createElement("span");
      mark.className = "collab-selection";
      mark.setAttribute("aria-hidden", "true");
      mark.style.top = (box.offsetTop + from.top) + "px";
      mark.style.left = (box.offsetLeft + from.left) + "px";
      mark.style.height = from.height + "px";
      mark.style.backgroundColor = user.color || "#888";
      overlay.appendChild(mark);
    }
  }

  // -- the connection --------------------------------------------------------------------------

  function sendBinary(bytes) {
    if (socket && socket.readyState === 1 && synced) socket.send(bytes);
  }

  function sendJson(message) {
    if (socket && socket.readyState === 1) socket.send(JSON.stringify(message));
  }

  function say(text, kind) {
    if (!notice) return;
    notice.textContent = text;
    notice.hidden = !text;
    notice.setAttribute("data-kind", kind || "info");
  }

  /* Where an edit [index, deleted, inserted] of `known` goes in a text that others changed by
     `theirs` (also an edit of `known`): before their change it stays, after it it shifts; where
     the two overlap, what was typed goes in after theirs and deletes nothing of it. */
  function rebase(mine, theirs) {
    var shift = theirs[2].length - theirs[1];
    if (!theirs[1] && !theirs[2]) return [mine[0], mine[1]];
    if (mine[0] + mine[1] <= theirs[0]) return [mine[0], mine[1]];
    if (mine[0] >= theirs[0] + theirs[1]) return [mine[0] + shift, mine[1]];
    return [theirs[0] + theirs[2].length, 0];
  }

  /* In sync again (or for the first time): the shared text now holds the others' edits made
     meanwhile; what was typed here meanwhile is put on top, and the textarea shows the result. */
  function reconcile(shared) {
    var mine = diff(known, box.value);
    var merged = shared;
    var caret = null;
    if (mine[1] || mine[2]) {
      var place = rebase(mine, diff(known, shared));
      ydoc.transact(function () {
        if (place[1]) ytext.delete(place[0], place[1]);
        if (mine[2]) ytext.insert(place[0], mine[2]);
      }, "textarea");
      merged = ytext.toString();
      caret = place[0] + mine[2].length;
    }
    var changed = box.value !== merged;
    known = merged;
    if (changed) {
      showText(merged, function (start, end) {
        var at = caret !== null ? caret : Math.min(end, merged.length);
        return [at, at];
      });
    }
    if (changed || merged !== shared) emit("collab:changed");
    schedulePreview();
  }

  function firstSync() {
    synced = true;
    var text = ytext.toString();
    if (box && role !== "viewer") {
      reconcile(text);
    } else {
      if (box) box.value = text;
      known = text;
      schedulePreview();
    }
    active = true;
    page.setAttribute("data-collab", "live");
    emit("collab:live", { role: role, text: text });
    if (saveWanted) {
      saveWanted = false;
      window.multinotesCollab.saveNow();
    }
    if (box && document.activeElement === box) shareCaret();
    else awareness.setLocalStateField("cursor", null);
  }

  function onHello(data) {
    if (epoch !== null && data.epoch !== epoch) {
      freshDoc(); // the server started over from the saved note: ours would not merge
    }
    epoch = data.epoch;
    role = data.role;
    if (box) box.readOnly = role === "viewer";
    var encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MESSAGE_SYNC);
    syncProtocol.writeSyncStep1(encoder, ydoc);
    socket.send(encoding.toUint8Array(encoder));
  }

  function onBinary(data) {
    var decoder = decoding.createDecoder(new Uint8Array(data));
    var kind = decoding.readVarUint(decoder);
    if (kind === MESSAGE_SYNC) {
      var encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, MESSAGE_SYNC);
      var step = syncProtocol.readSyncMessage(decoder, encoder, ydoc, "remote");
      if (encoding.length(encoder) > 1) socket.send(encoding.toUint8Array(encoder));
      if (step === syncProtocol.messageYjsSyncStep2 && !synced) firstSync();
    } else if (kind === MESSAGE_AWARENESS) {
      awarenessProtocol.applyAwarenessUpdate(awareness, decoding.readVarUint8Array(decoder), "remote");
    }
  }

  function onControl(message) {
    var data = message.data || {};
    if (message.type === "collab.hello") {
      onHello(data);
    } else if (message.type === "collab.saved") {
      emit("collab:saved", { version: data.version });
    } else if (message.type === "collab.role") {
      role = data.role;
      if (box) box.readOnly = role === "viewer";
      say(role === "viewer" ? "You can now only read this note." : "", "info");
    } else if (message.type === "error" && data.code === "read_only") {
      say("You can read this note but not edit it.", "warning");
    } else if (message.type === "error" && data.code === "too_large") {
      say(data.message, "error");
    }
  }

  function stop(text) {
    stopped = true;
    active = false;
    page.setAttribute("data-collab", "ended");
    if (box) box.readOnly = true;
    if (awareness) awarenessProtocol.removeAwarenessStates(awareness, [ydoc.clientID], "ended");
    if (list) list.textContent = "";
    if (overlay) overlay.textContent = "";
    var holder = document.getElementById("collab-others");
    if (holder) holder.hidden = true;
    say(text, "error");
    emit("collab:ended");
  }

  function connect() {
    if (stopped) return;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/api/documents/" + encodeURIComponent(documentId) + "/collab");
    socket.binaryType = "arraybuffer";
    var mine = socket;
    socket.onopen = function () { opened = true; attempts = 0; };
    socket.onmessage = function (event) {
      if (mine !== socket) return;
      if (typeof event.data === "string") {
        try { onControl(JSON.parse(event.data)); } catch (e) { /* not ours */ }
      } else {
        onBinary(event.data);
      }
    };
    socket.onclose = function (event) {
      if (mine !== socket) return;
      synced = false;
      if (event.code === ACCESS_LOST) {
        stop("Your access to this note was removed: you can no longer edit or see changes. Your last edits may not be saved.");
        return;
      }
      if (event.code === NOTE_GONE) {
        stop("This note was deleted by its owner.");
        return;
      }
      if (event.code === SIGNED_OUT) {
        stop("You were signed out: sign in again to keep editing.");
        return;
      }
      if (!opened && attempts >= 2) {
        // Never got through (a proxy without WebSockets): the editor saves over REST instead.
        active = false;
        gaveUp = true;
        page.setAttribute("data-collab", "off");
        emit("collab:ended");
        return;
      }
      attempts++;
      page.setAttribute("data-collab", "reconnecting");
      // What is typed meanwhile stays in the textarea and is merged in on reconnecting.
      var wait = Math.min(10000, 500 * Math.pow(2, attempts - 1)) * (0.75 + Math.random() / 2);
      window.clearTimeout(reconnectTimer);
      reconnectTimer = window.setTimeout(connect, wait);
    };
  }

  window.addEventListener("pagehide", function () {
    if (socket) socket.close();
  });
  window.addEventListener("pageshow", function (event) {
    // Back from the back/forward cache: the socket closed on pagehide, so open another.
    if (event.persisted && !stopped) connect();
  });

  freshDoc();
  connect();
})();
