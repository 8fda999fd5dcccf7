/*
 * The service worker (served as /sw.js so its scope is the whole site). It keeps the app shell:
 * the offline page and the styles, scripts and icon it uses, found in the page itself so the
 * cached URLs carry the same ?v= hashes as every page. Pages always come from the network (they
 * are personal and change); when there is none, the offline page answers instead. Versioned
 * static files are served from the cache once fetched. Nothing else (API calls, posts, streams)
 * is touched.
 */
"use strict";

var CACHE = "multinotes-shell-v1";
var OFFLINE = "/offline";

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(CACHE).then(function (cache) {
      // Anonymous: the offline page holds nobody's name or token.
      return fetch(OFFLINE, { credentials: "omit" }).then(function (response) {
        if (!response.ok) throw new Error("offline page: " + response.status);
        return response.clone().text().then(function (html) {
          var assets = [];
          html.replace(/(?:href|src)="(\/static\/[^"]+)"/g, function (_, url) {
            assets.push(url.replace(/&amp;/g, "&"));
            return "";
          });
          return cache.put(OFFLINE, response).then(function () { return cache.addAll(assets); });
        });
      });
    }).then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (n) { return n !== CACHE; }).map(function (n) {
        return caches.delete(n);
      }));
    }).then(function () { return self.clients.claim(); })
  );
});

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    event.respondWith(fetch(request).catch(function () {
      return caches.match(OFFLINE);
    }));
    return;
  }
  if (url.pathname.indexOf("/static/") === 0 && url.searchParams.has("v")) {
    // Versioned: the same URL is the same bytes forever.
    event.respondWith(caches.match(request).then(function (hit) {
      return hit || fetch(request).then(function (response) {
        if (response.ok) {
          var copy = response.clone();
          caches.open(CACHE).then(function (cache) { cache.put(request, copy); });
        }
        return response;
      });
    }));
  }
});
