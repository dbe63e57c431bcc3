// The OCPP traffic as a live, filterable table: a CALL and its answer share a
// colour band on hover, the answer shows the round trip, schema problems are red.
"use strict";

const Traffic = {
  rows: [],
  max: 2000,

  add(rows) {
    for (const r of rows) {
      r.tr = this.render(r);
      this.rows.push(r);
    }
    const body = document.querySelector("#traffic tbody");
    while (this.rows.length > this.max) this.rows.shift().tr.remove();
    for (const r of rows) {
      body.prepend(r.tr);  // newest on top
      r.tr.hidden = !this.matches(r);
    }
    this.count();
  },

  render(r) {
    const t = new Date(r.t * 1000);
    const stamp = t.toLocaleTimeString([], {hour12: false}) + "." + String(t.getMilliseconds()).padStart(3, "0");
    const text = typeof r.payload === "string" ? r.payload : JSON.stringify(r.payload);
    const tr = h("tr", {"data-n": r.n, "data-action": r.action || "", "data-type": r.type,
                        "data-dir": r.dir, class: r.errors.length ? "bad" : null,
                        title: r.errors.join("\n") || null},
      h("td", {}, r.n), h("td", {}, stamp), h("td", {}, r.cp),
      h("td", {}, r.dir === "in" ? "→" : "←"), h("td", {}, r.type),
      h("td", {}, r.action || "?"), h("td", {class: "id"}, (r.id || "").slice(0, 8)),
      h("td", {}, r.rtt_ms === undefined ? "" : r.rtt_ms + " ms"),
      h("td", {class: "payload"}, text, r.errors.length ? h("div", {class: "why"}, r.errors.join("; ")) : null));
    tr.addEventListener("mouseenter", () => this.mark(r, true));
    tr.addEventListener("mouseleave", () => this.mark(r, false));
    tr.addEventListener("click", () => tr.classList.toggle("open"));
    r.search = [r.cp, r.type, r.action, r.id, text].join(" ").toLowerCase();
    return tr;
  },

  mark(r, on) {
    // the partner: the answer's CALL, or the CALL's answer
    const partner = r.call !== undefined ? this.rows.find(x => x.n === r.call)
                                         : this.rows.find(x => x.call === r.n);
    r.tr.classList.toggle("pair", on);
    if (partner) partner.tr.classList.toggle("pair", on);
  },

  matches(r) {
    const text = document.getElementById("filter-text").value.toLowerCase();
    const dir = document.getElementById("filter-dir").value;
    const bad = document.getElementById("filter-bad").checked;
    return (!text || r.search.includes(text)) && (!dir || r.dir === dir) && (!bad || r.errors.length);
  },

  refilter() {
    for (const r of this.rows) r.tr.hidden = !this.matches(r);
    this.count();
  },

  count() {
    const shown = this.rows.filter(r => !r.tr.hidden).length;
    document.getElementById("traffic-count").textContent = shown + " of " + this.rows.length + " frames";
  },

  setup() {
    for (const id of ["filter-text", "filter-dir", "filter-bad"]) {
      for (const ev of ["input", "change"]) document.getElementById(id).addEventListener(ev, () => this.refilter());
    }
  },
};
