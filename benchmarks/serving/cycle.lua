-- POST a different body on every request, cycling through a file of bodies (one per line),
-- with an Authorization header. Prints the same RESULT line as the harness's post.lua.
-- usage: wrk ... -s cycle.lua URL -- BODIES_FILE TOKEN
local bodies = {}
local counter = 0

function init(args)
  local path, token = args[1], args[2]
  if path == nil then error("pass the bodies file (and a token) after --") end
  for line in io.lines(path) do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
  if #bodies == 0 then error("no bodies in " .. path) end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if token ~= nil and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
  counter = math.random(#bodies)
end

function request()
  counter = counter % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[counter])
end

function done(summary, latency, requests)
  local e = summary.errors
  local dur = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d duration_s=%.3f rps=%.2f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d bytes=%d\n",
    summary.requests, dur, summary.requests / dur,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3,
    e.status, e.connect, e.read, e.write, e.timeout, summary.bytes))
end
