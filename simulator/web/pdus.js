// The live PDU trace pane: every PDU on the simulator's binds, decoded, hex on demand.
"use strict";

window.Idea24 = window.Idea24 || {};

(() => {
  const ROWS = 500;  // rows kept on the page; the server keeps its own ring
  const timeFormat = new Intl.DateTimeFormat("pl-PL", {
    timeZone: "Europe/Warsaw", hour: "2-digit", minute: "2-digit", second: "2-digit",
    fractionalSecondDigits: 3,
  });
  const KEY_FIELDS = ["source_addr", "destination_addr", "system_id", "message_id", "esm_class", "data_coding"];

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function tlvText(pdu) {
    return Object.entries(pdu.tlvs).map(([name, value]) => {
      const meaning = pdu.meaning[name];
      return meaning ? `${name}=${value} (${meaning})` : `${name}=${value}`;
    });
  }

  function hexDump(hex) {
    const lines = [];
    for (let i = 0; i < hex.length; i += 32) {
      const chunk = hex.slice(i, i + 32);
      const bytes = chunk.match(/../g) || [];
      const ascii = bytes.map((b) => {
        const c = parseInt(b, 16);
        return c >= 32 && c < 127 ? String.fromCharCode(c) : ".";
      }).join("");
      lines.push(`${(i / 2).toString(16).padStart(4, "0")}  ${bytes.join(" ").padEnd(47)}  ${ascii}`);
    }
    return lines.join("\n");
  }

  class PduPane {
    constructor(api) {
      this.api = api;
      this.list = document.getElementById("pdu-list");
      this.number = document.getElementById("pdu-number");
      this.bind = document.getElementById("pdu-bind");
      this.lastId = 0;
      this.binds = new Map();
      this.number.addEventListener("change", () => this.filter());
      this.bind.addEventListener("change", () => this.filter());
      document.getElementById("pdu-clear").addEventListener("click", () => this.list.replaceChildren());
    }

    async start() {
      const response = await fetch(`${this.api}/pdus`);
      const data = await response.json();
      data.binds.forEach((b) => this.addBind(b));
      data.pdus.slice(-ROWS).forEach((p) => this.add(p));
      // after: what arrived between the listing and the stream is sent first
      this.source = new EventSource(`${this.api}/pdus/events?after=${this.lastId}`);
      this.source.addEventListener("pdu", (event) => this.add(JSON.parse(event.data)));
    }

    setNumbers(numbers) {
      const chosen = this.number.value;
      const options = [el("option", "", "wszystkie")];
      options[0].value = "";
      for (const n of numbers) {
        const option = el("option", "", n);
        option.value = n;
        options.push(option);
      }
      this.number.replaceChildren(...options);
      this.number.value = numbers.includes(chosen) ? chosen : "";
      this.filter();
    }

    addBind(bind) {
      const label = `#${bind.id} ${bind.system_id || "?"} ${bind.mode || ""} ${bind.peer}`.replace(/\s+/g, " ");
      const known = this.binds.get(bind.id);
      if (known) { known.textContent = label; return; }
      const option = el("option", "", label);
      option.value = String(bind.id);
      this.binds.set(bind.id, option);
      this.bind.appendChild(option);
    }

    add(pdu) {
      if (pdu.id <= this.lastId) return;
      this.lastId = pdu.id;
      this.addBind(pdu.bind);
      const row = el("li", `pdu ${pdu.direction}${pdu.status ? " failed" : ""}`);
      row.dataset.id = pdu.id;
      row.dataset.msisdn = pdu.msisdn || "";
      row.dataset.bind = String(pdu.bind.id);
      row.dataset.command = pdu.command;
      if ("ussd_service_op" in pdu.tlvs) row.dataset.ussdOp = String(pdu.tlvs.ussd_service_op);
      const details = el("details");
      const summary = el("summary");
      summary.append(
        el("time", "at", timeFormat.format(new Date(pdu.at * 1000))),
        el("span", "dir", pdu.direction === "in" ? "→ SMSC" : "← SMSC"),
        el("span", "command", pdu.command),
        el("span", "seq", `#${pdu.sequence}`),
      );
      if (pdu.response || pdu.status) summary.append(el("span", "status", pdu.status_name));
      if (pdu.msisdn) summary.append(el("span", "number", pdu.msisdn));
      for (const text of tlvText(pdu)) summary.append(el("span", "tlv", text));
      if (pdu.text) summary.append(el("span", "text", `“${pdu.text.replace(/\n/g, " ⏎ ")}”`));
      if (pdu.error) summary.append(el("span", "status", pdu.error));
      summary.title = `bind #${pdu.bind.id} ${pdu.bind.system_id || "?"} ${pdu.bind.peer}`;
      details.append(summary);
      details.addEventListener("toggle", () => {
        if (!details.open || details.querySelector(".fields")) return;
        const table = el("dl", "fields");
        const entries = [
          ["command_id", `0x${pdu.command_id.toString(16).padStart(8, "0")}`],
          ["command_status", `${pdu.status} ${pdu.status_name}`],
          ["sequence_number", pdu.sequence],
          ["bind", summary.title],
          ...KEY_FIELDS.filter((k) => k in pdu.fields).map((k) => [k, pdu.fields[k]]),
          ...Object.entries(pdu.fields).filter(([k]) => !KEY_FIELDS.includes(k)),
          ...tlvText(pdu).map((t) => ["TLV", t]),
          ...Object.entries(pdu.meaning).filter(([k]) => !(k in pdu.tlvs)).map(([k, v]) => [k, v]),
        ];
        for (const [name, value] of entries) table.append(el("dt", "", name), el("dd", "", String(value)));
        details.append(table, el("pre", "hex", hexDump(pdu.hex)));
      });
      row.appendChild(details);
      row.hidden = !this.matches(row);
      const stick = this.list.scrollTop + this.list.clientHeight >= this.list.scrollHeight - 8;
      this.list.appendChild(row);
      while (this.list.childElementCount > ROWS) this.list.firstElementChild.remove();
      if (stick) this.list.scrollTop = this.list.scrollHeight;
    }

    matches(row) {
      const number = this.number.value, bind = this.bind.value;
      return (!number || row.dataset.msisdn === number) && (!bind || row.dataset.bind === bind);
    }

    filter() {
      for (const row of this.list.children) row.hidden = !this.matches(row);
    }
  }

  window.Idea24.PduPane = PduPane;
})();
