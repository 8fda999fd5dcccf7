/*
 * The live channel (issue #20): one connection per tab to /api/live (a WebSocket), falling back
 * to server-sent events (/api/live/sse) where WebSockets are blocked. Plain JS, CSP-safe.
 *
 * Events are {id, type, data}. What this page does with them:
 *   - wallet.changed: the balance shown on the page (the chat's credit meter, the usage page's
 *     balance) takes the new value;
 *   - notification.created: the bell's count changes and a toast offers the notification
 *     (announced to screen readers through an aria-live region);
 *   - task.finished: a toast says a long task of theirs (a data or folder export, a batch, a
 *     scheduled run) ended, with its download when it made a file;
 *   - task.progress: elements marked data-task="<kind>:<id>" (an export's status) show how far
 *     it got: their <progress> (data-task-unit="percent" or a count) and their
 *     [data-task-text] (a template with {done}, {total}, {percent}); never backwards, also
 *     after htmx swapped in an older poll;
 *   - any event: parts of the page marked data-live-refresh="<its type>" are read again (the
 *     "Shared with me" list on shared.changed, the /admin/plugins table on plugin.changed, the
 *     data exports and a schedule's history on task.finished);
 *   - live.hello: the id to resume from; live.reset: events were lost, so the balance and the
 *     count are read again.
 * Other scripts send on the socket with window.multinotesLive.send(message) (presence.js).
 * A dropped connection is retried with growing, jittered delays and resumes from the last id
 * seen, as does the tab's next page (the id is kept in sessionStorage, per session); three
 * WebSocket attempts that never opened switch this tab to SSE.
 */
