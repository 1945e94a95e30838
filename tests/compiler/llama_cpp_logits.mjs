// node llama_cpp_logits.mjs PACKAGES_DIR MODEL.gguf '[ids]' -> {"token", "logits": [[id, logit], ...]} for the last id,
// from llama.cpp through node-llama-cpp installed under PACKAGES_DIR/node_modules.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [packages, modelPath, idsJson] = process.argv.slice(2);
const { getLlama } = await import(pathToFileURL(join(packages, "node_modules/node-llama-cpp/dist/index.js")));
const ids = JSON.parse(idsJson);
const llama = await getLlama({ gpu: false, build: "never" });
const model = await llama.loadModel({ modelPath });
const context = await model.createContext({ contextSize: 256, batchSize: 64 });
const input = ids.map((id, i) => (i === ids.length - 1 ? [id, { generateNext: { logits: true, token: true } }] : id));
const out = await context.getSequence().controlledEvaluate(input);
const next = out[ids.length - 1].next;
console.log(JSON.stringify({ token: next.token, logits: Array.from(next.logits.entries()) }));
