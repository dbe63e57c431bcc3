// The bench page: one WebSocket to the CSMS process (tools/benchpage.py) that
// brings the chargers' state, the traffic and the events, and takes requests.
"use strict";

const Page = {ws: null, nextReq: 1, pending: new Map(), hello: null, chargers: new Map()};

function request(msg) {
  // -> Promise of the server's reply {ok, result | error | callError}
  return new Promise(resolve => {
    if (!Page.ws || Page.ws.readyState !== WebSocket.OPEN) {
      resolve({ok: false, error: "not connected to the CSMS process"});
      return;
    }
    msg.req = Page.nextReq++;
    Page.pending.set(msg.req, resolve);
    Page.ws.send(JSON.stringify(msg));
  });
}

async function bench(cp, req) {
  const r = await request({op: "bench", cp, request: req});
  say(cp, r.ok ? "" : req.op + ": " + r.error);
  return r;
}

async function power(cp, on) {
  const r = await request({op: "power", cp, on});
  say(cp, r.ok ? "" : "power: " + r.error);
}

function say(cp, text) {
  const c = Page.chargers.get(cp);
  if (c) c.el.querySelector(".msg").textContent = text;
}

// ---- building the sections

function fact(name, title) {
  return h("div", {}, h("dt", {}, title || name), h("dd", {"data-field": name}, "—"));
}

function btn(text, fn, attrs) {
  return h("button", Object.assign({type: "button", onclick: fn}, attrs || {}), text);
}

function chargerSection(cp) {
  const tag = h("input", {class: "idtag", list: "tags-" + cp, value: "CAFE01", size: 12, maxlength: 20});
  const swipe = () => bench(cp, {op: "swipe", idTag: tag.value.trim()});
  const el = h("section", {class: "charger", "data-cp": cp},
    h("h2", {}, "Charger " + cp + " ", h("span", {class: "led", title: "the LED"})),
    h("dl", {class: "facts"},
      fact("power"), fact("connection"), fact("registration"), fact("status0", "connector 0"),
      fact("boot"), fact("heap", "heap in use"), fact("queue", "queue depth")),
    h("div", {class: "controls"},
      h("span", {class: "group"}, btn("power cut", () => power(cp, false), {"data-op": "power-off"}),
        btn("power on", () => power(cp, true), {"data-op": "power-on"})),
      h("span", {class: "group"},
        btn("network down", () => bench(cp, {op: "network", up: false}), {"data-op": "network-down"}),
        btn("network up", () => bench(cp, {op: "network", up: true}), {"data-op": "network-up"}),
        btn("DNS down", () => bench(cp, {op: "dns", up: false}), {"data-op": "dns-down"}),
        btn("DNS up", () => bench(cp, {op: "dns", up: true}), {"data-op": "dns-up"})),
      h("span", {class: "group"},
        btn("emergency stop", () => bench(cp, {op: "emergency_stop", on: true}), {"data-op": "estop-on"}),
        btn("release", () => bench(cp, {op: "emergency_stop", on: false}), {"data-op": "estop-off"})),
      h("span", {class: "group"}, "card ", tag, h("datalist", {id: "tags-" + cp}),
        btn("swipe", swipe, {"data-op": "swipe"}), h("span", {class: "recent"}))),
    h("p", {class: "msg"}),
    h("div", {class: "connectors"}));
  return {el, cp, tag, connectors: new Map(), series: {}};
}

