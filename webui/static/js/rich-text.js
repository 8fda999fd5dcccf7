/*
 * Rich answers and notes: syntax highlighting and a copy button on code blocks, typeset math,
 * and keyboard access to tables that scroll sideways. Plain JS, CSP-safe.
 *
 * The server (core/markdown.py) renders and sanitises the Markdown; this file only decorates it:
 *   - <pre><code class="language-x">: highlighted by the vendored highlight.js (only when x is a
 *     language it knows), and given a toolbar with the language and a "Copy code" button.
 *   - <code class="math-inline"> and <code class="math-display"> (or a ```math fence): escaped
 *     TeX, typeset by the vendored KaTeX with katex.render, which builds DOM nodes (no inline
 *     style attributes, so `style-src 'self'` holds); trust is off, so \href and friends are text.
 *   - <div class="table-scroll">: focusable (a region) when its table is wider than the box.
 *
 * The two libraries are loaded only on pages that need them; their addresses come from this
 * script's data-* attributes (base.html). Content that arrives later (a streamed answer's final
 * HTML, the note preview, a re-run) is picked up by a MutationObserver.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var CONTAINERS = ".markdown, .markdown-body, .answer-body, .comment-body, .legal";
  var CODE = "pre > code:not(.math-display):not(.language-math):not([data-rich])";
  var MATH = "code.math-inline:not([data-rich]), code.math-display:not([data-rich]), " +
    "pre > code.language-math:not([data-rich])";
  var loading = {};

  function load(name, cssName) {
    if (!loading[name]) {
      loading[name] = new Promise(function (resolve, reject) {
        if (cssName && script.dataset[cssName]) {
          var link = document.createElement("link");
          link.rel = "stylesheet";
          link.href = script.dataset[cssName];
          document.head.appendChild(link);
        }
        var tag = document.createElement("script");
        tag.src = script.dataset[name];
        tag.onload = resolve;
        tag.onerror = reject;
        document.head.appendChild(tag);
      });
    }
    return loading[name];
  }

  function language(code) {
    var match = /(?:^|\s)language-([\w+#.-]+)/.exec(code.className);
    return match ? match[1] : "";
  }

  function copyText(text) {
    if (navigator.clipboard && navigator.clipboard.writeText) {
      return navigator.clipboard.writeText(text);
    }
    var area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    try {
      document.execCommand("copy");
    } finally {
      area.remove();
    }
    return Promise.resolve();
  }

  function decorateCode(code) {
    code.setAttribute("data-rich", "");
    var pre = code.parentNode;
    var block = document.createElement("div");
    block.className = "code-block";
    var bar = document.createElement("div");
    bar.className = "code-bar";
    var label = document.createElement("span");
    label.className = "code-lang";
    label.textContent = language(code) || "text";
    var button = document.createElement("button");
    button.type = "button";
    button.className = "code-copy";
    button.setAttribute("aria-label", "Copy code");
    button.textContent = "Copy";
    bar.appendChild(label);
    bar.appendChild(button);
    pre.parentNode.insertBefore(block, pre);
    block.appendChild(bar);
    block.appendChild(pre);
  }

  // One listener for every copy button, so copies of a block (a note's re-run shows the saved
  // answer cloned) copy too.
  document.addEventListener("click", function (evt) {
    var button = evt.target.closest ? evt.target.closest(".code-copy") : null;
    var code = button && button.closest(".code-block").querySelector("pre > code");
    if (!code) return;
    copyText(code.textContent).then(function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    });
  });

  function highlight(codes) {
    var wanted = codes.filter(function (code) { return language(code); });
    if (!wanted.length || !script.dataset.highlight) return;
    load("highlight").then(function () {
      var hljs = window.hljs;
      hljs.configure({ ignoreUnescapedHTML: true });
      wanted.forEach(function (code) {
        if (code.classList.contains("hljs") || !hljs.getLanguage(language(code))) return;
        hljs.highlightElement(code);
      });
    });
  }

  function typeset(codes) {
    if (!codes.length || !script.dataset.katex) return;
    codes.forEach(function (code) { code.setAttribute("data-rich", ""); });
    load("katex", "katexCss").then(function () {
      codes.forEach(function (code) {
        var inPre = code.parentNode && code.parentNode.tagName === "PRE";
        var display = inPre || code.classList.contains("math-display");
        var target = document.createElement(inPre ? "div" : "span");
        target.className = display ? "math math-display" : "math math-inline";
        try {
          window.katex.render(code.textContent, target, {
            displayMode: display, throwOnError: false, trust: false, strict: "ignore",
            maxExpand: 500,
          });
        } catch (err) {
          return; // keep the TeX as code
        }
        (inPre ? code.parentNode : code).replaceWith(target);
      });
    });
  }

  function markScrollers(root) {
    root.querySelectorAll(".table-scroll:not([data-rich])").forEach(function (box) {
      if (box.scrollWidth > box.clientWidth + 1) {
        box.setAttribute("data-rich", "");
        box.tabIndex = 0;
        box.setAttribute("role", "region");
        box.setAttribute("aria-label", "Table, scrolls sideways");
      }
    });
  }

  function enhance() {
    var codes = [];
    var maths = [];
    document.querySelectorAll(CONTAINERS).forEach(function (root) {
      if (root.closest("[aria-busy=true]")) return; // still streaming: wait for the final HTML
      root.querySelectorAll(MATH).forEach(function (code) { maths.push(code); });
      root.querySelectorAll(CODE).forEach(function (code) {
        decorateCode(code);
        codes.push(code);
      });
      markScrollers(root);
    });
    typeset(maths);
    highlight(codes);
  }

  var queued = false;
  function schedule() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(function () {
      queued = false;
      enhance();
    });
  }

  function start() {
    enhance();
    new MutationObserver(schedule).observe(document.body, {
      childList: true, subtree: true, attributes: true, attributeFilter: ["aria-busy"],
    });
    window.addEventListener("resize", schedule);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
