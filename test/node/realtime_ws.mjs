// The `openai` npm package's OpenAIRealtimeWS against a gateway, as a Node app would use it.
// Usage: OPENAI_API_KEY=… node realtime_ws.mjs BASE_URL   (prints one JSON line: what it saw)
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';

const baseURL = process.argv[2];
const client = new OpenAI({ apiKey: process.env.OPENAI_API_KEY, baseURL });
const seen = [];
const errors = [];
let url = null;
const finish = (code) => {
  console.log(JSON.stringify({ url, seen, errors }));
  process.exit(code);
};
setTimeout(() => { errors.push('timeout'); finish(1); }, 20000);

const rt = new OpenAIRealtimeWS({ model: 'gpt-realtime' }, client);
url = rt.url.toString();
rt.on('error', (err) => { errors.push(String(err.message ?? err)); });
rt.socket.on('open', () => {
  rt.send({
    type: 'session.update',
    session: { type: 'realtime', output_modalities: ['text'], audio: { input: { turn_detection: null } } },
  });
});
rt.on('event', (event) => {
  seen.push(event.type);
  if (event.type === 'session.updated') {
    const silence = Buffer.alloc(24000 * 2 / 5).toString('base64'); // 200 ms of 24 kHz pcm16
    rt.send({ type: 'input_audio_buffer.append', audio: silence });
    rt.send({ type: 'input_audio_buffer.commit' });
  } else if (event.type === 'conversation.item.done' && event.item.role === 'user') {
    rt.send({ type: 'response.create' });
  } else if (event.type === 'response.done') {
    seen.push(`status:${event.response.status}`);
    rt.close();
    setTimeout(() => finish(0), 100);
  }
});