function connectorCard(c, id, faults, errorCodes) {
  const cp = c.cp;
  const num = (v, step) => h("input", {type: "number", value: v, min: 0, step: step || 1, size: 4});
  const amps = [num(16), num(16), num(16)];
  const volts = [num(230), num(230), num(230)];
  const pf = num(1, 0.01);
  const code = h("select", {class: "errorcode"}, errorCodes.filter(e => e !== "NoError").map(e => h("option", {}, e)));
  const info = h("input", {placeholder: "info", size: 10});
  const fault = h("select", {class: "fault"}, faults.map(f => h("option", {}, f)));
  const b = (text, req, op) => btn(text, () => bench(cp, Object.assign({connector: id}, req)), {"data-op": op});
  const el = h("div", {class: "connector", "data-connector": id},
    h("h3", {}, "Connector " + id + " ", h("span", {class: "status", "data-field": "status"}, "—")),
    h("dl", {class: "facts"},
      fact("errorCode"), fact("pilot", "pilot / duty"), fact("offered", "offered current"),
      fact("relay"), fact("lock"), fact("amps", "current"), fact("power_w", "power"),
      fact("transaction"), fact("idTag"), fact("meterStart", "meter start"), fact("energy", "energy so far")),
    h("canvas", {class: "plot", width: 640, height: 200}),
    h("div", {class: "controls"},
      h("span", {class: "group"}, b("plug in", {op: "plug_in"}, "plug_in"), b("plug out", {op: "plug_out"}, "plug_out")),
      h("span", {class: "group"}, "EV ", ["A", "B", "C", "D", "E", "F"].map(s => b(s, {op: "ev_state", state: s}, "ev-" + s))),
      h("span", {class: "group"}, "load A ", amps, " V ", volts, " pf ", pf,
        btn("set load", () => bench(cp, {op: "load", connector: id, amps: amps.map(x => +x.value),
                                         volts: volts.map(x => +x.value), pf: +pf.value}), {"data-op": "load"})),
      h("span", {class: "group"}, "error ", code, info,
        btn("raise", () => bench(cp, {op: "raise_error", connector: id, code: code.value, info: info.value || undefined}), {"data-op": "raise_error"}),
        b("clear", {op: "clear_error"}, "clear_error")),
      h("span", {class: "group"}, "defect ", fault,
        btn("inject", () => bench(cp, {op: "inject", connector: id, fault: fault.value, on: true}), {"data-op": "inject"}),
        btn("repair", () => bench(cp, {op: "inject", connector: id, fault: fault.value, on: false}), {"data-op": "repair"}))));
  return {el, plot: el.querySelector("canvas"), points: []};
}

// ---- showing the state

function set(root, field, text, cls) {
  const el = root.querySelector('[data-field="' + field + '"]');
  el.textContent = text;
  if (cls !== undefined) el.className = cls;
}

const yesNo = (v, yes, no) => v === undefined || v === null ? "n/a" : v ? yes : no;

function showCharger(msg) {
  const c = Page.chargers.get(msg.cp);
  if (!c) return;
  const st = msg.state;
  const root = c.el;
  root.classList.toggle("off", !msg.powered || !st);
  set(root, "power", !msg.powered ? "off (power cut)" : st ? "on" : "on, not answering (booting?)",
      msg.powered && st ? "ok" : "bad");
  if (Page.hello.power) {
    root.querySelector('[data-op="power-off"]').disabled = !msg.powered;
    root.querySelector('[data-op="power-on"]').disabled = msg.powered;
  }
  showTags(c, msg.idTags || []);
  if (!st) {
    for (const f of ["connection", "registration", "status0", "heap", "queue"]) set(root, f, "—");
    root.querySelector(".led").style.background = "#333";
    return;
  }
  set(root, "connection", st.connection + (msg.online ? "" : " (CSMS: not connected)"),
      st.connection === "online" ? "ok" : "bad");
  set(root, "registration", st.registration || "none yet", st.registration === "Accepted" ? "ok" : "bad");
  set(root, "status0", st.status0);
  set(root, "boot", "#" + st.boot);
  const heap = st.heap || {};
  set(root, "heap", heap.alloc === undefined ? "n/a" :
      (heap.alloc / 1024).toFixed(0) + " of " + ((heap.alloc + heap.free) / 1024).toFixed(0) + " KiB");
  set(root, "queue", st.queue_depth === undefined || st.queue_depth === null ? "n/a" : String(st.queue_depth));
  const rgb = st.led_rgb || [0, 0, 0];
  const led = root.querySelector(".led");
  led.style.background = "rgb(" + rgb.join(",") + ")";
  led.title = "LED " + st.led + " rgb(" + rgb.join(",") + ")";
  for (const con of st.connectors || []) showConnector(c, con, msg);
}