(function () {
  "use strict";

  // The last event id this tab saw, kept across its page loads (per session): a page that
  // loads resumes from it, so an event that came while the tab went from page to page (a run
  // that ended after the page was rendered, before its socket opened) is not lost.
  var STORE = "multinotes.live";
  var lastId = storedId();
  var attempt = 0;
  var socketFailures = 0;
  var useSse = !("WebSocket" in window);
  var TOAST_MS = 8000;
  var openSocket = null;
  var stream = null;  // this tab's SSE stream, named by its live.hello (it cannot send)

  function sessionTag() {
    // The session's CSRF token names the session: another sign-in in this tab starts afresh.
    return csrfToken().slice(-12);
  }

  function storedId() {
    try {
      var saved = JSON.parse(window.sessionStorage.getItem(STORE) || "null");
      return saved && saved.session === sessionTag() && saved.id ? String(saved.id) : null;
    } catch (error) {
      return null;  // storage switched off: this page starts from the server's latest id
    }
  }

  function remember(id) {
    try {
      window.sessionStorage.setItem(STORE, JSON.stringify({ session: sessionTag(), id: id }));
    } catch (error) { /* storage switched off or full: resuming within this page still works */ }
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // For other scripts (js/presence.js): send a message on this tab's WebSocket, or, on SSE,
  // post it for the stream (presence messages only). False while neither is open.
  window.multinotesLive = {
    send: function (message) {
      if (openSocket && openSocket.readyState === 1) {
        openSocket.send(JSON.stringify(message));
        return true;
      }
      if (!stream || String(message.type).indexOf("presence.") !== 0) return false;
      var body = { connection: stream };
      Object.keys(message).forEach(function (name) { body[name] = message[name]; });
      fetch("/api/live/presence", {
        method: "POST",
        credentials: "same-origin",
        keepalive: true,  // a leave sent as the page goes still arrives
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
        body: JSON.stringify(body)
      }).catch(function () {});
      return true;
    }
  };

  function number(value) {
    return Number(value).toLocaleString("en-US");
  }

  function announce(text) {
    var region = document.getElementById("live-announcer");
    if (!region) return;
    region.textContent = "";
    // A new node after a tick: screen readers announce a change, not an unchanged text.
    window.setTimeout(function () { region.textContent = text; }, 50);
  }

  function showWallet(wallet) {
    var meter = document.getElementById("wallet-meter");
    if (meter) {
      var available = document.getElementById("wallet-balance");
      if (available) available.textContent = number(wallet.available);
      var reserved = document.getElementById("wallet-reserved");
      if (reserved) {
        reserved.textContent = "(" + number(wallet.reserved) + " held)";
        reserved.hidden = !wallet.reserved;
      }
      meter.classList.toggle("low", !!wallet.low_balance);
      var low = document.getElementById("wallet-low");
      if (low) low.hidden = !wallet.low_balance;
    }
    var stat = document.querySelector("#wallet-balance .stat-value");
    if (stat) stat.textContent = number(wallet.balance);
  }

  function showUnread(count) {
    var bell = document.querySelector(".notification-bell");
    if (!bell) return;
    var badge = document.getElementById("notification-count");
    if (!count) {
      if (badge) badge.remove();
      return;
    }
    if (!badge) {
      badge = document.createElement("span");
      badge.className = "badge notification-count";
      badge.id = "notification-count";
      bell.appendChild(document.createTextNode(" "));
      bell.appendChild(badge);
    }
    badge.textContent = count < 100 ? String(count) : "99+";
    var hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = " unread";
    badge.appendChild(hidden);
  }

  function sitePath(url) {
    // Only a path on this site: never another origin, whatever the data says.
    return typeof url === "string" && url.charAt(0) === "/" && url.charAt(1) !== "/" &&
      url.charAt(1) !== "\\" ? url : "/notifications";
  }

  function toast(notice, spoken) {
    var shelf = document.getElementById("live-toasts");
    if (!shelf) return;
    var card = document.createElement("div");
    card.className = "live-toast";
    var title = document.createElement("a");
    title.href = sitePath(notice.url);
    title.textContent = notice.title || "New notification";
    var text = document.createElement("p");
    text.textContent = notice.excerpt || "";
    var close = document.createElement("button");
    close.type = "button";
    close.className = "secondary outline live-toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", function () { card.remove(); });
    card.appendChild(title);
    if (notice.excerpt) card.appendChild(text);
    if (notice.download_url) {
      var download = document.createElement("a");
      download.href = sitePath(notice.download_url);
      download.className = "live-toast-download";
      download.setAttribute("download", "");
      download.textContent = "Download";
      card.appendChild(download);
    }
    card.appendChild(close);
    shelf.appendChild(card);
    while (shelf.children.length > 3) shelf.firstChild.remove();
    window.setTimeout(function () {
      // Kept while the pointer or focus is on it: someone is reading or about to click.
      if (card.matches(":hover") || card.contains(document.activeElement)) return;
      card.remove();
    }, TOAST_MS);
    announce(spoken || "New notification: " + (notice.title || ""));
  }

  function refresh(type, again) {
    // Parts of this page marked data-live-refresh="<event type>" are read again from the
    // server (the same address) and swapped in place, e.g. "Shared with me" on shared.changed.
    var parts = document.querySelectorAll("[data-live-refresh]");
    var wanted = Array.prototype.filter.call(parts, function (part) {
      return part.id && part.getAttribute("data-live-refresh").split(" ").indexOf(type) !== -1;
    });
    if (!wanted.length) return;
    // A part that changed while its copy was on the way (an htmx swap inside it: the click
    // that caused a newer state) must not get the older copy: it is read once more instead.
    var before = wanted.map(function (part) { return part.innerHTML; });
    fetch(location.href, { credentials: "same-origin" }).then(function (response) {
      return response.ok ? response.text() : null;
    }).then(function (html) {
      if (!html) return;
      var fresh = new DOMParser().parseFromString(html, "text/html");
      var changed = false;
      wanted.forEach(function (part, index) {
        if (!part.isConnected) return;
        if (part.innerHTML !== before[index]) { changed = true; return; }
        var next = fresh.getElementById(part.id);
        if (!next) return;
        var copy = document.importNode(next, true);
        part.replaceWith(copy);
        if (window.htmx) window.htmx.process(copy);
      });
      if (changed && !again) refresh(type, true);
    }, function () {});
  }

  // The latest progress heard per task ("<kind>:<id>"), for parts htmx swaps in later.
  var progressSeen = {};

  function showProgress(root, data) {
    var key = data.kind + ":" + data.id;
    var done = Number(data.progress.done) || 0;
    var total = Math.max(1, Number(data.progress.total) || 0);
    // As the server stores it: 100 only once the task is done.
    var percent = Math.min(99, Math.floor(done * 100 / total));
    var parts = Array.prototype.slice.call(root.querySelectorAll("[data-task]"));
    if (root.matches && root.matches("[data-task]")) parts.push(root);
    parts.forEach(function (part) {
      if (part.getAttribute("data-task") !== key) return;
      var bar = part.querySelector("progress");
      if (bar) {
        var byPercent = bar.getAttribute("data-task-unit") === "percent";
        var value = byPercent ? percent : done;
        if (value < Number(bar.value)) return;  // an older figure: keep the newer one
        bar.max = byPercent ? 100 : total;
        bar.value = value;
        bar.textContent = byPercent ? percent + "%" : done + " of " + total;
      }
      var text = part.querySelector("[data-task-text]");
      if (text) {
        text.textContent = text.getAttribute("data-task-text")
          .replace("{done}", String(done)).replace("{total}", String(total))
          .replace("{percent}", String(percent));
      }
    });
  }

  document.addEventListener("htmx:load", function (event) {
    var root = event.detail && event.detail.elt;
    if (!root || !root.querySelectorAll) return;
    Object.keys(progressSeen).forEach(function (key) { showProgress(root, progressSeen[key]); });
  });

  function reloadState() {
    fetch("/api/wallet", { credentials: "same-origin" }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (wallet) { if (wallet) showWallet(wallet); }, function () {});
    fetch("/api/notifications?limit=1", { credentials: "same-origin" }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (page) { if (page) showUnread(page.unread); }, function () {});
  }

  function handle(event) {
    if (!event || typeof event.type !== "string") return;
    if (event.id !== null && event.id !== undefined) {
      lastId = String(event.id);
      remember(lastId);
    }
    if (event.type === "live.hello") {
      if (lastId === null) {
        lastId = event.data.last_event_id;
        remember(lastId);
      }
      // For whoever needs to know the tab is live (the browser tests wait for it).
      document.documentElement.setAttribute("data-live", "open");
    } else if (event.type === "live.reset") {
      reloadState();
      refresh("shared.changed");
    } else if (event.type === "wallet.changed") {
      showWallet(event.data);
    } else if (event.type === "notification.created") {
      showUnread(event.data.unread);
      toast(event.data);
    } else if (event.type === "task.finished") {
      delete progressSeen[event.data.kind + ":" + event.data.id];
      toast(event.data, event.data.title);
    } else if (event.type === "task.progress" && event.data && event.data.progress) {
      progressSeen[event.data.kind + ":" + event.data.id] = event.data;
      showProgress(document, event.data);
    }
    refresh(event.type);
    document.dispatchEvent(new CustomEvent("multinotes:live", { detail: event }));
  }

  function query() {
    return lastId === null ? "" : "?last_event_id=" + encodeURIComponent(lastId);
  }

  function retry() {
    attempt += 1;
    var delay = Math.min(30000, 1000 * Math.pow(2, attempt - 1));
    window.setTimeout(connect, delay / 2 + Math.random() * delay / 2);
  }

  function connectSocket() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + "/api/live" + query());
    var opened = false;
    var pinger = null;
    socket.addEventListener("open", function () {
      opened = true;
      openSocket = socket;
      attempt = 0;
      socketFailures = 0;
      // A ping now and then keeps idle proxies from closing a quiet connection.
      pinger = window.setInterval(function () {
        if (socket.readyState === 1) socket.send(JSON.stringify({ type: "ping" }));
      }, 25000);
    });
    socket.addEventListener("message", function (message) {
      try { handle(JSON.parse(message.data)); } catch (error) { /* not ours: ignore */ }
    });
    socket.addEventListener("close", function (closed) {
      document.documentElement.setAttribute("data-live", "closed");
      if (openSocket === socket) openSocket = null;
      if (pinger) window.clearInterval(pinger);
      if (closed.code === 4401) return;  // signed out: the next page load signs in again
      if (!opened && ++socketFailures >= 3) useSse = true;
      retry();
    });
  }

  function connectSse() {
    // EventSource reconnects by itself and sends Last-Event-ID; the query carries the id
    // this tab had from its WebSocket, if any.
    var source = new EventSource("/api/live/sse" + query());
    ["live.hello", "live.reset", "wallet.changed", "notification.created", "task.finished",
     "task.progress", "shared.changed", "plugin.changed", "organisation.members_changed",
     "presence.changed", "presence.ended", "batch.progress"].forEach(function (type) {
      source.addEventListener(type, function (message) {
        try {
          var body = JSON.parse(message.data);
          if (type === "live.hello") stream = body.data.connection || null;
          handle({ id: body.id, type: type, data: body.data });
        } catch (error) { /* ignore */ }
      });
    });
    source.addEventListener("open", function () { attempt = 0; });
    source.addEventListener("error", function () {
      stream = null;  // a new stream (and name) comes with the next live.hello
      if (source.readyState === 2) retry();  // closed for good (e.g. signed out): back off
    });
  }

  function connect() {
    if (useSse || document.documentElement.hasAttribute("data-live-sse")) connectSse();
    else connectSocket();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", connect);
  else connect();
})();
