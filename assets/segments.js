// Enlace staff console: the segment builder. It turns the page's JSON filter (the textarea
// #f-filter, which the form sends and which works without this file) into groups and
// conditions, writes every change back into that JSON, and asks the server how many people the
// filter reaches a moment after each change (POST data-count-url: {"count": n} or a problem
// document whose `errors` are keyed by the filter's paths, shown beside their conditions).
// Editing the JSON by hand rebuilds the conditions. All wording comes from the page
// (data-config.words, the console's catalog in the member's language).
"use strict";
(function () {
  var root = document.querySelector("[data-segment-builder]");
  if (!root || !window.fetch) return;
  var config = JSON.parse(root.getAttribute("data-config"));
  var words = config.words || {};
  var form = root.closest("form");
  var textarea = document.getElementById("f-filter");
  var countEl = document.getElementById("segment-count");
  var countUrl = root.getAttribute("data-count-url");
  var readonly = root.hasAttribute("data-readonly");
  var csrf = form.querySelector("input[name=csrf]").value;
  var numbers = new Intl.NumberFormat(document.documentElement.lang || "en");
  var uid = 0;
  var model = null;      // the root group
  var unwrapped = false; // the root group stands for its one condition alone
  var elements = {};     // filter path → the element showing that condition's errors
  var timer = null, inFlight = null;

  function say(key, fill) {
    var text = words[key] || key;
    Object.keys(fill || {}).forEach(function (k) { text = text.replace("{" + k + "}", fill[k]); });
    return text;
  }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (attrs[k] !== null && attrs[k] !== undefined && attrs[k] !== false) node.setAttribute(k, attrs[k] === true ? "" : attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }
  function nextId() { uid += 1; return "sb-" + uid; }
  function field(key) { return config.fields.filter(function (f) { return f.key === key; })[0]; }

  // ------------------------------------------------------------ JSON filter ⇄ model
  // A datetime-local value (the computer's time) ⇄ RFC 3339 in UTC.
  function localValue(rfc) {
    var d = new Date(rfc);
    if (isNaN(d.getTime()) || d.getSeconds() || d.getMilliseconds()) return null;
    var pad = function (n) { return String(n).padStart(2, "0"); };
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  function utcValue(local) {
    var d = new Date(local);
    return isNaN(d.getTime()) ? local : d.toISOString().replace(".000Z", "Z");
  }

  // The model of a filter, or null when the builder cannot show it (it stays JSON only).
  function fromFilter(f) {
    if (!f || typeof f !== "object" || Array.isArray(f)) return null;
    var keys = Object.keys(f);
    if (keys.length !== 1) return null;
    var k = keys[0], v = f[k];
    if (k === "not") {
      var inner = fromFilter(v);
      if (inner) inner.not = !inner.not;
      return inner;
    }
    if (k === "all" || k === "any") {
      if (!Array.isArray(v)) return null;
      var children = v.map(fromFilter);
      if (children.some(function (c) { return !c; })) return null;
      return { type: "group", op: k, not: false, children: children };
    }
    if (k === "interest" || k === "language" || k === "email_domain" || k === "source") {
      return typeof v === "string" ? { type: "cond", kind: k, not: false, value: v } : null;
    }
    if (k === "created" || k === "confirmed") {
      if (!v || typeof v !== "object") return null;
      var after = v.after ? localValue(v.after) : "", before = v.before ? localValue(v.before) : "";
      if (after === null || before === null) return null;
      var range = after && before ? "between" : before ? "before" : "on_or_after";
      return { type: "cond", kind: k, not: false, range: range, after: after, before: before };
    }
    if (k === "attribute") {
      if (!v || typeof v !== "object" || !field(v.key)) return null;
      return { type: "cond", kind: "field", not: false, key: v.key, op: v.op, value: v.value };
    }
    return null;
  }

  function negate(json, node) { return node.not ? { not: json } : json; }

  // The JSON filter of a node; records where each condition's errors go.
  function toFilter(node, path) {
    var json;
    if (node.type === "group") {
      var inner = node.not ? path + ".not" : path;
      json = {};
      json[node.op] = node.children.map(function (c, i) { return toFilter(c, inner + "." + node.op + "[" + i + "]"); });
      elements[path] = node;
      return negate(json, node);
    }
    elements[path] = node;
    var o = {};
    switch (node.kind) {
      case "created": case "confirmed":
        var r = {};
        if (node.range !== "before") r.after = node.after ? utcValue(node.after) : "";
        if (node.range !== "on_or_after") r.before = node.before ? utcValue(node.before) : "";
        o[node.kind] = r;
        break;
      case "field":
        var a = { key: node.key, op: node.op };
        if (node.op !== "exists" && node.op !== "not_exists") a.value = node.value === undefined ? "" : node.value;
        o.attribute = a;
        break;
      default:
        o[node.kind] = node.value || "";
    }
    return negate(o, node);
  }

  function currentFilter() {
    elements = {};
    if (unwrapped && model.children.length === 1 && model.op === "all" && !model.not) {
      return toFilter(model.children[0], "filter");
    }
    return toFilter(model, "filter");
  }

  // A fresh condition of a kind, with the first choice filled in where there is one.
  function blank(kind) {
    var c = { type: "cond", kind: kind, not: false };
    if (kind === "interest") c.value = config.interests.length ? config.interests[0].slug : "";
    else if (kind === "language") c.value = "es";
    else if (kind === "created" || kind === "confirmed") { c.range = "on_or_after"; c.after = ""; c.before = ""; }
    else if (kind === "field") {
      var f = config.fields[0];
      c.key = f ? f.key : ""; c.op = f ? f.ops[0] : "eq"; c.value = f ? defaultValue(f, c.op) : "";
    } else c.value = "";
    return c;
  }
  function defaultValue(f, op) {
    if (op === "exists" || op === "not_exists") return undefined;
    if (op === "in") return [];
    if (f.type === "boolean") return true;
    if (f.type === "one_of" && (op === "eq" || op === "ne")) return f.values[0];
    return "";
  }

  // ------------------------------------------------------------ rendering
  function select(id, options, value, onchange) {
    var s = el("select", { id: id, disabled: readonly });
    options.forEach(function (o) {
      var opt = el("option", { value: o[0], text: o[1] });
      if (String(o[0]) === String(value)) opt.selected = true;
      s.appendChild(opt);
    });
    s.addEventListener("change", function () { onchange(s.value); });
    return s;
  }
  function labelled(text, control, hint) {
    var hintEl = null;
    if (hint) {
      hintEl = el("span", { class: "hint", id: control.id + "-hint", text: hint });
      control.setAttribute("aria-describedby", hintEl.id);
    }
    return el("div", { class: "builder-field" }, [el("label", { for: control.id, text: text }), hintEl, control]);
  }
  function input(type, value, onchange, attrs) {
    var i = el("input", Object.assign({ id: nextId(), type: type, disabled: readonly, autocomplete: "off" }, attrs || {}));
    i.value = value === undefined || value === null ? "" : value;
    i.addEventListener("input", function () { onchange(i.value); });
    return i;
  }
  // A change of value: the JSON and the count follow; the controls stay as they are.
  function changed() { sync(); }
  // A change of shape: the controls are drawn again, focus kept where it makes sense.
  function reshaped(focusId) {
    lastErrors = {};
    sync();
    draw();
    var target = focusId && document.getElementById(focusId);
    if (target) target.focus();
  }

  function valueControls(node) {
    var parts = [];
    var set = function (v) { node.value = v; changed(); };
    switch (node.kind) {
      case "interest":
        if (!config.interests.length) return [el("p", { class: "hint", text: say("no_interests") })];
        parts.push(labelled(say("value"), select(nextId(), config.interests.map(function (i) { return [i.slug, i.name]; }), node.value, set)));
        break;
      case "language":
        parts.push(labelled(say("value"), select(nextId(), [["en", say("en")], ["es", say("es")]], node.value, set)));
        break;
      case "email_domain":
        parts.push(labelled(say("value"), input("text", node.value, set, { spellcheck: "false" }), say("domain_hint")));
        break;
      case "source":
        parts.push(labelled(say("value"), input("text", node.value, set), say("source_hint")));
        break;
      case "created": case "confirmed":
        var ranges = ["on_or_after", "before", "between"].map(function (r) { return [r, say(r)]; });
        parts.push(labelled(say("operator"), select(nextId(), ranges, node.range, function (r) { node.range = r; reshaped(); })));
        if (node.range !== "before") parts.push(labelled(say("value"), input("datetime-local", node.after, function (v) { node.after = v; changed(); }), say("date_hint")));
        if (node.range !== "on_or_after") parts.push(labelled(node.range === "between" ? say("and") : say("value"), input("datetime-local", node.before, function (v) { node.before = v; changed(); }), say("date_hint")));
        break;
      case "field":
        if (!config.fields.length) return [el("p", { class: "hint", text: say("no_fields") })];
        var f = field(node.key) || config.fields[0];
        var keyId = nextId();
        parts.push(labelled(say("field"), select(keyId, config.fields.map(function (x) { return [x.key, x.key]; }), f.key, function (k) {
          node.key = k; var nf = field(k);
          if (nf.ops.indexOf(node.op) < 0) node.op = nf.ops[0];
          node.value = defaultValue(nf, node.op); reshaped(keyId);
        })));
        var ops = f.ops.filter(function (op) { return !(f.type === "date" && (op === "gt" || op === "lt")) || op === node.op; });
        var opId = nextId();
        parts.push(labelled(say("operator"), select(opId, ops.map(function (op) {
          return [op, f.type === "date" && (op === "before" || op === "after") ? say("date_" + op) : say(op)];
        }), node.op, function (op) { node.op = op; node.value = defaultValue(f, op); reshaped(opId); })));
        if (node.op === "exists" || node.op === "not_exists") break;
        if (node.op === "in") {
          if (f.type === "one_of") {
            var box = el("fieldset", { class: "choices" }, [el("legend", { text: say("value") })]);
            f.values.forEach(function (v) {
              var id = nextId();
              var cb = el("input", { type: "checkbox", id: id, disabled: readonly });
              cb.checked = Array.isArray(node.value) && node.value.indexOf(v) >= 0;
              cb.addEventListener("change", function () {
                var list = (Array.isArray(node.value) ? node.value : []).filter(function (x) { return x !== v; });
                if (cb.checked) list.push(v);
                node.value = f.values.filter(function (x) { return list.indexOf(x) >= 0; }); changed();
              });
              box.appendChild(el("div", { class: "check" }, [cb, el("label", { for: id, text: v })]));
            });
            parts.push(box);
          } else {
            var shown = Array.isArray(node.value) ? node.value.join(", ") : "";
            parts.push(labelled(say("value"), input("text", shown, function (v) {
              node.value = v.split(",").map(function (x) { return x.trim(); }).filter(Boolean).map(function (x) {
                return f.type === "number" && x !== "" && !isNaN(Number(x)) ? Number(x) : x;
              });
              changed();
            }), say("values_hint")));
          }
        } else if (f.type === "boolean") {
          parts.push(labelled(say("value"), select(nextId(), [["true", say("yes")], ["false", say("no")]], String(node.value), function (v) { set(v === "true"); })));
        } else if (f.type === "one_of" && (node.op === "eq" || node.op === "ne")) {
          parts.push(labelled(say("value"), select(nextId(), f.values.map(function (v) { return [v, v]; }), node.value, set)));
        } else if (f.type === "number") {
          parts.push(labelled(say("value"), input("number", node.value, function (v) { set(v === "" || isNaN(Number(v)) ? v : Number(v)); }, { step: "any" })));
        } else if (f.type === "date") {
          parts.push(labelled(say("value"), input("date", node.value, set)));
        } else {
          parts.push(labelled(say("value"), input("text", node.value, set)));
        }
        break;
    }
    return parts;
  }

  var KINDS = ["interest", "language", "field", "source", "created", "confirmed", "email_domain"];

  function drawCondition(node, parent, index) {
    var kindId = nextId();
    var box = el("fieldset", { class: "condition" }, [el("legend", { text: say("condition", { n: index + 1 }) })]);
    box.appendChild(labelled(say("kind"), select(kindId, KINDS.map(function (k) { return [k, say(k)]; }), node.kind, function (k) {
      var fresh = blank(k); fresh.not = node.not; parent.children[index] = fresh; reshaped(kindId);
    })));
    valueControls(node).forEach(function (p) { box.appendChild(p); });
    box.appendChild(excludeBox(node));
    node.errorEl = el("p", { class: "field-error", hidden: true });
    box.appendChild(node.errorEl);
    if (!readonly) {
      var remove = el("button", { type: "button", class: "link", text: say("remove") });
      remove.setAttribute("aria-label", say("remove") + ": " + say("condition", { n: index + 1 }));
      remove.addEventListener("click", function () {
        parent.children.splice(index, 1);
        reshaped(parent.addId);
      });
      box.appendChild(remove);
    }
    return box;
  }

  function excludeBox(node) {
    var id = nextId();
    var cb = el("input", { type: "checkbox", id: id, disabled: readonly });
    cb.checked = node.not;
    cb.addEventListener("change", function () { node.not = cb.checked; changed(); });
    return el("div", { class: "check" }, [cb, el("label", { for: id, text: say("exclude") })]);
  }

  function drawGroup(node, parent, index) {
    var isRoot = !parent;
    var box = el("fieldset", { class: isRoot ? "group root" : "group" }, [el("legend", { text: isRoot ? say("top") : say("group") })]);
    var opId = nextId();
    box.appendChild(labelled(say("match"), select(opId, [["all", say("all")], ["any", say("any")]], node.op, function (op) { node.op = op; changed(); })));
    if (!isRoot) box.appendChild(excludeBox(node));
    node.errorEl = el("p", { class: "field-error", hidden: true });
    box.appendChild(node.errorEl);
    var list = el("ol", { class: "conditions" });
    node.children.forEach(function (child, i) {
      list.appendChild(el("li", {}, [child.type === "group" ? drawGroup(child, node, i) : drawCondition(child, node, i)]));
    });
    box.appendChild(list);
    if (!readonly) {
      node.addId = nextId();
      var add = el("button", { type: "button", class: "secondary", id: node.addId, text: say("add_condition") });
      add.addEventListener("click", function () {
        node.children.push(blank(config.interests.length ? "interest" : "language"));
        reshaped();
        var selects = box.querySelectorAll(":scope > ol > li:last-child select");
        if (selects.length) selects[0].focus();
      });
      var addGroup = el("button", { type: "button", class: "secondary", text: say("add_group") });
      addGroup.addEventListener("click", function () {
        node.children.push({ type: "group", op: "any", not: false, children: [blank("language")] });
        reshaped();
        var selects = box.querySelectorAll(":scope > ol > li:last-child select");
        if (selects.length) selects[0].focus();
      });
      var buttons = el("div", { class: "actions" }, [add, addGroup]);
      if (!isRoot) {
        var remove = el("button", { type: "button", class: "link", text: say("remove_group") });
        remove.addEventListener("click", function () { parent.children.splice(index, 1); reshaped(parent.addId); });
        buttons.appendChild(remove);
      }
      box.appendChild(buttons);
    }
    return box;
  }

  function draw() {
    root.replaceChildren(drawGroup(model, null, 0));
    showErrors(lastErrors);
  }

  // ------------------------------------------------------------ the JSON and the count
  var lastErrors = {};
  var note = el("p", { class: "hint", hidden: true });
  textarea.parentNode.insertBefore(note, textarea);

  function sync() {
    if (!model.children.length) {
      textarea.value = "";
      lastErrors = {};
      showErrors({});
      countEl.textContent = say("empty");
      return;
    }
    textarea.value = JSON.stringify(currentFilter(), null, 2);
    note.hidden = true;
    schedule();
  }

  function schedule() {
    if (countEl.hidden) return;
    countEl.classList.add("stale");
    if (timer) clearTimeout(timer);
    timer = setTimeout(count, 300);
  }

  function count() {
    timer = null;
    if (inFlight) inFlight.abort();
    var controller = window.AbortController ? new AbortController() : null;
    inFlight = controller;
    var body = new URLSearchParams({ csrf: csrf, filter: textarea.value });
    fetch(countUrl, { method: "POST", credentials: "same-origin", body: body, signal: controller && controller.signal })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (answer) {
          if (inFlight !== controller) return;
          inFlight = null;
          countEl.classList.remove("stale");
          if (response.ok && typeof answer.count === "number") {
            lastErrors = {};
            showErrors({});
            countEl.textContent = answer.count === 1 ? say("reaches_one") : say("reaches", { count: numbers.format(answer.count) });
          } else if (response.status === 422 && answer.errors) {
            lastErrors = answer.errors;
            showErrors(answer.errors);
            countEl.textContent = say("invalid");
          } else {
            countEl.textContent = say("failed");
          }
        });
      })
      .catch(function (e) {
        if (e && e.name === "AbortError") return;
        countEl.classList.remove("stale");
        countEl.textContent = say("failed");
      });
  }

  // Each error beside the condition its path names (or the nearest group above it).
  function showErrors(errors) {
    Object.keys(elements).forEach(function (p) {
      var n = elements[p];
      if (n.errorEl) { n.errorEl.hidden = true; n.errorEl.textContent = ""; }
    });
    Object.keys(errors || {}).forEach(function (path) {
      var at = path, node = null;
      while (at && !(node = elements[at])) {
        var cut = Math.max(at.lastIndexOf("."), at.lastIndexOf("["));
        at = cut > 0 ? at.slice(0, cut) : "";
      }
      if (!node || !node.errorEl) return;
      node.errorEl.hidden = false;
      node.errorEl.textContent = (node.errorEl.textContent ? node.errorEl.textContent + " " : "") + errors[path].join("; ");
    });
  }

  function load(text) {
    var parsed;
    try { parsed = JSON.parse(text); } catch (e) { return false; }
    var node = fromFilter(parsed);
    if (!node) return null;
    unwrapped = node.type !== "group" || node.not;
    model = unwrapped ? { type: "group", op: "all", not: false, children: [node] } : node;
    return true;
  }

  var loaded = textarea.value.trim() ? load(textarea.value) : (model = { type: "group", op: "all", not: false, children: [] }, true);
  if (!loaded) {
    // Shown as JSON only: the builder stays hidden, the JSON open.
    note.textContent = say("json_only");
    note.hidden = false;
    document.getElementById("segment-json").open = true;
    textarea.addEventListener("input", schedule);
    return;
  }
  root.hidden = false;
  form.querySelectorAll("[data-count-button]").forEach(function (b) { b.hidden = true; });
  draw();
  currentFilter();
  showErrors({});
  textarea.addEventListener("input", function () {
    var ok = load(textarea.value);
    if (ok) {
      note.hidden = true;
      draw();
      currentFilter();
    } else {
      note.textContent = say(ok === null ? "json_only" : "json_invalid");
      note.hidden = false;
    }
    schedule();
  });
  if (!countEl.textContent.trim()) schedule();
})();
