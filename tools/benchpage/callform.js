// A form for any CSMS-initiated call, built from its OCPP 1.6 JSON schema.
// Each field is an editor with read() -> value (undefined = leave it out).
"use strict";

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v);
  }
  for (const kid of kids.flat()) {
    if (kid !== null && kid !== undefined) el.append(kid);
  }
  return el;
}

function editorFor(schema, name, required, onChange) {
  const label = name + (required ? " *" : "");
  if (schema.type === "object") {
    const req = schema.required || [];
    const fields = Object.entries(schema.properties || {}).map(
      ([k, s]) => [k, editorFor(s, k, req.includes(k), onChange)]);
    const el = h("fieldset", {}, name ? h("legend", {}, label) : null, fields.map(f => f[1].el));
    return {el, read() {
      const out = {};
      for (const [k, f] of fields) {
        const v = f.read();
        if (v !== undefined) out[k] = v;
      }
      return Object.keys(out).length || required || !name ? out : undefined;
    }};
  }
  if (schema.type === "array") {
    const items = [];
    const list = h("div", {class: "items"});
    const add = () => {
      const f = editorFor(schema.items || {}, name + "[" + items.length + "]", true, onChange);
      items.push(f);
      list.append(f.el);
      onChange();
    };
    const drop = () => {
      const f = items.pop();
      if (f) { f.el.remove(); onChange(); }
    };
    const el = h("fieldset", {class: "array"}, h("legend", {}, label),
      list, h("button", {type: "button", onclick: add}, "+ item"),
      h("button", {type: "button", onclick: drop}, "− item"));
    return {el, read() {
      return items.length || required ? items.map(f => f.read()) : undefined;
    }};
  }
  let input;
  if (schema.enum || schema.type === "boolean") {
    const opts = schema.enum || ["true", "false"];
    input = h("select", {name}, h("option", {value: ""}, "—"),
      opts.map(o => h("option", {value: o}, o)));
  } else {
    const kind = schema.type === "integer" || schema.type === "number" ? "number" : "text";
    input = h("input", {name, type: kind, step: schema.type === "number" ? "any" : null,
      placeholder: schema.format === "date-time" ? "2026-01-01T00:00:00Z" : schema.type});
  }
  input.addEventListener("input", onChange);
  return {el: h("label", {}, label, " ", input), read() {
    const v = input.value.trim();
    if (v === "") return undefined;
    if (schema.type === "boolean") return v === "true";
    if (schema.type === "integer") return parseInt(v, 10);
    if (schema.type === "number") return parseFloat(v);
    return v;
  }};
}

// Wire the form: actions {name: schema}, send(cp, action, payload) -> Promise of a reply.
function setupCallForm(actions, chargers, send) {
  const action = document.getElementById("call-action");
  const cp = document.getElementById("call-cp");
  const fields = document.getElementById("call-fields");
  const payload = document.getElementById("call-payload");
  const answer = document.getElementById("call-answer");
  let editor = null;
  const write = () => { payload.value = JSON.stringify(editor.read(), null, 1); };
  const pick = () => {
    editor = editorFor(actions[action.value], "", true, write);
    fields.replaceChildren(editor.el);
    write();
  };
  action.replaceChildren(...Object.keys(actions).map(a => h("option", {value: a}, a)));
  cp.replaceChildren(...chargers.map(c => h("option", {value: c}, c)));
  action.addEventListener("change", pick);
  action.value = "RemoteStopTransaction";
  pick();
  document.getElementById("call-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    let body;
    try {
      body = JSON.parse(payload.value);
    } catch (e) {
      answer.className = "bad";
      answer.textContent = "The payload is not JSON: " + e.message;
      return;
    }
    answer.className = "";
    answer.textContent = "sending " + action.value + "…";
    const r = await send(cp.value, action.value, body);
    if (!r.ok) {
      answer.className = "bad";
      answer.textContent = "not sent: " + r.error;
    } else if (r.callError) {
      answer.className = "bad";
      answer.textContent = "CALLERROR " + JSON.stringify(r.callError, null, 1);
    } else {
      answer.textContent = action.value + ".conf " + JSON.stringify(r.result, null, 1);
    }
  });
}
