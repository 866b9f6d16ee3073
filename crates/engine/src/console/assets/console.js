// The edgeflags console's only script, served by the edge at /.edgeflags/console/console.js
// (the page's Content-Security-Policy allows no inline script): the Copy button puts the
// share link on the clipboard.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var button = document.getElementById("copy");
  if (!button) {
    return;
  }
  button.addEventListener("click", function () {
    var field = document.getElementById(button.getAttribute("data-copy"));
    var said = document.getElementById("copied");
    field.select();
    var done = function () { said.textContent = "Copied"; };
    if (navigator.clipboard) {
      navigator.clipboard.writeText(field.value).then(done, function () {
        said.textContent = "Select the link and copy it";
      });
    } else {
      said.textContent = "Select the link and copy it";
    }
  });
});
