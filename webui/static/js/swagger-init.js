/*
 * Swagger UI bootstrap for MultinotesAI (CSP-safe: loaded as an external
 * script, no inline JS). The page must load, in order:
 *   /static/vendor/swagger-ui/swagger-ui-bundle.js
 *   /static/vendor/swagger-ui/swagger-ui-standalone-preset.js
 *   /static/js/swagger-init.js
 * and contain <div id="swagger-ui"></div>. Swagger's CSS uses data: URIs,
 * so the CSP needs `img-src 'self' data:`.
 */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") || "" : "";
  }

  function init() {
    if (typeof window.SwaggerUIBundle !== "function") {
      return;
    }
    window.SwaggerUIBundle({
      url: "/api/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      presets: [
        window.SwaggerUIBundle.presets.apis,
        window.SwaggerUIStandalonePreset
      ],
      plugins: [window.SwaggerUIBundle.plugins.DownloadUrl],
      layout: "BaseLayout",
      requestInterceptor: function (req) {
        var token = csrfToken();
        if (token) {
          req.headers = req.headers || {};
          req.headers["X-CSRF-Token"] = token;
        }
        return req;
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
