-- wrk script of the `-uncached` JWT rows: every request carries the next token of a list, so
-- the gateway's verified-token cache cannot answer it.
--
--   wrk … -s rotate-tokens.lua <url> -- <wrk threads> <tokens file>
--
-- The tokens file has one token per line (written by targets/jwt.ts). With T threads, thread k
-- (0-based) sends tokens k, k+T, k+2T, … so, across all threads, the list is sent in order and a
-- token comes round again only after every other one has been sent once. The list is longer
-- than the gateway's cache holds (an LRU), so each token has been evicted before it is reused.
-- The method, path and other headers are wrk's own (`-H Host: …`, the URL's path).

local next_thread_id = 0

function setup(thread)
  thread:set("thread_id", next_thread_id)
  next_thread_id = next_thread_id + 1
end

local tokens = {}
local index = 0
local step = 1

function init(args)
  step = tonumber(args[1])
  local path = args[2]
  if step == nil or step < 1 or path == nil then
    error("usage: wrk -s rotate-tokens.lua <url> -- <wrk threads> <tokens file>")
  end
  for line in io.lines(path) do
    if #line > 0 then tokens[#tokens + 1] = "Bearer " .. line end
  end
  if #tokens < step then error("rotate-tokens.lua: " .. path .. " has fewer tokens than threads") end
  index = thread_id
end

function request()
  wrk.headers["Authorization"] = tokens[index % #tokens + 1]
  index = index + step
  return wrk.format()
end
