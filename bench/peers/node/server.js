// The Node.js peer for bench/run_batching.sh: serves one ONNX model with Node's http module
// and onnxruntime-node, one request per Run (no batching), V2-shaped JSON in and out.
//   node server.js MODEL.onnx PORT [MODEL_NAME]
// POST /v2/models/<name>/infer with {"inputs": [{"name", "datatype": "FP32", "shape", "data"}]}
// answers {"model_name", "model_version": "1", "outputs": [{"name", "datatype", "shape", "data"}]}.
'use strict';
const http = require('http');
const ort = require('onnxruntime-node');

const [modelPath, portText, modelName = 'mlp'] = process.argv.slice(2);
if (!modelPath || !portText) {
  console.error('usage: node server.js MODEL.onnx PORT [MODEL_NAME]');
  process.exit(2);
}

function reply(res, status, doc) {
  const body = JSON.stringify(doc);
  res.writeHead(status, {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body)});
  res.end(body);
}

async function main() {
  // One intra-op thread per Run, as inferd's default; Runs may overlap (onnxruntime-node runs
  // them off the event loop).
  const session = await ort.InferenceSession.create(modelPath, {intraOpNumThreads: 1, interOpNumThreads: 1});
  const inferPath = `/v2/models/${modelName}/infer`;
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/v2/health/ready') return reply(res, 200, {ready: true});
    if (req.method !== 'POST' || req.url !== inferPath) return reply(res, 404, {error: 'not found'});
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      try {
        const doc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        const feeds = {};
        for (const input of doc.inputs) {
          if (input.datatype !== 'FP32') return reply(res, 400, {error: `input ${input.name}: only FP32`});
          feeds[input.name] = new ort.Tensor('float32', Float32Array.from(input.data.flat(Infinity)), input.shape);
        }
        const results = await session.run(feeds);
        const outputs = Object.entries(results).map(([name, t]) => ({
          name, datatype: 'FP32', shape: t.dims, data: Array.from(t.data)}));
        reply(res, 200, {model_name: modelName, model_version: '1', id: doc.id, outputs});
      } catch (e) {
        reply(res, 400, {error: String(e && e.message || e)});
      }
    });
  });
  server.keepAliveTimeout = 120000;
  server.listen(Number(portText), '127.0.0.1');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
