// mediarunner admin: progressive enhancement, no build step, nothing from a CDN.
// Every element with data-live="URL" follows that Server-Sent Events stream: an "update" event
// carries the region's freshly rendered HTML (the same partial the page was served with), an
// "end" event closes the stream. Without JavaScript the pages work as plain HTML (reload to refresh).
(function () {
  "use strict";

  function follow(region) {
    var source = new EventSource(region.getAttribute("data-live"));
    source.addEventListener("update", function (event) {
      var focused = document.activeElement;
      var keep = focused && region.contains(focused) ? focused.getAttribute("data-action") : null;
      region.innerHTML = event.data;
      region.setAttribute("data-updated", String(Date.now()));
      if (keep) {  // keyboard users keep their place across updates
        var again = region.querySelector('[data-action="' + keep + '"]');
        if (again) { again.focus(); }
      }
    });
    source.addEventListener("end", function () { source.close(); });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function start() {
    if (!window.EventSource) { return; }
    var regions = document.querySelectorAll("[data-live]");
    for (var i = 0; i < regions.length; i++) { follow(regions[i]); }
    document.documentElement.setAttribute("data-js", "ready");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
