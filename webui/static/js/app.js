/*
 * MultinotesAI web UI helpers. Plain JS, no build step, CSP-safe
 * (script-src 'self': no inline scripts, no eval, no new Function).
 *
 * base.html MUST include, in <head>, BEFORE the htmx <script> tag:
 *
 *   <meta name="htmx-config" content='{"includeIndicatorStyles": false, "allowEval": false}'>
 *
 * - includeIndicatorStyles:false stops htmx from injecting an inline <style>
 *   (blocked by `style-src 'self'`); the equivalent rules live in css/app.css.
 * - allowEval:false means hx-on:* / hx-vals="js:..." / hx-vars are NOT
 *   available. Do not use them; put behaviour in this file instead.
 *
 * Load order in base.html (all from 'self'):
 *   <script src="/static/vendor/htmx/htmx.min.js"></script>
 *   <script src="/static/vendor/htmx/sse.js"></script>   (pages that use SSE)
 *   <script src="/static/js/app.js"></script>
 *
 * Features:
 *   - X-CSRF-Token header on every htmx request, from <meta name="csrf-token">.
 *   - data-confirm="Question?" on an htmx element (or its submit button), a
 *     plain <form>, or a plain <a>: asks first in a styled modal dialog whose
 *     confirm button carries the action's label (data-confirm-label overrides
 *     it). (hx-confirm also works and takes precedence for htmx requests.)
 *   - <button data-copy="#selector">: copies the target's text (value for
 *     inputs/textareas) and shows "Copied" for 1.5 s.
 *   - The announcements' in-app message (<dialog class="announcement-message" open>)
 *     opens as a modal dialog.
 *
 * Only global exported: window.Multinotes = { csrfToken(), request(method, url, body?, signal?),
 * readEvents(response, onEvent), showTimes(root), sendOnLeave(method, url) }. request: fetch()
 * with the CSRF header and a JSON body; readEvents: the server-sent events of a fetch() response,
 * each as onEvent(name, data); sendOnLeave: an idempotent request that must outlive the page.
 */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") || "" : "";
  }

  function parseEvent(block) {
    var name = "message";
    var data = "";
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) name = line.slice(6).trim();
      else if (line.indexOf("data:") === 0) data += line.slice(5).replace(/^ /, "");
    });
    if (!data) return null;
    try {
      return { name: name, data: JSON.parse(data) };
    } catch (e) {
      return null;
    }
  }

  async function readEvents(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
      var cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        var event = parseEvent(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
        if (event) onEvent(event.name, event.data);
      }
    }
  }

  function request(method, url, body, signal) {
    var headers = { Accept: "application/json, text/event-stream" };
    var token = csrfToken();
    if (token) headers["X-CSRF-Token"] = token;
    var init = { method: method, headers: headers, credentials: "same-origin", signal: signal };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init);
  }

  // --- requests that must outlive the page ---------------------------------
  // A request made while the page is being left (pagehide) goes as a keepalive fetch, but a
  // browser may still drop it (seen with a service worker in control). So it is also written to
  // localStorage first and replayed by the next page of the app, then forgotten once answered.
  // Only for idempotent requests (DELETE, PUT): sending one twice does no harm.
  var LEAVE_KEY = "multinotes.onLeave";

  function leaveQueue() {
    try { return JSON.parse(window.localStorage.getItem(LEAVE_KEY) || "[]"); } catch (e) { return []; }
  }

  function saveLeaveQueue(queue) {
    try {
      if (queue.length) window.localStorage.setItem(LEAVE_KEY, JSON.stringify(queue));
      else window.localStorage.removeItem(LEAVE_KEY);
    } catch (e) { /* storage full or off: the keepalive fetch is all there is */ }
  }

  function forgetLeave(method, url) {
    saveLeaveQueue(leaveQueue().filter(function (job) {
      return !(job.method === method && job.url === url);
    }));
  }

  function answered(response) { return response.ok || (response.status >= 400 && response.status < 500); }

  function sendOnLeave(method, url) {
    var queue = leaveQueue();
    queue.push({ method: method, url: url });
    saveLeaveQueue(queue);
    var headers = {};
    var token = csrfToken();
    if (token) headers["X-CSRF-Token"] = token;
    fetch(url, { method: method, keepalive: true, credentials: "same-origin", headers: headers })
      .then(function (response) { if (answered(response)) forgetLeave(method, url); })
      .catch(function () { /* the next page replays it */ });
  }

  function replayLeft() {
    leaveQueue().forEach(function (job) {
      request(job.method, job.url).then(function (response) {
        if (answered(response)) forgetLeave(job.method, job.url);
      }).catch(function () { /* offline: try again on the next page */ });
    });
  }

  // --- times in the reader's time zone ------------------------------------
  // <time datetime="…"> with a time of day: relative while recent ("5 min ago"), else the date
  // and time; the exact moment on hover. The zone is the profile's (<html data-timezone>) or the
  // browser's. The server's text (UTC) stays for anyone without JavaScript.
  var zone = document.documentElement.getAttribute("data-timezone") || undefined;
  var exactFormat = null;
  try {
    exactFormat = new Intl.DateTimeFormat(undefined, {
      dateStyle: "medium", timeStyle: "short", timeZone: zone,
    });
  } catch (e) {
    zone = undefined; // an unknown zone name: the browser's own
    exactFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
  var zoneName = zone || Intl.DateTimeFormat().resolvedOptions().timeZone || "";

  function parseMoment(value) {
    if (!/T\d\d:\d\d/.test(value)) return null; // a date alone stays as it is
    // Stored times are UTC; a value without an offset means UTC, not the browser's zone.
    var text = /(Z|[+-]\d\d:?\d\d)$/.test(value) ? value : value + "Z";
    var moment = new Date(text);
    return isNaN(moment.getTime()) ? null : moment;
  }

  function relative(moment, now) {
    var seconds = Math.round((now - moment) / 1000);
    if (seconds < 45 && seconds > -45) return "just now";
    if (seconds < 0) return null;
    var minutes = Math.round(seconds / 60);
    if (minutes < 60) return minutes + " min ago";
    var hours = Math.round(minutes / 60);
    if (hours < 24) return hours + " h ago";
    var days = Math.round(hours / 24);
    if (days === 1) return "yesterday";
    if (days < 7) return days + " days ago";
    return null;
  }

  function showTimes(root) {
    var now = Date.now();
    Array.prototype.forEach.call((root || document).querySelectorAll("time[datetime]"), function (el) {
      var moment = parseMoment(el.getAttribute("datetime"));
      if (!moment) return;
      var exact = exactFormat.format(moment) + (zoneName ? " (" + zoneName + ")" : "");
      var text = relative(moment, now) || exactFormat.format(moment);
      if (el.textContent !== text) el.textContent = text;
      el.setAttribute("title", exact);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { showTimes(document); replayLeft(); });
  document.addEventListener("htmx:afterSwap", function (evt) { showTimes(evt.target); });
  window.setInterval(function () { showTimes(document); }, 60000);

  window.Multinotes = Object.freeze({
    csrfToken: csrfToken,
    request: request,
    readEvents: readEvents,
    showTimes: showTimes,
    sendOnLeave: sendOnLeave,
  });

  // Fallback only: the <meta name="htmx-config"> tag above is authoritative
  // (htmx merges it at DOMContentLoaded and it would override this).
  if (window.htmx && window.htmx.config) {
    window.htmx.config.includeIndicatorStyles = false;
    window.htmx.config.allowEval = false;
  }

  // --- CSRF header on htmx requests -------------------------------------
  document.addEventListener("htmx:configRequest", function (evt) {
    var token = csrfToken();
    if (token) {
      evt.detail.headers["X-CSRF-Token"] = token;
    }
  });

  // --- Tab kept inside a modal dialog ----------------------------------
  // showModal() makes the rest of the page inert, but Tab from the dialog's last control still
  // leaves it (for the browser's own UI): Tab and Shift+Tab go round the dialog's controls.
  var FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), " +
    "select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

  function keepTabInside(dialog) {
    dialog.addEventListener("keydown", function (evt) {
      if (evt.key !== "Tab") return;
      var controls = Array.prototype.filter.call(dialog.querySelectorAll(FOCUSABLE), function (el) {
        return el.getClientRects().length > 0;
      });
      if (!controls.length) return;
      var first = controls[0];
      var last = controls[controls.length - 1];
      var at = document.activeElement;
      if (evt.shiftKey && (at === first || at === dialog)) {
        evt.preventDefault();
        last.focus();
      } else if (!evt.shiftKey && at === last) {
        evt.preventDefault();
        first.focus();
      }
    });
  }

  // --- data-confirm -----------------------------------------------------
  // The question is asked in a styled modal <dialog> (built on first use): the rest of the page
  // is inert while it is open, Tab cycles inside it, Escape cancels, and the confirm button
  // carries the action's own label ("Revoke", "Delete", ...), red when the action destroys
  // something. Without JavaScript none of this runs and the form simply submits.
  var DESTRUCTIVE = /^(delete|revoke|remove|unlink|log out|block|stop|reset|drop)/i;
  var confirmDialog = null;
  var confirmed = typeof WeakSet === "function" ? new WeakSet() : null;

  function confirmMessage(el) {
    return el && el.getAttribute ? el.getAttribute("data-confirm") : null;
  }

  function buildConfirmDialog() {
    var dialog = document.createElement("dialog");
    dialog.id = "confirm-dialog";
    dialog.className = "confirm-dialog";
    dialog.setAttribute("role", "alertdialog");
    dialog.setAttribute("aria-labelledby", "confirm-message");
    var card = document.createElement("article");
    var message = document.createElement("p");
    message.id = "confirm-message";
    var footer = document.createElement("footer");
    footer.className = "cluster";
    var cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "secondary";
    cancel.id = "confirm-cancel";
    cancel.textContent = "Cancel";
    var ok = document.createElement("button");
    ok.type = "button";
    ok.id = "confirm-ok";
    footer.appendChild(cancel);
    footer.appendChild(ok);
    card.appendChild(message);
    card.appendChild(footer);
    dialog.appendChild(card);
    cancel.addEventListener("click", function () { dialog.close(""); });
    ok.addEventListener("click", function () { dialog.close("confirm"); });
    keepTabInside(dialog);
    document.body.appendChild(dialog);
    return dialog;
  }

  function actionLabel(el) {
    if (!el) return "";
    var label = el.getAttribute("data-confirm-label") || el.getAttribute("aria-label") ||
      el.textContent || el.value || "";
    return label.replace(/\s+/g, " ").trim();
  }

  // Asks `message`; calls onConfirm only if the user picks the action. `actor` is the button or
  // link that asked (its label names the confirm button; focus goes back to it on Cancel).
  function askToConfirm(message, actor, onConfirm) {
    if (!confirmDialog) confirmDialog = buildConfirmDialog();
    var dialog = confirmDialog;
    var ok = dialog.querySelector("#confirm-ok");
    var cancel = dialog.querySelector("#confirm-cancel");
    var label = actionLabel(actor) || "OK";
    var destructive = DESTRUCTIVE.test(label);
    dialog.querySelector("#confirm-message").textContent = message;
    ok.textContent = label;
    ok.className = destructive ? "danger" : "";
    dialog.returnValue = "";
    dialog.addEventListener("close", function done() {
      dialog.removeEventListener("close", done);
      if (dialog.returnValue === "confirm") {
        onConfirm();
      } else if (actor && actor.isConnected && actor.focus) {
        actor.focus();
      }
    });
    dialog.showModal();
    // A destructive action starts on Cancel, so Enter alone never destroys anything.
    (destructive ? cancel : ok).focus();
  }

  // htmx-driven requests: hook htmx:confirm (fired before every request).
  document.addEventListener("htmx:confirm", function (evt) {
    var d = evt.detail;
    if (d.question) return; // hx-confirm present: let htmx handle it
    var trig = d.triggeringEvent;
    var submitter = trig && trig.submitter ? trig.submitter : null;
    var msg = confirmMessage(d.elt) || confirmMessage(submitter);
    if (!msg) return;
    evt.preventDefault();
    var actor = submitter || (d.elt.matches && d.elt.matches("form") ?
      d.elt.querySelector("button[type=submit], button:not([type])") : d.elt);
    askToConfirm(msg, actor, function () { d.issueRequest(true); });
  });

  // Plain (non-htmx) forms. htmx cancels the native submit for forms it
  // handles, so defaultPrevented means htmx:confirm already dealt with it.
  document.addEventListener("submit", function (evt) {
    if (evt.defaultPrevented) return;
    var form = evt.target;
    if (confirmed && confirmed.has(form)) {
      confirmed.delete(form); // the confirmed resubmission: let it through
      return;
    }
    var submitter = evt.submitter;
    var msg = confirmMessage(submitter) || confirmMessage(form);
    if (!msg) return;
    evt.preventDefault();
    evt.stopPropagation();
    var actor = submitter || form.querySelector("button[type=submit], button:not([type])");
    askToConfirm(msg, actor, function () {
      if (confirmed) confirmed.add(form);
      if (form.requestSubmit) {
        form.requestSubmit(submitter && submitter.form === form ? submitter : undefined);
      } else {
        form.submit();
      }
    });
  });

  // Plain (non-htmx) links.
  document.addEventListener("click", function (evt) {
    if (evt.defaultPrevented) return;
    var link = evt.target.closest ? evt.target.closest("a[data-confirm]") : null;
    if (!link) return;
    if (confirmed && confirmed.has(link)) {
      confirmed.delete(link);
      return;
    }
    evt.preventDefault();
    evt.stopPropagation();
    askToConfirm(link.getAttribute("data-confirm"), link, function () {
      if (confirmed) confirmed.add(link);
      link.click();
    });
  });

  // --- The in-app announcement message ---------------------------------
  // The server sends it as an open <dialog> (readable without JavaScript, next to the banners);
  // here it becomes modal: the page behind is inert, Tab stays inside, Escape closes it and,
  // like "Got it", dismisses it for good, and focus goes back to where it was before it opened.
  function openAnnouncementMessage(root) {
    var dialog = root && root.querySelector ?
      root.querySelector("dialog.announcement-message[open]") : null;
    if (!dialog || typeof dialog.showModal !== "function") return;
    var opener = document.activeElement;
    var form = dialog.querySelector("form");
    var dismissed = false;
    keepTabInside(dialog);
    if (form) {
      form.addEventListener("submit", function () {
        dismissed = true;
        if (dialog.open) dialog.close();
      });
    }
    dialog.addEventListener("close", function () {
      if (!dismissed && form) {
        dismissed = true;
        if (form.requestSubmit) form.requestSubmit(); else form.submit();
      }
      if (opener && opener !== document.body && opener.isConnected && opener.focus) {
        opener.focus();
      }
    });
    dialog.removeAttribute("open"); // showModal() throws on a dialog that is already open
    dialog.showModal();
  }

  document.addEventListener("htmx:afterSwap", function (evt) {
    openAnnouncementMessage(evt.target);
  });

  // --- Copy to clipboard ------------------------------------------------
  function fallbackCopy(text) {
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.className = "visually-hidden";
    document.body.appendChild(ta);
    ta.select();
    var ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    document.body.removeChild(ta);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy failed"));
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        return fallbackCopy(text);
      });
    }
    return fallbackCopy(text);
  }

  function flashLabel(btn, label) {
    if (!btn.hasAttribute("data-copy-label")) {
      btn.setAttribute("data-copy-label", btn.textContent);
    }
    btn.textContent = label;
    clearTimeout(btn._mnCopyTimer);
    btn._mnCopyTimer = setTimeout(function () {
      btn.textContent = btn.getAttribute("data-copy-label");
      btn.removeAttribute("data-copy-label");
    }, 1500);
  }

  document.addEventListener("click", function (evt) {
    var btn = evt.target.closest ? evt.target.closest("[data-copy]") : null;
    if (!btn) return;
    evt.preventDefault();
    var target = null;
    try {
      target = document.querySelector(btn.getAttribute("data-copy"));
    } catch (e) {
      target = null; // invalid selector
    }
    if (!target) return;
    var text =
      "value" in target && typeof target.value === "string"
        ? target.value
        : target.textContent;
    copyText((text || "").trim()).then(
      function () { flashLabel(btn, "Copied"); },
      function () { flashLabel(btn, "Copy failed"); }
    );
  });
})();

