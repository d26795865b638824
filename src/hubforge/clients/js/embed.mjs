// Embeds texts with transformers.js from local model folders, offline, as a browser or node app would.
// stdin: {"modules": dir holding node_modules, "requests": [{"folder", "dtype", "texts", "pooling", "normalize"}]}
// stdout: one JSON line per request, {"embeddings": [[...], ...]} or {"error": "Type: message"}.
import { createRequire } from "node:module";
import { basename, dirname } from "node:path";
import { pathToFileURL } from "node:url";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const batch = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const require = createRequire(batch.modules + "/");
const { env, pipeline } = await import(pathToFileURL(require.resolve("@huggingface/transformers")).href);
env.allowRemoteModels = false;
env.useBrowserCache = false;
env.useFSCache = false;

for (const request of batch.requests) {
  try {
    env.localModelPath = dirname(request.folder) + "/";
    const extractor = await pipeline("feature-extraction", basename(request.folder),
                                     { dtype: request.dtype, device: "cpu", local_files_only: true });
    const output = await extractor(request.texts, { pooling: request.pooling, normalize: request.normalize });
    process.stdout.write(JSON.stringify({ embeddings: output.tolist() }) + "\n");
    await extractor.dispose();
  } catch (error) {
    const line = String(error && error.message ? error.message : error).split("\n")[0];
    process.stdout.write(JSON.stringify({ error: `${error && error.name ? error.name : "Error"}: ${line}` }) + "\n");
  }
}
