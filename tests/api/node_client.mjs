// A non-Python client of the HTTP API (Node 20, global fetch): submit a transcode, poll until the
// job and its children are terminal, print the final state. Reads MR_URL, MR_KEY, MR_INPUT, MR_OUTPUT from the env.
const { MR_URL, MR_KEY, MR_INPUT, MR_OUTPUT } = process.env;
const headers = { Authorization: `Bearer ${MR_KEY}`, "Content-Type": "application/json" };
const TERMINAL = new Set(["completed", "failed", "timeout", "cancelled"]);

const settled = (j) => TERMINAL.has(j.state) && j.children.every(settled);

async function call(method, path, body) {
  const res = await fetch(MR_URL + path, { method, headers, body: body && JSON.stringify(body) });
  const doc = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${doc.detail ?? JSON.stringify(doc)}`);
  return doc;
}

const job = await call("POST", "/v1/jobs/transcode",
  { input: MR_INPUT, output: MR_OUTPUT, renditions: ["240p"], metadata: { client: "node" } });
console.log(`submitted ${job.id} (${job.state})`);
const deadline = Date.now() + 120_000;
let current = job;
while (!settled(current)) {
  if (Date.now() > deadline) throw new Error(`job ${job.id} still ${current.state} after 120 s`);
  await new Promise((r) => setTimeout(r, 250));
  current = await call("GET", `/v1/jobs/${job.id}`);
}
const children = current.children.map((c) => c.state).join(",");  // a small source: maybe none
console.log(`final state: ${current.state} children: ${children || "-"} artifacts: ${current.artifacts.length}`);
process.exit(current.state === "completed" ? 0 : 1);
