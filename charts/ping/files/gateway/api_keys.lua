-- API keys of the Ping gateway.
--
-- The keys live in a Secret mounted as a file, one `<client> <key>` line each (# starts a
-- comment). This script copies them into the map that haproxy.cfg checks every request
-- against (key -> client), at start-up and then every PING_GATEWAY_KEYS_RELOAD_SECONDS, so a
-- rotated Secret takes effect once the kubelet has refreshed the mount, without a restart.
-- The lookup itself stays in HAProxy's C map code; Lua only runs on a change of the file.
-- Keys are never logged: only counts and client names.

local keys_file = os.getenv("PING_GATEWAY_KEYS_FILE")
local map_name = os.getenv("PING_GATEWAY_KEYS_MAP")
local period = tonumber(os.getenv("PING_GATEWAY_KEYS_RELOAD_SECONDS")) or 10

-- A key shorter than this is refused: it would be guessable.
local MIN_KEY_LENGTH = 16
-- The longest client name: it keys a rate-limit table of 64-byte strings.
local MAX_CLIENT_LENGTH = 64

local loaded = {}      -- key -> client, exactly what the map holds now
local last_text = nil  -- the file as last applied, to skip unchanged reads

local function log(level, event, fields)
  core.log(level, string.format('{"event":"%s",%s}', event, fields))
end

-- Parse the file; returns key -> client and the line numbers refused.
local function parse(text)
  local keys, refused, n = {}, {}, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local trimmed = line:match("^%s*(.-)%s*$")
    if trimmed ~= "" and trimmed:sub(1, 1) ~= "#" then
      local client, key = trimmed:match("^([%w._-]+)%s+(%S+)$")
      if client and #client <= MAX_CLIENT_LENGTH and #key >= MIN_KEY_LENGTH then
        keys[key] = client
      else
        refused[#refused + 1] = n
      end
    end
  end
  return keys, refused
end

local unreadable_logged = false

local function read_keys_file()
  local file = io.open(keys_file, "r")
  if not file then return nil end
  local text = file:read("a")
  file:close()
  return text
end

local function sync()
  local text = read_keys_file()
  if text == nil then
    -- No file (a Secret without this entry): keep the keys already loaded, if any, and say so once.
    if not unreadable_logged then
      log(core.alert, "api_keys_unreadable", string.format('"file":"%s"', keys_file))
      unreadable_logged = true
    end
    return
  end
  unreadable_logged = false
  if text == last_text then return end
  local keys, refused = parse(text)
  local count = 0
  for key, client in pairs(keys) do
    count = count + 1
    if loaded[key] ~= client then core.set_map(map_name, key, client) end
  end
  for key in pairs(loaded) do
    if keys[key] == nil then core.del_map(map_name, key) end
  end
  loaded, last_text = keys, text
  log(core.info, "api_keys_loaded",
    string.format('"keys":%d,"refused_lines":[%s]', count, table.concat(refused, ",")))
end

core.register_init(sync)

core.register_task(function()
  while true do
    core.sleep(period)
    sync()
  end
end)
