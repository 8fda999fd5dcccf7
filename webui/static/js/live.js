/*
 * The live channel (issue #20): one connection per tab to /api/live (a WebSocket), falling back
 * to server-sent events (/api/live/sse) where WebSockets are blocked. Plain JS, CSP-safe.
 *
 * Events are {id, type, data}. What this page does with them:
 *   - wallet.changed: the balance shown on the page (the chat's credit meter, the usage page's
 *     balance) takes the new value;
 *   - notification.created: the bell's count changes and a toast offers the notification
 *     (announced to screen readers through an aria-live region);
 *   - live.hello: the id to resume from; live.reset: events were lost, so the balance and the
 *     count are read again.
 * A dropped connection is retried with growing, jittered delays and resumes from the last id
 * seen; three WebSocket attempts that never opened switch this tab to SSE.
 */
(function () {
  "use strict";

  var lastId = null;
  var attempt = 0;
  var socketFailures = 0;
  var useSse = !("WebSocket" in window);
  var TOAST_MS = 8000;

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

  function toast(notice) {
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
    card.appendChild(close);
    shelf.appendChild(card);
    while (shelf.children.length > 3) shelf.firstChild.remove();
    window.setTimeout(function () {
      // Kept while the pointer or focus is on it: someone is reading or about to click.
      if (card.matches(":hover") || card.contains(document.activeElement)) return;
      card.remove();
    }, TOAST_MS);
    announce("New notification: " + (notice.title || ""));
  }

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
    if (event.id !== null && event.id !== undefined) lastId = String(event.id);
    if (event.type === "live.hello") {
      if (lastId === null) lastId = event.data.last_event_id;
      // For whoever needs to know the tab is live (the browser tests wait for it).
      document.documentElement.setAttribute("data-live", "open");
    } else if (event.type === "live.reset") {
      reloadState();
    } else if (event.type === "wallet.changed") {
      showWallet(event.data);
    } else if (event.type === "notification.created") {
      showUnread(event.data.unread);
      toast(event.data);
    }
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
    ["live.hello", "live.reset", "wallet.changed", "notification.created"].forEach(function (type) {
      source.addEventListener(type, function (message) {
        try {
          var body = JSON.parse(message.data);
          handle({ id: body.id, type: type, data: body.data });
        } catch (error) { /* ignore */ }
      });
    });
    source.addEventListener("open", function () { attempt = 0; });
    source.addEventListener("error", function () {
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
