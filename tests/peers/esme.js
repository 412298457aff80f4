// An ESME on the npm `smpp` package, over TLS: an SMPP client that shares no code with idea24.
// Usage: node esme.js PORT CA_FILE [CERT_FILE KEY_FILE]. Connects to ssmpp://127.0.0.1:PORT
// verifying the server against CA_FILE (host name included), binds as a transceiver
// (idea24/idea24), submits one SMS asking for a receipt, waits for the receipt, unbinds.
// Prints one JSON event per line; exits 0 when all of that happened, 1 otherwise.
'use strict';
const fs = require('fs');
const smpp = require('smpp');

const [port, caFile, certFile, keyFile] = process.argv.slice(2);
const options = { url: `ssmpp://127.0.0.1:${port}`, ca: fs.readFileSync(caFile) };
if (certFile) {
  options.cert = fs.readFileSync(certFile);
  options.key = fs.readFileSync(keyFile);
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const timer = setTimeout(() => {
  emit({ event: 'timeout' });
  process.exit(1);
}, 10000);
let done = false;

const session = smpp.connect(options, () => {
  emit({ event: 'tls', protocol: session.socket.getProtocol(), authorized: session.socket.authorized });
  session.bind_transceiver({ system_id: 'idea24', password: 'idea24' }, (pdu) => {
    emit({ event: 'bind_resp', command_status: pdu.command_status });
    if (pdu.command_status !== 0) process.exit(1);
    session.submit_sm(
      {
        source_addr: '2424',
        destination_addr: '48600000001',
        short_message: 'Zażółć over TLS',
        registered_delivery: 1,
      },
      (resp) => emit({ event: 'submit_sm_resp', command_status: resp.command_status, message_id: resp.message_id }),
    );
  });
});
session.on('deliver_sm', (pdu) => {
  session.send(pdu.response());
  const receipt = (pdu.esm_class & 0x04) !== 0;
  emit({ event: 'deliver_sm', receipt: receipt, receipted_message_id: pdu.receipted_message_id || null });
  if (receipt) {
    done = true;
    session.unbind(() => {
      emit({ event: 'unbind_resp' });
      clearTimeout(timer);
      session.close();
      process.exit(0);
    });
  }
});
session.on('error', (err) => {
  emit({ event: 'error', code: err.code || null, message: String(err.message || err) });
  process.exit(1);
});
session.on('close', () => {
  if (!done) {
    emit({ event: 'close' });
    process.exit(1);
  }
});