function showConnector(c, con, msg) {
  let card = c.connectors.get(con.id);
  if (!card) {
    card = connectorCard(c, con.id, Page.hello.faults, Page.hello.errorCodes);
    c.connectors.set(con.id, card);
    c.el.querySelector(".connectors").append(card.el);
  }
  const root = card.el;
  set(root, "status", con.status, "status s-" + con.status);
  set(root, "errorCode", con.errorCode, con.errorCode === "NoError" ? "" : "bad");
  set(root, "pilot", con.pilot + " / " + con.duty + " %");
  set(root, "offered", con.offered_amps + " A");
  set(root, "relay", yesNo(con.relay, "closed", "open"));
  set(root, "lock", yesNo(con.locked, "locked", "unlocked"));
  set(root, "amps", (con.amps || []).map(a => a.toFixed(1)).join(" / ") + " A");
  set(root, "power_w", con.power_w === undefined || con.power_w === null ? "n/a" : (con.power_w / 1000).toFixed(2) + " kW");
  const tx = con.transaction;
  set(root, "transaction", tx ? String(tx.id) : "none");
  set(root, "idTag", tx ? tx.idTag : "—");
  set(root, "meterStart", tx ? tx.meterStart + " Wh" : "—");
  set(root, "energy", tx ? (con.energy_wh - tx.meterStart).toFixed(1) + " Wh" : "—");
  if (msg.series) card.points = msg.series[con.id] || [];
  const p = msg.points && msg.points[con.id];
  if (p) {
    if (card.session !== tx.id) card.points = [];  // a new session, a new plot
    card.points.push(p);
  }
  if (tx) card.session = tx.id;
  drawPlot(card.plot, card.points);
}

function showTags(c, tags) {
  if (c.tags === tags.join(" ")) return;  // unchanged: keep the buttons under the mouse
  c.tags = tags.join(" ");
  const list = c.el.querySelector("datalist");
  list.replaceChildren(...tags.map(t => h("option", {value: t})));
  c.el.querySelector(".recent").replaceChildren(
    ...tags.slice(0, 5).map(t => btn(t, () => { c.tag.value = t; }, {class: "tag"})));
}

function showEvent(ev) {
  const t = new Date(ev.t * 1000).toLocaleTimeString([], {hour12: false});
  const li = h("li", {class: ev.level}, t + " " + ev.cp + " " + ev.text);
  const list = document.getElementById("events");
  list.prepend(li);
  while (list.children.length > 100) list.lastChild.remove();
}

// ---- the WebSocket, reconnecting when the CSMS process restarts

function onHello(msg) {
  const first = Page.hello === null;
  Page.hello = msg;
  const box = document.getElementById("chargers");
  box.replaceChildren();
  Page.chargers.clear();
  for (const st of msg.chargers) {
    const c = chargerSection(st.cp);
    Page.chargers.set(st.cp, c);
    box.append(c.el);
    if (!msg.power) c.el.querySelectorAll('[data-op^="power"]').forEach(b => { b.disabled = true; });
    showCharger(st);
  }
  document.getElementById("events").replaceChildren();
  msg.events.forEach(showEvent);
  document.querySelector("#traffic tbody").replaceChildren();
  Traffic.rows = [];
  Traffic.add(msg.traffic);
  if (first) {
    Traffic.setup();
    setupCallForm(msg.actions, msg.chargers.map(c => c.cp),
      (cp, action, payload) => request({op: "call", cp, action, payload}));
  }
}

function connect() {
  const ws = new WebSocket("ws://" + location.host + "/ws");
  const status = document.getElementById("ws-status");
  ws.onopen = () => { status.textContent = "live"; status.className = "badge ok"; };
  ws.onclose = () => {
    status.textContent = "CSMS process gone: reconnecting…";
    status.className = "badge bad";
    for (const resolve of Page.pending.values()) resolve({ok: false, error: "connection lost"});
    Page.pending.clear();
    setTimeout(connect, 1000);
  };
  ws.onmessage = ev => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "hello") onHello(msg);
    else if (msg.type === "state") showCharger(msg);
    else if (msg.type === "traffic") Traffic.add(msg.rows);
    else if (msg.type === "event") showEvent(msg.event);
    else if (msg.type === "reply") {
      const resolve = Page.pending.get(msg.req);
      Page.pending.delete(msg.req);
      if (resolve) resolve(msg);
    }
  };
  Page.ws = ws;
}

connect();
