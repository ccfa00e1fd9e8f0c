// An @openai/agents-realtime session (its WebSocket transport) against a gateway.
// Usage: OPENAI_API_KEY=… node agents_session.mjs WS_URL   (prints one JSON line)
// Raw frames are counted on the socket itself and compared with the events the agents client
// emitted: it silently drops events that break its schema, and the test must see none dropped.
import { RealtimeAgent, RealtimeSession, OpenAIRealtimeWebSocket } from '@openai/agents-realtime';
import { WebSocket } from 'ws';

const url = process.argv[2];
const raw = [];
const parsed = [];
const errors = [];
const finish = (code) => {
  console.log(JSON.stringify({ raw, parsed, emitted, errors }));
  process.exit(code);
};
setTimeout(() => { errors.push('timeout'); finish(1); }, 20000);

const transport = new OpenAIRealtimeWebSocket({
  createWebSocket: async ({ url: target, apiKey }) => {
    const ws = new WebSocket(target, { headers: { Authorization: `Bearer ${apiKey}` } });
    ws.on('message', (data) => raw.push(JSON.parse(data.toString()).type));
    return ws;
  },
});
const agent = new RealtimeAgent({ name: 'Assistant', instructions: 'Answer briefly.' });
// Every name the transport emits: a server event that passed the agents schema is emitted
// under its own type; one that failed it only under '*' (as a "generic" event).
const emitted = [];
const originalEmit = transport.emit.bind(transport);
transport.emit = (name, ...args) => {
  emitted.push(name);
  return originalEmit(name, ...args);
};
const session = new RealtimeSession(agent, { transport, model: 'gpt-realtime' });
session.on('error', (err) => errors.push(JSON.stringify(err.error ?? err)));
transport.on('*', (event) => {
  parsed.push(event.type);
  if (event.type === 'conversation.item.done' && event.item.role === 'user' && !asked) {
    asked = true;
    session.sendMessage('what time is it'); // a text turn: no OVOS here, so it fails cleanly
  } else if (event.type === 'response.done') {
    setTimeout(() => { session.close(); finish(0); }, 300);
  }
});
let sent = false;
let asked = false;
transport.on('session.updated', () => {
  if (sent) return;
  sent = true;
  transport.sendAudio(new ArrayBuffer(24000 * 2 / 5), { commit: true }); // 200 ms of silence
});
await session.connect({ apiKey: process.env.OPENAI_API_KEY, url });
