// Progressive enhancement only: every page works without this file.
// On a diff page, "j" and "k" move to the next and previous changed passage.
(function () {
  "use strict";

  function changes() {
    return Array.prototype.slice.call(document.querySelectorAll("tbody[id^='change-'], .rd-stretch[id^='change-']"));
  }

  function current(list) {
    var middle = window.innerHeight / 3;
    var index = -1;
    list.forEach(function (block, position) {
      if (block.getBoundingClientRect().top <= middle) {
        index = position;
      }
    });
    return index;
  }

  function go(block) {
    if (!block) {
      return;
    }
    history.replaceState(null, "", "#" + block.id);
    var heading = block.querySelector(".change-heading th");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: true });
    }
    block.scrollIntoView({ block: "start" });
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) {
      return;
    }
    var target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName))) {
      return;
    }
    if (event.key !== "j" && event.key !== "k") {
      return;
    }
    var list = changes();
    if (!list.length) {
      return;
    }
    var index = current(list);
    go(event.key === "j" ? list[Math.min(index + 1, list.length - 1)] : list[Math.max(index - 1, 0)]);
    event.preventDefault();
  });
})();

// A "Print or save as PDF" button (hidden without this script: the browser's own menu works too).
(function () {
  "use strict";
  Array.prototype.forEach.call(document.querySelectorAll(".print-button"), function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      window.print();
    });
  });
})();
