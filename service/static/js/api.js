// The public API, called as curl and the CLI call it: JSON in and out, errors as the
// server's problem+json, the API key typed into the page in the Authorization header.

export class ApiError extends Error {}

export const apiKey = {
  get: () => localStorage.getItem("fpar-api-key") || "",
  set: (key) => localStorage.setItem("fpar-api-key", key.trim()),
};

export function headers(extra) {
  const key = apiKey.get();
  return {...(key ? {Authorization: `Bearer ${key}`} : {}), ...extra};
}

// A problem document as one readable message, with each field at fault on its own line.
export async function problem(r) {
  try {
    const p = await r.json();
    let text = `${p.title || r.status}: ${p.detail || ""}`;
    if (p.errors) text += "\n" + p.errors.map((e) => `  ${e.loc.join(".")}: ${e.msg}`).join("\n");
    return new ApiError(text);
  } catch (e) {
    return new ApiError(`${r.status} ${r.statusText}`);  // not a problem document
  }
}

// JSON for JSON, an object URL for pictures, null for 204. A FormData body goes as it is.
export async function api(method, path, body) {
  const init = {method, headers: headers()};
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  const r = await fetch(path, init);
  if (r.status >= 400) throw await problem(r);
  const type = r.headers.get("content-type") || "";
  if (type.includes("json")) return r.json();
  if (type.startsWith("image/")) return URL.createObjectURL(await r.blob());
  return r.status === 204 ? null : r.text();
}

// Which job statuses there are and which a job never leaves: the API's schema says
// (components.schemas.JobStatus, its enum and x-terminal), read once before the first page.
// "gone" is no job's status but the event stream's last word for a job deleted while
// watched: over as well.
export const statuses = {all: [], terminal: new Set()};
export const isOver = (status) => statuses.terminal.has(status) || status === "gone";

export async function loadStatuses() {
  const r = await fetch("/openapi.json");  // served without a key: the contract, no data
  if (!r.ok) throw await problem(r);
  const schema = ((await r.json()).components?.schemas || {}).JobStatus;
  if (!schema?.enum) throw new ApiError("The API's schema has no JobStatus: is the gateway older than this page?");
  statuses.all = schema.enum;
  statuses.terminal = new Set(schema["x-terminal"]);
}

// Server-sent events through fetch (EventSource cannot send the API key): calls
// handler(kind, data) per event until the final status, or until `signal` aborts (the
// page was left). A stream that breaks first (a gateway restarting, say) is resumed from
// the last event's id, as EventSource would.
export async function events(path, handler, signal) {
  let lastId = null;
  while (!signal.aborted) {
    try {
      const extra = {Accept: "text/event-stream", ...(lastId ? {"Last-Event-ID": lastId} : {})};
      const r = await fetch(path, {headers: headers(extra), signal});
      if (r.status >= 400 && r.status < 500) throw await problem(r);
      if (r.ok && await readEvents(r, (kind, data, id) => { lastId = id || lastId; handler(kind, data); })) return;
    } catch (e) {
      if (e instanceof ApiError) throw e;
      if (signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1500));
  }
}

// true once the final status came, false if the stream ended before it
async function readEvents(response, handler) {
  const reader = response.body.getReader(), decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) return false;
    buffer += decoder.decode(chunk.value, {stream: true});
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
      let kind = "message", id = null;
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) kind = line.slice(6).trim();
        else if (line.startsWith("id:")) id = line.slice(3).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trim());
      }
      if (!data.length) continue;  // a keep-alive comment
      const value = JSON.parse(data.join("\n"));
      handler(kind, value, id);
      if (kind === "status" && isOver(value.status)) return true;
    }
  }
}
