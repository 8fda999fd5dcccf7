/*
 * Presence (issue #20): who else has this note, folder or conversation open, and who is typing
 * in a note. Plain JS, CSP-safe; needs the live channel's WebSocket (js/live.js).
 *
 * The page's #presence element names the object (data-presence-type, data-presence-id). On every
 * live.hello (a new connection, also after a reconnect) this tab joins it, says every few seconds
 * that it is still here, and on a note it can edit says when its person types (at most every
 * two seconds). presence.changed draws the other people as avatars (picture or initials, the
 * name as text for screen readers and as a tooltip); arrivals and departures are announced
 * politely. presence.ended (access lost) empties it. Closing or leaving the page ends the
 * connection and sends presence.leave, which take this tab off everyone's list at once. On SSE
 * (no WebSocket) live.js posts the messages to /api/live/presence.
 */
(function () {
  "use strict";

  var bar = document.getElementById("presence");
  if (!bar) return;
  var objectType = bar.getAttribute("data-presence-type");
  var objectId = bar.getAttribute("data-presence-id");
  var list = document.getElementById("presence-people");
  var typingLine = document.getElementById("presence-typing");
  var HEARTBEAT_MS = 5000;
  var TYPING_EVERY_MS = 2000;
  var joined = false;
  var lastTyping = 0;
  var shown = null;  // user id -> name, of the people last drawn
  var NOUNS = { document: "note", folder: "folder", conversation: "conversation" };

  function send(message) {
    var live = window.multinotesLive;
    return !!(live && live.send(message));
  }

  function target(type) {
    return { type: type, object_type: objectType, object_id: objectId };
  }

  function join() {
    joined = send(target("presence.join"));
  }

  function announce(text) {
    var region = document.getElementById("live-announcer");
    if (!region) return;
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 50);
  }

  function avatar(person) {
    if (person.avatar_url && person.avatar_url.charAt(0) === "/" && person.avatar_url.charAt(1) !== "/") {
      var image = document.createElement("img");
      image.className = "presence-avatar";
      image.src = person.avatar_url;
      image.alt = "";
      image.width = 32;
      image.height = 32;
      return image;
    }
    var letters = document.createElement("span");
    letters.className = "presence-avatar presence-initials";
    letters.setAttribute("aria-hidden", "true");
    letters.textContent = person.initials || "?";
    return letters;
  }

  function typingText(names) {
    if (!names.length) return "";
    if (names.length === 1) return names[0] + " is typing…";
    if (names.length === 2) return names[0] + " and " + names[1] + " are typing…";
    return names.length + " people are typing…";
  }

  function render(people) {
    list.textContent = "";
    var now = {};
    var typing = [];
    people.forEach(function (person) {
      var name = person.name || "Someone";
      now[person.user_id] = name;
      var item = document.createElement("li");
      item.className = "presence-person" + (person.typing ? " typing" : "");
      item.setAttribute("data-user-id", person.user_id);
      item.title = name + (person.typing ? " (typing)" : "");
      item.appendChild(avatar(person));
      var label = document.createElement("span");
      label.className = "visually-hidden";
      label.textContent = name + (person.typing ? ", typing" : "");
      item.appendChild(label);
      list.appendChild(item);
      if (person.typing) typing.push(name);
    });
    typingLine.textContent = typingText(typing);
    bar.hidden = people.length === 0;
    if (shown !== null) {
      var noun = NOUNS[objectType] || "page";
      Object.keys(now).forEach(function (id) {
        if (!(id in shown)) announce(now[id] + " opened this " + noun);
      });
      Object.keys(shown).forEach(function (id) {
        if (!(id in now)) announce(shown[id] + " left this " + noun);
      });
    }
    shown = now;
  }

  function about(data) {
    return data && data.object_type === objectType && data.object_id === objectId;
  }

  document.addEventListener("multinotes:live", function (message) {
    var event = message.detail || {};
    if (event.type === "live.hello") {
      join();
    } else if (event.type === "presence.changed" && about(event.data)) {
      render(event.data.people || []);
    } else if (event.type === "presence.ended" && about(event.data)) {
      joined = false;
      render([]);
    }
  });

  window.setInterval(function () {
    if (joined) joined = send({ type: "presence.here" });
  }, HEARTBEAT_MS);

  if (bar.getAttribute("data-presence-typing") === "true") {
    var typed = function () {
      var now = Date.now();
      if (!joined || now - lastTyping < TYPING_EVERY_MS) return;
      lastTyping = now;
      send(target("presence.typing"));
    };
    ["note-content", "note-title"].forEach(function (id) {
      var field = document.getElementById(id);
      if (field) field.addEventListener("input", typed);
    });
  }

  // Leaving the page ends a WebSocket by itself; an SSE stream is noticed a moment later, so
  // say it now.
  window.addEventListener("pagehide", function () {
    if (joined) send(target("presence.leave"));
    joined = false;
  });
  window.addEventListener("pageshow", function (shown) {
    if (shown.persisted) join();  // back from the back/forward cache
  });

  // live.js may have connected before this script ran.
  if (document.documentElement.getAttribute("data-live") === "open") join();
})();
