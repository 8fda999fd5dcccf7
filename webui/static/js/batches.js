/* The batch page: when the live channel says this batch moved (batch.progress), refresh its
 * status part at once instead of waiting for the next two-second poll (htmx does both). */
(function () {
  "use strict";
  document.addEventListener("multinotes:live", function (event) {
    var live = event.detail;
    if (!live || live.type !== "batch.progress" || !live.data) return;
    var status = document.getElementById("batch-status");
    if (!status || status.getAttribute("data-batch-id") !== live.data.id) return;
    if (!status.hasAttribute("hx-get")) return;  // it ended: nothing to refresh
    if (window.htmx) window.htmx.trigger(status, "batch-progress");
  });
})();
