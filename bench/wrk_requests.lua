-- wrk script for bench/load.py: every request comes from a file, and the run ends with one
-- JSON line of results (wrk's own report has no p50/p99 without --latency, and prints them
-- in a format made for people).
--
--   wrk -t2 -c16 -d10s -s bench/wrk_requests.lua http://127.0.0.1:PORT -- FILE THREADS NONCE
--
-- FILE holds one request a line: METHOD \t PATH \t BODY \t HEADER \t HEADER ... where each
-- HEADER is "Name: value" and BODY may be empty. Thread t of THREADS takes lines t, t+T, ...
-- (disjoint shares, so a cache-miss run stays a miss) and cycles through them. The text
-- {unique} in a header value becomes a value unique to the request (NONCE-thread-counter):
-- an Idempotency-Key that never repeats.

local created = 0
local unpack = table.unpack or unpack  -- LuaJIT is Lua 5.1

function setup(thread)
  thread:set("tid", created)
  created = created + 1
end

local function split(line)
  local fields = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do
    fields[#fields + 1] = field
  end
  return fields
end

function init(args)
  local path, threads = args[1], tonumber(args[2])
  nonce = args[3] or "0"
  requests, dynamic = {}, {}
  local index = 0
  for line in io.lines(path) do
    if index % threads == tid then
      local fields = split(line)
      local method, target, body = fields[1], fields[2], fields[3]
      local headers, unique = {}, false
      for i = 4, #fields do
        local name, value = fields[i]:match("^([^:]+): (.*)$")
        if name then
          headers[name] = value
          if value:find("{unique}", 1, true) then unique = true end
        end
      end
      if body == "" then body = nil end
      local n = #requests + 1
      if unique then
        dynamic[n] = { method, target, headers, body }
        requests[n] = false
      else
        requests[n] = wrk.format(method, target, headers, body)
      end
    end
    index = index + 1
  end
  if #requests == 0 then
    error("no requests for thread " .. tid .. " in " .. path)
  end
  position, counter = 0, 0
end

function request()
  position = position % #requests + 1
  local ready = requests[position]
  if ready then
    return ready
  end
  local method, target, template, body = unpack(dynamic[position])
  counter = counter + 1
  local stamp = nonce .. "-" .. tid .. "-" .. counter
  local headers = {}
  for name, value in pairs(template) do
    headers[name] = value:gsub("{unique}", stamp)
  end
  return wrk.format(method, target, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-RESULT {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
