// node llama_cpp_logits.mjs NODE_LLAMA_CPP_DIR MODEL.gguf '[ids]' -> {"token", "logits": [[id, logit], ...]} for the last id,
// from llama.cpp through the node-llama-cpp package in NODE_LLAMA_CPP_DIR.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [packageDir, modelPath, idsJson] = process.argv.slice(2);
const { getLlama } = await import(pathToFileURL(join(packageDir, "dist/index.js")));
const ids = JSON.parse(idsJson);
const llama = await getLlama({ gpu: false, build: "never" });
const model = await llama.loadModel({ modelPath });
const context = await model.createContext({ contextSize: 256, batchSize: 64 });
const input = ids.map((id, i) => (i === ids.length - 1 ? [id, { generateNext: { logits: true, token: true } }] : id));
const out = await context.getSequence().controlledEvaluate(input);
const next = out[ids.length - 1].next;
console.log(JSON.stringify({ token: next.token, logits: Array.from(next.logits.entries()) }));
