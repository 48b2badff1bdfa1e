-- wrk script of the `-uncached` JWT rows: every request carries the next token of a list, so
-- the gateway's verified-token cache cannot answer it.
--
--   wrk … -s rotate-tokens.lua <url> -- <wrk threads> <tokens file> <position file>
--
-- The tokens file has one token per line (written by targets/jwt.ts). With T threads, thread k
-- (0-based) sends tokens P+k, P+k+T, P+k+2T, … (modulo the list's length), so across all
-- threads the list is sent in order and a token comes round again only after every other one
-- has been sent once. The list is longer than the gateway's cache holds (an LRU), so each token
-- has been evicted before it is sent again.
--
-- P is read from the position file, and written back when wrk ends: the next run (the measured
-- run after its warm-up, the next round) goes on where this one stopped instead of starting
-- over with tokens the gateway has just verified and cached.
--
-- The method, path and other headers are wrk's own (`-H Host: …`, the URL's path).

-- main state: the threads, to read their positions in done()
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local position, file = 0, nil
  for _, thread in ipairs(threads) do
    position = math.max(position, thread:get("index"))
    file = thread:get("position_file")
  end
  local out = assert(io.open(file, "w"))
  out:write(string.format("%d\n", position))
  out:close()
end

-- thread state; globals so that done() can read them with thread:get()
tokens = {}
index = 0
step = 1
position_file = nil

function init(args)
  step = tonumber(args[1])
  local path = args[2]
  position_file = args[3]
  if step == nil or step < 1 or path == nil or position_file == nil then
    error("usage: wrk -s rotate-tokens.lua <url> -- <wrk threads> <tokens file> <position file>")
  end
  for line in io.lines(path) do
    if #line > 0 then tokens[#tokens + 1] = "Bearer " .. line end
  end
  if #tokens < step then error("rotate-tokens.lua: " .. path .. " has fewer tokens than threads") end
  local start = 0
  local saved = io.open(position_file, "r")
  if saved then
    start = saved:read("*n") or 0
    saved:close()
  end
  -- keep the index small: the position only matters modulo the list's length
  index = (start % #tokens) + thread_id
end

function request()
  wrk.headers["Authorization"] = tokens[index % #tokens + 1]
  index = index + step
  return wrk.format()
end
