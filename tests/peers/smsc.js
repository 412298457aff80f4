// A small SMSC on the npm `smpp` package: an SMPP peer that shares no code with idea24.
// Usage: node smsc.js PORT SYSTEM_ID PASSWORD. Prints one JSON event per line on stdout and
// takes one JSON command per line on stdin ({"op": "deliver", "id": 1, "pdu": {...}},
// {"op": "enquire_link", "id": 2}, {"op": "receipt_first", "value": true}).
'use strict';
const smpp = require('smpp');
const readline = require('readline');

const port = parseInt(process.argv[2] || '0', 10);
const SYSTEM_ID = process.argv[3] || 'idea24';
const PASSWORD = process.argv[4] || 'secret';
let current = null;
let nextId = 0x1a2b;
let receiptFirst = false;

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function describe(pdu) {
  const sm = pdu.short_message || {};
  let text = null;
  if (sm.message !== undefined) {
    text = Buffer.isBuffer(sm.message) ? sm.message.toString('hex') : sm.message;
  }
  return {
    service_type: pdu.service_type,
    source_addr: pdu.source_addr,
    destination_addr: pdu.destination_addr,
    esm_class: pdu.esm_class,
    data_coding: pdu.data_coding,
    registered_delivery: pdu.registered_delivery,
    text: text,
    udh: sm.udh ? sm.udh.map((b) => Buffer.from(b).toString('hex')) : null,
    ussd_service_op: pdu.ussd_service_op === undefined ? null : pdu.ussd_service_op,
    its_session_info: pdu.its_session_info ? pdu.its_session_info.toString('hex') : null,
    sar_msg_ref_num: pdu.sar_msg_ref_num === undefined ? null : pdu.sar_msg_ref_num,
  };
}

function fromJson(spec) {
  const p = Object.assign({}, spec);
  for (const key of Object.keys(p)) {
    if (key.endsWith('_hex')) {
      p[key.slice(0, -4)] = Buffer.from(p[key], 'hex');
      delete p[key];
    }
  }
  return p;
}

const server = smpp.createServer((session) => {
  session.on('bind_transceiver', (pdu) => {
    if (pdu.system_id !== SYSTEM_ID || pdu.password !== PASSWORD) {
      session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }));
      session.close();
      emit({ event: 'bind_refused', system_id: pdu.system_id });
      return;
    }
    session.send(pdu.response({ system_id: 'node-smpp' }));
    current = session;
    emit({ event: 'bound', system_type: pdu.system_type, address_range: pdu.address_range });
  });
  session.on('submit_sm', (pdu) => {
    const id = (nextId++).toString(16).toUpperCase(); // hex in the response...
    const info = describe(pdu);
    info.message_id = id;
    emit(Object.assign({ event: 'submit_sm' }, info));
    const receipt = () => {
      // ...decimal in the receipt, as some SMSCs do.
      const text = `id:${parseInt(id, 16)} sub:001 dlvrd:001 submit date:2511251200 ` +
        'done date:2511251201 stat:DELIVRD err:000 text:';
      session.deliver_sm({
        source_addr: pdu.destination_addr,
        destination_addr: pdu.source_addr,
        esm_class: 4,
        data_coding: 0,
        short_message: Buffer.from(text, 'ascii'),
      }, (resp) => emit({ event: 'receipt_resp', message_id: id, command_status: resp.command_status }));
    };
    const wantsReceipt = (pdu.registered_delivery & 3) !== 0;
    if (wantsReceipt && receiptFirst) receipt();
    session.send(pdu.response({ message_id: id }));
    if (wantsReceipt && !receiptFirst) receipt();
  });
  session.on('enquire_link', (pdu) => {
    emit({ event: 'enquire_link' });
    session.send(pdu.response());
  });
  session.on('unbind', (pdu) => {
    emit({ event: 'unbind' });
    session.send(pdu.response());
    session.close();
  });
  session.on('error', (err) => emit({ event: 'error', message: String(err) }));
});

server.listen(port, '127.0.0.1', () => emit({ event: 'listening', port: server.address().port }));

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line);
  if (cmd.op === 'receipt_first') {
    receiptFirst = Boolean(cmd.value);
    emit({ event: 'ok', id: cmd.id });
    return;
  }
  if (!current) {
    emit({ event: 'error', id: cmd.id, message: 'no ESME bound' });
    return;
  }
  if (cmd.op === 'deliver') {
    current.deliver_sm(fromJson(cmd.pdu), (resp) =>
      emit({ event: 'deliver_sm_resp', id: cmd.id, command_status: resp.command_status }));
  } else if (cmd.op === 'enquire_link') {
    current.enquire_link({}, (resp) =>
      emit({ event: 'enquire_link_resp', id: cmd.id, command_status: resp.command_status }));
  }
});
process.stdin.on('end', () => process.exit(0));
