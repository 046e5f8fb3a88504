-- The sandbox, run once per interpreter (loaded by scripting/mod.rs as chunk "=prelude").
local raw_call, raw_pcall, handler, script_args, kit, encode = ...
local G = _G
local rawset, pairs, ipairs, type, error, tostring = rawset, pairs, ipairs, type, error, tostring
local base_setmetatable, base_getmetatable = setmetatable, getmetatable
local protected = kit.protected
-- Both are C functions, like Redis's: `return redis.call(...)` keeps the script's frame
-- (Lua 5.1 does not tail-call C functions), so errors can name the script's line.
redis.call = raw_call
redis.pcall = raw_pcall
-- The table functions that write raw refuse read-only tables.
table.insert = kit.insert
table.foreach = kit.foreach

local readonly, presented, no_metatable = kit.readonly, kit.presented, kit.no_metatable
local function refuse() error('Attempt to modify a readonly table', 2) end
-- A read-only view of `real`: reads go through, writes are refused, and getmetatable shows
-- `shown` (nothing by default) instead of the proxy's own metatable.
local function protect(real, shown)
  local proxy, mt = {}, { __index = real, __newindex = refuse, __metatable = false }
  base_setmetatable(proxy, mt)
  rawset(readonly, proxy, real)
  if shown == nil then shown = no_metatable end
  rawset(presented, mt, shown)
  return proxy
end

-- What scripts see as globals: all but what Redis 7 removes, the raw-access functions that
-- respect read-only tables, and the libraries behind read-only proxies.
local removed = { loadfile = true, dofile = true, print = true, getfenv = true, setfenv = true,
  newproxy = true, module = true, require = true, package = true }
local backing = {}
for k, v in pairs(G) do
  if not removed[k] then backing[k] = v end
end
for k in pairs(G) do rawset(G, k, nil) end
for _, name in ipairs({ 'rawset', 'rawget', 'next', 'pairs', 'setmetatable', 'getmetatable',
  'loadstring', 'load', 'xpcall', 'pcall' }) do
  backing[name] = kit[name]
end
for k, v in pairs(backing) do
  if type(v) == 'table' and k ~= '_G' then backing[k] = protect(v) end
end
backing._G = G
-- Strings index the protected `string`; getmetatable('') shows a read-only view of their
-- metatable.
local string_mt = base_getmetatable('')
string_mt.__index = backing.string
rawset(presented, string_mt, protect(string_mt))

local function missing(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end
-- A global is looked up in `backing` without a function call (the common case); only a
-- missing one reaches the function that raises.
base_setmetatable(backing, { __index = missing, __metatable = false })
local g_mt = { __index = backing, __newindex = refuse, __metatable = false }
base_setmetatable(G, g_mt)
rawset(readonly, G, backing)
-- As in Redis, getmetatable(_G) is a read-only table whose __index names missing globals.
rawset(presented, g_mt, protect({ __index = missing }))

-- What a library's top-level code sees (FUNCTION LOAD), as in Redis 7.0: only `redis`, with
-- `register_function` (set for the duration of a load), `log` and the constants; reading
-- anything else names the missing global. Functions the library registers run later with the
-- ordinary globals, since every global lookup goes through `g_mt.__index`.
local library_redis = { log = redis.log, LOG_DEBUG = redis.LOG_DEBUG, LOG_VERBOSE = redis.LOG_VERBOSE,
  LOG_NOTICE = redis.LOG_NOTICE, LOG_WARNING = redis.LOG_WARNING,
  REDIS_VERSION = redis.REDIS_VERSION, REDIS_VERSION_NUM = redis.REDIS_VERSION_NUM }
base_setmetatable(library_redis, { __index = missing, __metatable = false })
local library_api = { redis = protect(library_redis) }
base_setmetatable(library_api, { __index = missing, __metatable = false })

-- Runs a library's compiled top-level `chunk` with `register` as redis.register_function.
local function load_library(chunk, register)
  rawset(library_redis, 'register_function', register)
  g_mt.__index = library_api
  local ok, v = protected(chunk, handler)
  g_mt.__index = backing
  rawset(library_redis, 'register_function', nil)
  return ok, v
end

-- Calls a registered function with its keys and arguments as two tables (FCALL); there are
-- no KEYS or ARGV globals then.
local function call_function(fn)
  local keys, args = script_args()
  backing.KEYS, backing.ARGV = nil, nil
  local ok, v = protected(function() return fn(keys, args) end, handler)
  if ok then return true, encode(v) end
  return false, v
end

-- Starts the script cached at `cache[slot]`. KEYS and ARGV come from a C function that
-- builds them straight from the command's arguments. A returned array, map or set is
-- converted to RESP by `encode` while it is still on the Lua stack.
local function run_script(cache, slot)
  backing.KEYS, backing.ARGV = script_args()
  local ok, v = protected(cache[slot], handler)
  if ok then return true, encode(v) end
  return false, v
end

return run_script, load_library, call_function
