// Drives a real WebRTC SIP stack (JsSIP or SIP.js) for test/interop.
//
//   node client.js jssip|sipjs   (settings as JSON in the INTEROP_CLIENT variable:
//                                 {"server":"wss://127.0.0.1:8443","domain":"jambonz.org",
//                                  "user":"u","password":"p","expires":60})
//
// Reads commands from stdin, one a line: register, refresh, unregister, quit. Writes one JSON
// line per finished step on stdout: {"step":"register","ok":true,"status":200,
// "algorithm":"MD5"} or {"step":"register","ok":false,"cause":"..."}; "algorithm" is the one
// the stack put in its last Authorization header (empty when it sent none). The stacks' own
// logs go to stderr. A refresh is the stack's own re-REGISTER (what its refresh timer calls),
// sent at once instead of after a wait, so the suite stays fast.
'use strict';

const readline = require('readline');
const WS = require('ws');

// stdout carries only the JSON results: JsSIP logs its debug lines with console.info.
const util = require('util');
console.info = console.log = (...a) => process.stderr.write(util.format(...a) + '\n');

const settings = JSON.parse(process.env.INTEROP_CLIENT || '{}');
const kind = process.argv[2];

// Both stacks use the browser WebSocket API; `ws` provides it on every Node version (Node 18
// has none, Node 20 only behind a flag). NODE_EXTRA_CA_CERTS makes it trust the test CA.
let lastAlgorithm = '';
// Final answers to REGISTER as they arrive: JsSIP emits no event for a successful refresh.
const registerAnswers = new (require('events'))();
class TracingWebSocket extends WS {
  constructor(...args) {
    super(...args);
    this.addEventListener('message', (ev) => {
      const text = typeof ev.data === 'string' ? ev.data : Buffer.from(ev.data).toString();
      process.stderr.write(`--- received ---\n${text}\n`);
      const m = /^SIP\/2\.0 (\d{3})[^]*?^CSeq:\s*\d+\s+REGISTER/im.exec(text);
      if (m && Number(m[1]) >= 200) registerAnswers.emit('answer', Number(m[1]));
    });
  }
  send(data, ...rest) {
    const text = typeof data === 'string' ? data : Buffer.from(data).toString();
    const m = /^(?:Authorization|Proxy-Authorization):\s*Digest[^\r\n]*?algorithm="?([A-Za-z0-9-]+)/im.exec(text);
    if (m) lastAlgorithm = m[1];
    else if (/^(?:Authorization|Proxy-Authorization):\s*Digest/im.test(text)) lastAlgorithm = 'MD5 (implicit)';
    process.stderr.write(`--- sent ---\n${text}\n`);
    return super.send(data, ...rest);
  }
}
globalThis.WebSocket = TracingWebSocket;

function report(step, fields) {
  process.stdout.write(JSON.stringify({ step, algorithm: lastAlgorithm, ...fields }) + '\n');
}

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// ---------- JsSIP ----------
function jssipClient() {
  const JsSIP = require('jssip');
  JsSIP.debug.enable('JsSIP:*');
  const ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(settings.server)],
    uri: `sip:${settings.user}@${settings.domain}`,
    password: settings.password,
    register: false,
    register_expires: settings.expires,
    connection_recovery_min_interval: 1,
    connection_recovery_max_interval: 2,
  });
  // Each step waits for the first of the events that end it.
  const once = (events) =>
    new Promise((resolve) => {
      const handlers = {};
      for (const [name, ok] of Object.entries(events)) {
        handlers[name] = (e) => {
          for (const [n, h] of Object.entries(handlers)) ua.removeListener(n, h);
          resolve({ ok, status: e && e.response ? e.response.status_code : undefined, cause: e && e.cause });
        };
        ua.on(name, handlers[name]);
      }
    });
  let started = false;
  return {
    async register() {
      if (!started) {
        started = true;
        // A REGISTER sent before the WebSocket is open fails at once with "Connection Error".
        const connected = once({ connected: true, disconnected: false });
        ua.start();
        const c = await connected;
        if (!c.ok) return { ok: false, cause: 'WebSocket connection failed' };
      }
      const done = once({ registered: true, registrationFailed: false });
      ua.register();
      return done;
    },
    async refresh() {
      // Ends with a 2xx (a 401 is followed by an authenticated retry), or with the events
      // JsSIP emits when the refresh failed.
      const failed = once({ registrationFailed: false, unregistered: false });
      const accepted = new Promise((resolve) => {
        const h = (status) => {
          if (status >= 200 && status < 300) {
            registerAnswers.removeListener('answer', h);
            resolve({ ok: true, status });
          }
        };
        registerAnswers.on('answer', h);
      });
      ua.register();
      return Promise.race([accepted, failed]);
    },
    async unregister() {
      const done = once({ unregistered: true });
      ua.unregister();
      return done;
    },
    async quit() {
      ua.stop();
    },
  };
}

// ---------- SIP.js ----------
function sipjsClient() {
  const { UserAgent, Registerer } = require('sip.js');
  const ua = new UserAgent({
    uri: UserAgent.makeURI(`sip:${settings.user}@${settings.domain}`),
    transportOptions: { server: settings.server },
    authorizationUsername: settings.user,
    authorizationPassword: settings.password,
    logBuiltinEnabled: false,
    logConnector: (level, category, label, content) => process.stderr.write(`${level} ${category} ${content}\n`),
    logLevel: 'debug',
  });
  let registerer;
  // Registerer.register/unregister resolve when the request is sent; the final answer comes to
  // the request delegate.
  const send = (fn) =>
    new Promise((resolve, reject) => {
      fn({
        requestDelegate: {
          onAccept: (r) => resolve({ ok: true, status: r.message.statusCode }),
          onReject: (r) => resolve({ ok: false, status: r.message.statusCode, cause: r.message.reasonPhrase }),
        },
      }).catch(reject);
    });
  return {
    async register() {
      if (!registerer) {
        await ua.start();
        registerer = new Registerer(ua, { expires: settings.expires });
      }
      return send((o) => registerer.register(o));
    },
    async refresh() {
      return send((o) => registerer.register(o));
    },
    async unregister() {
      return send((o) => registerer.unregister(o));
    },
    async quit() {
      await ua.stop();
    },
  };
}

const clients = { jssip: jssipClient, sipjs: sipjsClient };
if (!clients[kind]) {
  process.stderr.write(`usage: node client.js ${Object.keys(clients).join('|')}\n`);
  process.exit(2);
}
const client = clients[kind]();
const timeoutMs = settings.timeoutMs || 10000;

const rl = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
rl.on('line', (line) => {
  const step = line.trim();
  if (!step) return;
  queue = queue.then(async () => {
    if (!['register', 'refresh', 'unregister', 'quit'].includes(step)) {
      report(step, { ok: false, cause: 'unknown command' });
      return;
    }
    try {
      const r = await withTimeout(client[step](), timeoutMs, step);
      report(step, r || { ok: true });
    } catch (e) {
      report(step, { ok: false, cause: String(e && e.message ? e.message : e) });
    }
    if (step === 'quit') process.exit(0);
  });
});
rl.on('close', () => queue.then(() => process.exit(0)));
