// The reference side of tests/e2e/test_tokenizer_reference.py: reads {"tokenizer": PATH,
// "texts": [...], "ids": [[...]]} on stdin and prints, for Hugging Face tokenizers (the Rust
// library through @anush008/tokenizers) and for its JavaScript port (@huggingface/tokenizers),
// the ids of each text and the text of each id list (with and without special tokens).
const fs = require("fs");
const path = require("path");
const native = require(path.join(__dirname, "node_modules/@anush008/tokenizers"));
const port = require(path.join(__dirname, "node_modules/@huggingface/tokenizers/dist/tokenizers.cjs"));

async function main() {
  const req = JSON.parse(fs.readFileSync(0, "utf8"));
  const json = fs.readFileSync(req.tokenizer, "utf8");
  const rust = native.Tokenizer.fromString(json);
  const out = { rust: { ids: [], decoded: [], decoded_skip: [] }, js: { ids: [], decoded: [], decoded_skip: [], error: null } };
  for (const text of req.texts) out.rust.ids.push((await rust.encode(text)).getIds());
  for (const ids of req.ids) {
    out.rust.decoded.push(await rust.decode(ids, false));
    out.rust.decoded_skip.push(await rust.decode(ids, true));
  }
  try {
    const js = new port.Tokenizer(JSON.parse(json), {});
    for (const text of req.texts) out.js.ids.push(js.encode(text).ids);
    for (const ids of req.ids) {
      // the port refuses an empty list
      out.js.decoded.push(ids.length ? js.decode(ids, { skip_special_tokens: false }) : "");
      out.js.decoded_skip.push(ids.length ? js.decode(ids, { skip_special_tokens: true }) : "");
    }
  } catch (e) {
    out.js.error = String(e && e.stack || e);
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + "\n");
  process.exit(1);
});