/* The top navigation's "Menu" button (narrow screens): opens the links as a list under the bar;
   Escape or a click elsewhere closes it. css/app.css hides the links until then. */
(function () {
  "use strict";

  var nav = document.getElementById("topnav");
  var button = document.getElementById("topnav-menu");
  if (!nav || !button) return;

  function setOpen(open, refocus) {
    nav.classList.toggle("open", open);
    button.setAttribute("aria-expanded", open ? "true" : "false");
    if (!open && refocus) button.focus();
  }

  button.addEventListener("click", function () {
    setOpen(button.getAttribute("aria-expanded") !== "true", false);
  });
  document.addEventListener("keydown", function (evt) {
    if (evt.key === "Escape" && nav.classList.contains("open")) setOpen(false, true);
  });
  document.addEventListener("click", function (evt) {
    if (nav.classList.contains("open") && !nav.contains(evt.target)) setOpen(false, false);
  });
})();

/* The app shell for offline use: /sw.js (webui/static/js/sw.js) keeps the styles, scripts and an
   offline page. And "Got it" on the newcomer's introduction in Chat (remembered in a cookie the
   server reads, so the card is never drawn and then removed). */
(function () {
  "use strict";

  if ("serviceWorker" in navigator && window.isSecureContext) {
    window.addEventListener("load", function () {
      navigator.serviceWorker.register("/sw.js").catch(function () {
        // No worker: the app works as before, only not offline.
      });
    });
  }

  // The offline page stands in for the page that could not load: "Try again" reloads that one.
  document.addEventListener("click", function (evt) {
    var retry = evt.target.closest ? evt.target.closest("[data-retry]") : null;
    if (!retry) return;
    evt.preventDefault();
    window.location.reload();
  });

  document.addEventListener("click", function (evt) {
    var button = evt.target.closest ? evt.target.closest("[data-dismiss-intro]") : null;
    if (!button) return;
    document.cookie = "mn_intro_seen=1; path=/; max-age=31536000; samesite=lax";
    var intro = document.getElementById("ws-intro");
    if (intro) intro.remove();
    var prompt = document.getElementById("prompt");
    if (prompt) prompt.focus();
  });
})();
