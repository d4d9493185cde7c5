// The privacy centre's only script: shows the correction fields for a correction request.
// Pages work without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var type = document.getElementById("type");
  var corrections = document.getElementById("corrections");
  if (!type || !corrections) { return; }
  function sync() { corrections.hidden = type.value !== "rectification"; }
  type.addEventListener("change", sync);
  sync();
});
