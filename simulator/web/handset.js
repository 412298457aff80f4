// One handset on the page: SMS thread, dialer with keypad, USSD dialog as a phone shows it.
"use strict";

window.Idea24 = window.Idea24 || {};

(() => {
  const TZ = "Europe/Warsaw";
  const timeFormat = new Intl.DateTimeFormat("pl-PL", {
    timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  const clockFormat = new Intl.DateTimeFormat("pl-PL", {
    timeZone: TZ, hour: "2-digit", minute: "2-digit",
  });
  // Receipt states (SMPP "stat:" words) as a subscriber reads them.
  const RECEIPTS = {
    DELIVRD: "doręczono", UNDELIV: "nie doręczono", EXPIRED: "wygasło", REJECTD: "odrzucono",
    DELETED: "usunięto", ACCEPTD: "przyjęto", UNKNOWN: "stan nieznany",
  };
  const CODINGS = { 0: "GSM-7", 1: "IA5 (ASCII)", 3: "Latin-1", 8: "UCS-2" };
  const CONCATENATION = {
    udh: "nagłówek UDH", udh16: "nagłówek UDH (16 bit)", sar: "TLV SAR", payload: "message_payload",
  };
  const KEYS = [
    ["1", ""], ["2", "ABC"], ["3", "DEF"], ["4", "GHI"], ["5", "JKL"], ["6", "MNO"],
    ["7", "PQRS"], ["8", "TUV"], ["9", "WXYZ"], ["*", ""], ["0", "+"], ["#", ""],
  ];

  const isDialString = (text) => /^[*#][\d*#]*#$/.test(text.trim());
  const formatTime = (seconds) => timeFormat.format(new Date(seconds * 1000));

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  class Handset {
    constructor(msisdn, { api, config, onClose, onError }) {
      this.msisdn = msisdn;
      this.api = api;
      this.config = config;
      this.onError = onError;
      const node = document.getElementById("handset-template").content.firstElementChild.cloneNode(true);
      this.node = node;
      node.dataset.msisdn = msisdn;
      node.setAttribute("aria-label", `Telefon ${msisdn}`);
      this.q = (selector) => node.querySelector(selector);
      this.q(".number").textContent = `+${msisdn}`;
      this.thread = this.q(".thread");
      this.text = this.q(".compose textarea");
      this.text.placeholder = `SMS do ${config.shortCode}`;
      this.display = this.q(".display");
      this.ussdBox = this.q(".ussd");
      this.q(".quick").textContent = config.ussdCode;
      this.q(".quick").title = `Wpisz ${config.ussdCode}`;
      this.buildKeypad();
      this.tick();
      this.q(".close").addEventListener("click", () => onClose(this));
      this.q(".tab-sms").addEventListener("click", () => this.show("sms"));
      this.q(".tab-dialer").addEventListener("click", () => this.show("dialer"));
      this.q(".compose").addEventListener("submit", (event) => { event.preventDefault(); this.send(); });
      this.text.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); this.send(); }
      });
      this.display.addEventListener("keydown", (event) => {
        if (event.key === "Enter") { event.preventDefault(); this.call(); }
      });
      this.q(".quick").addEventListener("click", () => { this.display.value = config.ussdCode; this.display.focus(); });
      this.q(".call").addEventListener("click", () => this.call());
      this.q(".backspace").addEventListener("click", () => {
        this.display.value = this.display.value.slice(0, -1);
        this.display.focus();
      });
      this.q(".ussd-box").addEventListener("submit", (event) => {
        event.preventDefault();
        const value = this.q(".ussd-answer").value.trim();
        if (value) this.ussd(value);
      });
      this.q(".ussd-cancel").addEventListener("click", () => this.cancelUssd());
      this.q(".ussd-ok").addEventListener("click", () => this.closeUssd());
      this.ussdBox.addEventListener("keydown", (event) => {
        if (event.key === "Escape") { event.preventDefault(); this.q(".ussd-cancel").hidden ? this.closeUssd() : this.cancelUssd(); }
      });
    }

    buildKeypad() {
      const pad = this.q(".keypad");
      for (const [digit, letters] of KEYS) {
        const key = el("button", "key");
        key.type = "button";
        key.dataset.key = digit;
        key.setAttribute("aria-label", digit);
        key.append(el("span", "digit", digit), el("span", "letters", letters));
        key.addEventListener("click", () => { this.display.value += digit; });
        pad.appendChild(key);
      }
    }

    tick() {
      this.q(".clock").textContent = clockFormat.format(new Date());
    }

    show(view) {
      const sms = view === "sms";
      this.q(".view.sms").hidden = !sms;
      this.q(".view.dialer").hidden = sms;
      this.q(".tab-sms").setAttribute("aria-selected", String(sms));
      this.q(".tab-dialer").setAttribute("aria-selected", String(!sms));
      (sms ? this.text : this.display).focus();
    }

    async request(method, path, body) {
      const response = await fetch(this.api + path, {
        method,
        headers: body ? { "Content-Type": "application/json" } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
      const data = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
      return data;
    }

    async load() {
      const data = await this.request("GET", `/messages?msisdn=${encodeURIComponent(this.msisdn)}`);
      data.messages.forEach((m) => this.render(m));
      return data.messages.reduce((top, m) => Math.max(top, m.id), 0);
    }

    render(message) {
      if (message.kind !== "sms" || message.msisdn !== this.msisdn) return;
      let item = this.thread.querySelector(`[data-id="${message.id}"]`);
      if (!item) {
        item = el("li");
        item.dataset.id = message.id;
        this.thread.appendChild(item);
      }
      item.className = `msg ${message.direction}`;
      item.replaceChildren(el("span", "body", message.text));
      const meta = el("span", "meta");
      meta.append(`${message.direction === "mo" ? "do" : "od"} ${message.peer} · `);
      const time = el("time", "", formatTime(message.at));
      time.dateTime = new Date(message.at * 1000).toISOString();
      meta.append(time);
      if (message.receipt) {
        meta.append(" · ");
        const state = el("abbr", "receipt", RECEIPTS[message.receipt] || message.receipt);
        state.title = `SMPP stat:${message.receipt}`;
        meta.append(state);
      }
      const info = el("details", "info");
      const summary = el("summary", "", "i");
      summary.setAttribute("aria-label", "Części i kodowanie");
      const parts = message.parts === 1 ? "1 część" : `${message.parts} części`;
      const coding = CODINGS[message.data_coding] || `data_coding ${message.data_coding}`;
      const how = message.concatenation ? ` · ${CONCATENATION[message.concatenation] || message.concatenation}` : "";
      info.append(summary, el("span", "parts", `${parts} · ${coding} (data_coding ${message.data_coding})${how}`));
      meta.append(" ", info);
      item.appendChild(meta);
      this.thread.scrollTop = this.thread.scrollHeight;
    }

    async send() {
      const value = this.text.value.trim();
      if (!value) return;
      if (isDialString(value)) { this.text.value = ""; this.ussd(value); return; }
      this.text.value = "";
      const button = this.q(".send");
      button.disabled = true;
      try {
        await this.request("POST", "/mo", { from: this.msisdn, to: this.config.shortCode, text: value });
        this.onError("");
      } catch (error) {
        this.text.value = value;
        this.onError(`${this.msisdn}: ${error.message}`);
      } finally {
        button.disabled = false;
        this.text.focus();
      }
    }

    call() {
      const value = this.display.value.trim();
      if (!value) { this.display.focus(); return; }
      if (!isDialString(value)) {
        this.onError(`${this.msisdn}: ten symulator łączy tylko kody USSD, np. ${this.config.ussdCode}`);
        return;
      }
      this.display.value = "";
      this.ussd(value);
    }

    showUssd(reply, waiting = false) {
      const box = this.ussdBox;
      this.q(".ussd-text").textContent = reply.text || (reply.end ? "Sesja zakończona." : "");
      const answer = this.q(".ussd-answer");
      answer.value = "";
      answer.hidden = reply.end;
      answer.disabled = waiting;
      this.q(".ussd-send").hidden = reply.end;
      this.q(".ussd-send").disabled = waiting;
      this.q(".ussd-cancel").hidden = reply.end;
      this.q(".ussd-ok").hidden = !reply.end;
      box.dataset.state = waiting ? "waiting" : (reply.end ? "end" : "open");
      box.hidden = false;
      // A reply takes the focus only from this handset: typing on another one goes on.
      const active = document.activeElement;
      const here = !active || active === document.body || this.node.contains(active);
      if (!waiting && here) (reply.end ? this.q(".ussd-ok") : answer).focus();
    }

    async ussd(value) {
      this.showUssd({ text: "Uruchamianie kodu USSD…", end: false }, true);
      try {
        this.showUssd(await this.request("POST", "/ussd", { msisdn: this.msisdn, text: value }));
      } catch (error) {
        this.showUssd({ text: `Problem z połączeniem lub nieprawidłowy kod MMI.\n(${error.message})`, end: true });
      }
    }

    async cancelUssd() {
      this.closeUssd();
      try {
        await this.request("DELETE", `/ussd?msisdn=${encodeURIComponent(this.msisdn)}`);
      } catch (error) { /* the session had ended already */ }
    }

    closeUssd() {
      this.ussdBox.hidden = true;
      this.ussdBox.dataset.state = "closed";
      this.display.focus();
    }
  }

  window.Idea24.Handset = Handset;
})();
