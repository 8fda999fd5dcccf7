/*
 * Swagger UI bootstrap for MultinotesAI (CSP-safe: loaded as an external
 * script, no inline JS). The page must load, in order:
 *   /static/vendor/swagger-ui/swagger-ui-bundle.js
 *   /static/vendor/swagger-ui/swagger-ui-standalone-preset.js
 *   /static/js/swagger-init.js
 * and contain <div id="swagger-ui"></div>. Swagger's CSS uses data: URIs,
 * so the CSP needs `img-src 'self' data:`.
 *
 * Swagger UI 5.33+ virtualises the operations list once the tags plus the
 * operations of the open tags number 150 or more (a fixed threshold, no
 * option): only the ones near the viewport are in the page, the rest are
 * drawn while scrolling. Ours are well above it, so the find-in-page of the
 * browser could not find an endpoint below the fold. ListEveryOperation puts
 * back Swagger UI's own non-virtual rendering (the one it uses below the
 * threshold): every tag and operation is in the page at once.
 */
(function () {
  "use strict";

  function ListEveryOperation(system) {
    var h = system.React.createElement;

    function Operations(props) {
      var specSelectors = props.specSelectors;
      var getComponent = props.getComponent;
      var taggedOps = specSelectors.taggedOperations();
      if (taggedOps.size === 0) {
        return h("h3", null, " No operations defined in spec!");
      }
      var validMethods = specSelectors.validOperationMethods();
      var OperationTag = getComponent("OperationTag");
      var OperationContainer = getComponent("OperationContainer", true);
      var specUrl = specSelectors.url();
      return h(
        "div",
        null,
        taggedOps
          .map(function (tagObj, tag) {
            var operations = tagObj
              .get("operations")
              .filter(function (op) {
                return validMethods.indexOf(op.get("method")) !== -1;
              })
              .map(function (op) {
                return h(OperationContainer, {
                  key: op.get("path") + "-" + op.get("method"),
                  specPath: op.get("specPath"),
                  op: op,
                  path: op.get("path"),
                  method: op.get("method"),
                  tag: tag
                });
              })
              .toArray();
            return h(
              OperationTag,
              {
                key: "operation-" + tag,
                tagObj: tagObj,
                tag: tag,
                oas3Selectors: props.oas3Selectors,
                layoutSelectors: props.layoutSelectors,
                layoutActions: props.layoutActions,
                getConfigs: props.getConfigs,
                getComponent: getComponent,
                specUrl: specUrl
              },
              h("div", { className: "operation-tag-content" }, operations)
            );
          })
          .valueSeq()
          .toArray()
      );
    }

    return { components: { operations: Operations } };
  }

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
      plugins: [window.SwaggerUIBundle.plugins.DownloadUrl, ListEveryOperation],
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
