// A copy button after every shortened hash or address (an element with data-copy): it copies
// the full value. A static file, because the Content-Security-Policy allows no inline script.
"use strict";
(function () {
  function copyText(text, button) {
    function done() {
      button.textContent = "copied";
      window.setTimeout(function () { button.textContent = "copy"; }, 1500);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
      return;
    }
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "copy-scratch";
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    document.body.removeChild(area);
    done();
  }

  function addButtons(root) {
    root.querySelectorAll("[data-copy]:not(.copy-button)").forEach(function (element) {
      if (element.dataset.copyButton === "added") {
        return;
      }
      element.dataset.copyButton = "added";
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy-button";
      button.textContent = "copy";
      button.title = "Copy " + element.dataset.copy;
      button.dataset.copyValue = element.dataset.copy;
      button.addEventListener("click", function (event) {
        event.preventDefault();
        copyText(button.dataset.copyValue, button);
      });
      element.insertAdjacentElement("afterend", button);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    addButtons(document);
  });
})();
