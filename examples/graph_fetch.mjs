// Microsoft Graph through samgate from Node.js with nothing but `fetch` (Node 18+):
//
//   SAMGATE_URL=http://127.0.0.1:8080 SAMGATE_API_KEY=sgk_... \
//   SAMGATE_PARTNER=<partner tenant id> SAMGATE_CUSTOMER=<customer tenant id> \
//   node examples/graph_fetch.mjs
//
// Follows @odata.nextLink as Graph returns it: samgate rewrites it to its own route, so the key
// is only ever sent to samgate. Errors carry Graph's shape ({"error": {"code", "message"}}) and
// samgate's code in the x-samgate-error header. Prints one JSON object.

const env = process.env;
const samgate = env.SAMGATE_URL.replace(/\/$/, "");
const headers = { Authorization: `Bearer ${env.SAMGATE_API_KEY}` };
const route = `${samgate}/api/v1/partners/${env.SAMGATE_PARTNER}/customers/${env.SAMGATE_CUSTOMER}/graph/v1.0`;

async function get(url) {
  if (!url.startsWith(samgate + "/")) {
    throw new Error(`refusing to send the key to ${url}`);
  }
  const response = await fetch(url, { headers });
  return { status: response.status, header: response.headers.get("x-samgate-error"), body: await response.json() };
}

const users = [];
let pages = 0;
for (let url = `${route}/users?$top=1`; url; ) {
  const { status, body } = await get(url);
  if (status !== 200) throw new Error(`${status}: ${JSON.stringify(body)}`);
  pages += 1;
  users.push(...body.value.map((u) => u.userPrincipalName));
  url = body["@odata.nextLink"];
}
const missing = await get(`${route}/users/00000000-0000-0000-0000-000000000000`);
console.log(JSON.stringify({
  pages,
  users,
  error: { status: missing.status, code: missing.body.error?.code },
}));
