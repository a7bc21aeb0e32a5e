// The official OpenAI Node.js SDK against inferd (tests/e2e/test_openai_sdk.py runs it):
// node client.mjs <base url, e.g. http://127.0.0.1:8000/v1> <lm model> <embedding model>
// Prints one JSON object with what each call gave; the Python test asserts on it.
import OpenAI from "openai";

const [baseURL, lm, embedder] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: process.env.OPENAI_API_KEY || "unused", maxRetries: 0, timeout: 60000 });
const out = {};

const models = await client.models.list();
out.models = [];
for await (const m of models) out.models.push({ id: m.id, object: m.object, owned_by: m.owned_by, created: m.created });
const one = await client.models.retrieve(lm);
out.model = { id: one.id, object: one.object };

const prompt = "And God said";
const chat = await client.chat.completions.create({
  model: lm,
  messages: [{ role: "user", content: prompt }],
  max_tokens: 12,
  seed: 7,
  temperature: 0.8,
});
out.chat = {
  object: chat.object,
  content: chat.choices[0].message.content,
  role: chat.choices[0].message.role,
  finish_reason: chat.choices[0].finish_reason,
  usage: chat.usage,
};

const cmpl = await client.completions.create({ model: lm, prompt, max_tokens: 12, seed: 7, temperature: 0.8 });
out.completion = { object: cmpl.object, text: cmpl.choices[0].text, finish_reason: cmpl.choices[0].finish_reason, usage: cmpl.usage };

const stream = await client.chat.completions.create({
  model: lm,
  messages: [{ role: "user", content: prompt }],
  max_tokens: 12,
  seed: 7,
  temperature: 0.8,
  stream: true,
  stream_options: { include_usage: true },
});
let text = "", chunks = 0, finish = null, usage = null, role = null;
for await (const chunk of stream) {
  chunks++;
  if (chunk.object !== "chat.completion.chunk") throw new Error(`chunk object ${chunk.object}`);
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.delta.role) role = c.delta.role;
    if (c.delta.content) text += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
}
out.chat_stream = { text, chunks, finish_reason: finish, usage, role };

const cstream = await client.completions.create({ model: lm, prompt, max_tokens: 12, seed: 7, temperature: 0.8, stream: true });
let ctext = "";
for await (const chunk of cstream) for (const c of chunk.choices) ctext += c.text;
out.completion_stream = { text: ctext };

const emb = await client.embeddings.create({ model: embedder, input: ["In the beginning", "God created the heaven"] });
out.embeddings = { object: emb.object, n: emb.data.length, dims: emb.data[0].embedding.length, first: emb.data[0].embedding, usage: emb.usage };
// the SDK asks for base64 by default when encoding_format is not given, and decodes it: the
// same vectors must come back when it asks for floats
const embf = await client.embeddings.create({ model: embedder, input: "In the beginning", encoding_format: "float" });
out.embeddings_float = { first: embf.data[0].embedding };

try {
  await client.chat.completions.create({ model: lm, messages: [{ role: "user", content: "x" }], n: 2 });
  out.error = null;
} catch (e) {
  out.error = { status: e.status, message: e.message, param: e.param, type: e.type, name: e.constructor.name };
}

console.log(JSON.stringify(out));
