// The page: handsets side by side, one event stream for all of them, the PDU pane,
// recording a conversation as a script and replaying one.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("config").textContent);
  const { Handset, PduPane } = window.Idea24;
  const $ = (id) => document.getElementById(id);
  const STORED = "idea24.handsets";
  const handsets = new Map();
  const pane = new PduPane(config.api);
  let lastId = 0;          // the newest message id seen: where a recording starts
  let recordingFrom = null;
  let script = null;

  function showError(message) {
    $("error").textContent = message || "";
    $("error").hidden = !message;
  }

  function save() {
    localStorage.setItem(STORED, JSON.stringify([...handsets.keys()]));
    pane.setNumbers([...handsets.keys()]);
    for (const chip of $("demo").children) {
      chip.setAttribute("aria-pressed", String(handsets.has(chip.dataset.msisdn)));
    }
  }

  function normalise(value) {
    const digits = value.replace(/[\s+\-()]/g, "");
    return /^\d{8,15}$/.test(digits) ? digits : null;
  }

  async function add(value, focus = true) {
    const msisdn = normalise(value);
    if (!msisdn) { showError(`„${value}” to nie numer telefonu (np. 48600000001).`); return null; }
    let handset = handsets.get(msisdn);
    if (!handset) {
      handset = new Handset(msisdn, { api: config.api, config, onClose: remove, onError: showError });
      handsets.set(msisdn, handset);
      $("handsets").appendChild(handset.node);
      save();
      try {
        lastId = Math.max(lastId, await handset.load());
      } catch (error) {
        showError(error.message);
      }
    }
    if (focus) handset.text.focus();
    return handset;
  }

  function remove(handset) {
    handsets.delete(handset.msisdn);
    handset.node.remove();
    save();
  }

  function connect() {
    const source = new EventSource(`${config.api}/events`);
    source.addEventListener("open", () => { $("status").textContent = "online"; $("status").className = "status"; });
    source.addEventListener("error", () => { $("status").textContent = "offline"; $("status").className = "status off"; });
    source.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      lastId = Math.max(lastId, message.id);
      const handset = handsets.get(message.msisdn);
      if (handset) handset.render(message);
    });
  }

  // -- record and replay ----------------------------------------------------------------------

  function showScript(data, result) {
    script = data;
    const json = JSON.stringify(data, null, 2);
    $("script-json").textContent = json;
    const link = $("script-download");
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([json + "\n"], { type: "application/json" }));
    $("script-title").textContent = `Skrypt: ${data.name}`;
    const list = $("script-result");
    list.replaceChildren();
    list.dataset.state = result ? (result.ok ? "pass" : "fail") : "";
    if (result) {
      for (const step of result.steps) {
        const item = document.createElement("li");
        item.className = step.ok ? "ok" : "fail";
        item.textContent = `${step.ok ? "✓" : "✗"} ${step.index}. ${step.step}`;
        if (!step.ok) item.textContent += `\n   ${step.problem}\n   + ${step.got ?? "(nic)"}`;
        list.appendChild(item);
      }
      const total = document.createElement("li");
      total.className = result.ok ? "ok total" : "fail total";
      total.textContent = result.ok ? `PASS: ${result.total} kroków` : `FAIL (${result.steps.length}/${result.total})`;
      list.appendChild(total);
    }
    if (!$("script").open) $("script").showModal();
  }

  async function toggleRecording() {
    const button = $("record");
    if (recordingFrom === null) {
      recordingFrom = lastId;
      button.textContent = "■ Zapisz skrypt";
      button.setAttribute("aria-pressed", "true");
      return;
    }
    const numbers = [...handsets.keys()].join(",");
    const from = recordingFrom;
    recordingFrom = null;
    button.textContent = "● Nagrywaj";
    button.setAttribute("aria-pressed", "false");
    const response = await fetch(`${config.api}/script?msisdn=${numbers}&after=${from}&name=nagranie`);
    const data = await response.json();
    if (!response.ok) { showError(data.error || `HTTP ${response.status}`); return; }
    showError("");
    showScript(data);
  }

  async function replay(data) {
    const button = $("script-replay");
    button.disabled = true;
    try {
      for (const n of new Set([data.msisdn, ...data.steps.map((s) => s.msisdn).filter(Boolean)])) {
        await add(String(n), false);
      }
      const response = await fetch(`${config.api}/replay`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data),
      });
      const result = await response.json();
      if (!response.ok) { showError(result.error || `HTTP ${response.status}`); return; }
      showScript(data, result);
    } finally {
      button.disabled = false;
    }
  }

  $("record").addEventListener("click", toggleRecording);
  $("script-replay").addEventListener("click", () => { if (script) replay(script); });
  $("replay-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    event.target.value = "";
    if (!file) return;
    try {
      const data = JSON.parse(await file.text());
      showScript(data);
      await replay(data);
    } catch (error) {
      showError(`${file.name}: ${error.message}`);
    }
  });

  // -- the page ----------------------------------------------------------------------------

  $("add").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("add-number");
    add(input.value).then((handset) => { if (handset) input.value = ""; });
  });
  for (const n of config.numbers) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "chip";
    chip.dataset.msisdn = n;
    chip.textContent = n;
    chip.title = `Dodaj telefon ${n}`;
    chip.addEventListener("click", () => add(n));
    $("demo").appendChild(chip);
  }
  $("pdus-toggle").addEventListener("click", () => {
    const open = $("pdus").hidden;
    $("pdus").hidden = !open;
    $("pdus-toggle").setAttribute("aria-expanded", String(open));
  });
  setInterval(() => handsets.forEach((h) => h.tick()), 10_000);

  if (window.matchMedia("(max-width: 720px)").matches) $("pdus-toggle").click();  // phone: pane folded
  connect();
  pane.start().catch((error) => showError(`PDU: ${error.message}`));
  let initial = [];
  try { initial = JSON.parse(localStorage.getItem(STORED) || "[]"); } catch (error) { initial = []; }
  if (!initial.length) initial = [config.numbers[0]];
  initial.forEach((n) => add(n, false));
})();
