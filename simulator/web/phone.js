// The web handset: SMS thread over the simulator's JSON API, live replies over SSE, USSD dialog.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("config").textContent);
  const $ = (id) => document.getElementById(id);
  const thread = $("thread"), text = $("text"), msisdnInput = $("msisdn"), status = $("status");
  const dialog = $("ussd"), ussdText = $("ussd-text"), ussdAnswer = $("ussd-answer");
  const locale = document.documentElement.lang || undefined;  // the page's, not the browser's
  let source = null;
  let msisdn = "";

  for (const n of config.numbers) {
    const option = document.createElement("option");
    option.value = n;
    $("numbers").appendChild(option);
  }
  text.placeholder = `SMS do ${config.shortCode} lub kod USSD, np. ${config.ussdCode}`;
  $("dial").textContent = config.ussdCode;

  function showError(message) {
    const box = $("error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  async function api(method, path, body) {
    const response = await fetch(config.api + path, {
      method,
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    return data;
  }

  function render(message) {
    if (message.kind !== "sms") return;
    let item = thread.querySelector(`[data-id="${message.id}"]`);
    if (!item) {
      item = document.createElement("li");
      item.dataset.id = message.id;
      thread.appendChild(item);
    }
    item.className = `msg ${message.direction}`;
    item.textContent = message.text;
    const meta = document.createElement("span");
    meta.className = "meta";
    const time = new Date(message.at * 1000).toLocaleTimeString(locale);
    const parts = message.parts > 1 ? ` · ${message.parts} części` : "";
    const receipt = message.receipt ? ` · ${message.receipt}` : "";
    meta.textContent = `${message.direction === "mo" ? "do" : "od"} ${message.peer} · ${time}${parts}${receipt}`;
    item.appendChild(meta);
    thread.scrollTop = thread.scrollHeight;
  }

  async function useNumber(value) {
    value = value.replace(/[\s+-]/g, "");
    if (!/^\d{8,15}$/.test(value) || value === msisdn) return;
    msisdn = value;
    localStorage.setItem("idea24.msisdn", msisdn);
    thread.replaceChildren();
    if (source) source.close();
    source = new EventSource(`${config.api}/events?msisdn=${encodeURIComponent(msisdn)}`);
    source.addEventListener("open", () => { status.textContent = "online"; status.className = "status"; });
    source.addEventListener("error", () => { status.textContent = "offline"; status.className = "status off"; });
    source.addEventListener("message", (event) => render(JSON.parse(event.data)));
    try {
      const data = await api("GET", `/messages?msisdn=${encodeURIComponent(msisdn)}`);
      data.messages.forEach(render);
    } catch (error) {
      showError(error.message);
    }
  }

  function showUssd(reply) {
    ussdText.textContent = reply.text || (reply.end ? "Sesja zakończona." : "");
    ussdAnswer.value = "";
    ussdAnswer.hidden = reply.end;
    $("ussd-send").hidden = reply.end;
    $("ussd-cancel").hidden = reply.end;
    $("ussd-ok").hidden = !reply.end;
    dialog.dataset.state = reply.end ? "end" : "open";
    if (!dialog.open) dialog.showModal();
    (reply.end ? $("ussd-ok") : ussdAnswer).focus();
  }

  async function ussd(value) {
    showUssd({ text: "Proszę czekać…", end: false });
    ussdAnswer.disabled = true;
    $("ussd-send").disabled = true;
    try {
      showUssd(await api("POST", "/ussd", { msisdn, text: value }));
    } catch (error) {
      showUssd({ text: `Błąd USSD: ${error.message}`, end: true });
    } finally {
      ussdAnswer.disabled = false;
      $("ussd-send").disabled = false;
      if (dialog.open && dialog.dataset.state === "open") ussdAnswer.focus();
    }
  }

  async function send(event) {
    event.preventDefault();
    showError("");
    const value = text.value.trim();
    if (!value) return;
    if (!msisdn) { showError("Wybierz numer telefonu."); return; }
    text.value = "";
    if (/^[*#][\d*#]*#$/.test(value)) { await ussd(value); return; }
    $("send").disabled = true;
    try {
      await api("POST", "/mo", { from: msisdn, to: config.shortCode, text: value });
    } catch (error) {
      text.value = value;
      showError(error.message);
    } finally {
      $("send").disabled = false;
      text.focus();
    }
  }

  $("compose").addEventListener("submit", send);
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) send(event);
  });
  $("dial").addEventListener("click", () => {
    if (!msisdn) { showError("Wybierz numer telefonu."); return; }
    ussd(config.ussdCode);
  });
  $("ussd-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = ussdAnswer.value.trim();
    if (value) ussd(value);
  });
  $("ussd-cancel").addEventListener("click", async () => {
    dialog.close();
    try { await api("DELETE", `/ussd?msisdn=${encodeURIComponent(msisdn)}`); } catch (e) { /* ended already */ }
  });
  $("ussd-ok").addEventListener("click", () => dialog.close());
  dialog.addEventListener("cancel", () => $("ussd-cancel").click());
  msisdnInput.addEventListener("change", () => useNumber(msisdnInput.value));
  msisdnInput.addEventListener("input", () => {
    if (config.numbers.includes(msisdnInput.value)) useNumber(msisdnInput.value);
  });

  const initial = localStorage.getItem("idea24.msisdn") || config.numbers[0];
  msisdnInput.value = initial;
  useNumber(initial);
})();
