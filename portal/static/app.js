// Herald portal: small enhancements. Every page works without this file.
(function () {
  "use strict";

  function csrfToken(form) {
    var input = form && form.querySelector('input[name="_csrf"]');
    return input ? input.value : "";
  }

  // Theme toggle without a reload.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("[data-theme-form]") || !window.fetch) return;
    event.preventDefault();
    var body = new FormData(form);
    var next = body.get("theme");
    fetch(form.action, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-Requested-With": "fetch", "X-CSRF-Token": csrfToken(form) }
    }).then(function (response) {
      if (!response.ok) { form.submit(); return; }
      document.documentElement.setAttribute("data-theme", next);
      document.querySelectorAll('[data-theme-form] input[name="theme"]').forEach(function (input) {
        input.value = next === "dark" ? "light" : "dark";
      });
    }, function () { form.submit(); });
  });

  // Close open popovers (user menu, column settings) on outside click or Escape.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.popover[open]").forEach(function (details) {
      if (!details.contains(event.target)) details.removeAttribute("open");
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.popover[open]").forEach(function (details) {
      details.removeAttribute("open");
      var summary = details.querySelector("summary");
      if (summary) summary.focus();
    });
    var modal = document.querySelector("[data-modal]");
    if (modal) modal.remove();
  });

  // Dismissible flash messages.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-dismiss]");
    if (button) button.closest("[data-dismissible]").remove();
  });

  // Copy buttons.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.textContent.trim();
    var label = button.querySelector("span");
    var done = function () {
      if (label) {
        var before = label.textContent;
        label.textContent = button.getAttribute("data-copied-text") || before;
        setTimeout(function () { label.textContent = before; }, 1800);
      }
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { selectText(source); });
    } else {
      selectText(source);
      try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
    }
  });

  function selectText(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // The one-time key window: focus the copy button, close in place.
  document.querySelectorAll("[data-modal]").forEach(function (modal) {
    var first = modal.querySelector("[data-copy]") || modal.querySelector("a, button");
    if (first) first.focus();
    modal.querySelectorAll("[data-modal-close]").forEach(function (link) {
      link.addEventListener("click", function (event) { event.preventDefault(); modal.remove(); });
    });
  });

  // Tables: select all, selection count, bulk buttons enabled only with a selection.
  document.querySelectorAll(".table-card").forEach(function (card) {
    var all = card.querySelector("[data-select-all]");
    var rows = Array.prototype.slice.call(card.querySelectorAll("[data-select-row]"));
    var count = card.querySelector("[data-bulk-count]");
    var actions = card.querySelectorAll("[data-bulk-action]");
    var bar = card.querySelector("[data-bulk]");
    function update() {
      var n = rows.filter(function (r) { return r.checked; }).length;
      actions.forEach(function (b) { b.disabled = n === 0; });
      if (bar) bar.classList.toggle("is-empty", n === 0);
      if (count) count.textContent = n ? count.getAttribute("data-template").replace("{n}", n) : "";
      if (all) { all.checked = n > 0 && n === rows.length; all.indeterminate = n > 0 && n < rows.length; }
    }
    if (all) all.addEventListener("change", function () {
      rows.forEach(function (r) { r.checked = all.checked; });
      update();
    });
    rows.forEach(function (r) { r.addEventListener("change", update); });
    update();

    // Select filters apply at once.
    card.querySelectorAll("[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  });

  // Column order (table column menus, Contacts' Fields Control): arrows from the keyboard,
  // or drag a row; the hidden "order" inputs follow the rows' order.
  document.querySelectorAll(".column-list").forEach(function (list) {
    list.querySelectorAll("[data-move]").forEach(function (button) {
      button.addEventListener("click", function () {
        var item = button.closest("[data-column]");
        if (button.getAttribute("data-move") === "up" && item.previousElementSibling) {
          item.parentNode.insertBefore(item, item.previousElementSibling);
        } else if (button.getAttribute("data-move") === "down" && item.nextElementSibling) {
          item.parentNode.insertBefore(item.nextElementSibling, item);
        }
        button.focus();
      });
    });
    var dragged = null;
    list.querySelectorAll("[data-column]").forEach(function (item) {
      item.addEventListener("dragstart", function (event) {
        if (event.target.closest("input[type=text]")) return;
        dragged = item;
        item.classList.add("is-dragging");
        event.dataTransfer.effectAllowed = "move";
        event.dataTransfer.setData("text/plain", "");
      });
      item.addEventListener("dragend", function () { item.classList.remove("is-dragging"); dragged = null; });
      item.addEventListener("dragover", function (event) {
        if (!dragged || dragged === item || dragged.parentNode !== item.parentNode) return;
        event.preventDefault();
        var box = item.getBoundingClientRect();
        var after = event.clientY > box.top + box.height / 2;
        item.parentNode.insertBefore(dragged, after ? item.nextElementSibling : item);
      });
      item.addEventListener("drop", function (event) { event.preventDefault(); });
    });
  });

  // Tabs of the code examples (without script every example is shown).
  document.querySelectorAll("[data-tabs]").forEach(function (box) {
    var list = box.querySelector("[data-tab-list]");
    var tabs = Array.prototype.slice.call(box.querySelectorAll("[data-tab]"));
    var panels = box.querySelectorAll("[data-panel]");
    function show(key) {
      tabs.forEach(function (t) {
        var on = t.getAttribute("data-tab") === key;
        t.setAttribute("aria-selected", on ? "true" : "false");
        t.tabIndex = on ? 0 : -1;
      });
      panels.forEach(function (p) { p.hidden = p.getAttribute("data-panel") !== key; });
    }
    list.hidden = false;
    box.classList.add("is-enhanced");
    tabs.forEach(function (tab, index) {
      tab.addEventListener("click", function () { show(tab.getAttribute("data-tab")); });
      tab.addEventListener("keydown", function (event) {
        var step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
        if (!step) return;
        var next = tabs[(index + step + tabs.length) % tabs.length];
        next.focus();
        show(next.getAttribute("data-tab"));
      });
    });
    show(tabs[0].getAttribute("data-tab"));
  });

  // Contact import: a drop zone around the file input, its size checked before the upload.
  document.querySelectorAll("[data-dropzone]").forEach(function (zone) {
    var input = zone.querySelector("input[type=file]");
    var name = zone.querySelector("[data-file-name]");
    var limit = parseInt(zone.getAttribute("data-max-bytes"), 10) || 0;
    function show() {
      var file = input.files && input.files[0];
      if (!file) { name.textContent = ""; return; }
      name.textContent = file.name;
      if (limit && file.size > limit) {
        name.textContent = file.name + " — " + zone.getAttribute("data-too-large");
        input.setCustomValidity(zone.getAttribute("data-too-large"));
      } else {
        input.setCustomValidity("");
      }
    }
    input.addEventListener("change", show);
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.add("is-over"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("is-over"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        show();
      }
    });
    var form = zone.closest("form");
    form.addEventListener("submit", function (event) {
      if (!input.checkValidity()) { event.preventDefault(); input.reportValidity(); }
    });
  });

  // A running contact import: follow its progress, then show the result page.
  var importBox = document.querySelector("[data-import-progress][data-running]");
  if (importBox && window.fetch) {
    var bar = importBox.querySelector("[data-import-bar]");
    var status = importBox.querySelector("[data-import-status]");
    var poll = function () {
      fetch(importBox.getAttribute("data-import-progress"), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          bar.value = data.progress;
          bar.textContent = data.progress + "%";
          status.textContent = data.status_text;
          if (data.finished) { window.location.reload(); return; }
          setTimeout(poll, 1000);
        }, function () { setTimeout(poll, 3000); });
    };
    setTimeout(poll, 500);
  }

  // A new CAPTCHA picture without losing what was typed.
  var refresh = document.querySelector("[data-captcha-refresh]");
  if (refresh && window.fetch) {
    refresh.hidden = false;
    refresh.addEventListener("click", function () {
      fetch("/captcha/new", { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          document.querySelector("[data-captcha-id]").value = data.id;
          document.querySelector("[data-captcha-image]").src = data.image;
        });
    });
  }
})();
