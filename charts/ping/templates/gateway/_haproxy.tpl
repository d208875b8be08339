{{/*
One problem+json answer in Ping's error shape, as the arguments of an HAProxy `return` or
`http-error`. Call with (dict "status" 401 "title" "Unauthorized" "detail" "..." "dynamic" true).
`dynamic` adds instance and request_id (known once the request has been parsed). The detail must
hold no `'` or `%` (HAProxy log-format text).
*/}}
{{- define "ping.gateway.problem" -}}
{{- $body := printf `{"type":"about:blank","title":"%s","status":%d,"detail":"%s"` .title (int64 .status) .detail }}
{{- if .dynamic }}
{{- $body = printf `%s,"instance":"%%[var(txn.instance)]","request_id":"%%[var(txn.request_id)]"}` $body }}
{{- else }}
{{- $body = printf "%s}" $body }}
{{- end }}
{{- printf "status %d content-type application/problem+json %s '%s'" (int64 .status) (ternary "lf-string" "string" (default false .dynamic)) $body }}
{{- end }}

{{/*
haproxy.cfg. Paths are fixed mount points of the gateway pod: the ConfigMap at
/usr/local/etc/haproxy, the API keys Secret at /etc/ping-gateway/keys, the TLS Secret at
/etc/ping-gateway/tls and a writable emptyDir at /var/run/haproxy. Every feature used here
exists in HAProxy 2.6 (Debian bookworm, the tests) and 3.4 (the pinned image).
*/}}
{{- define "ping.gateway.haproxyCfg" -}}
{{- $g := .Values.gateway }}
{{- $l := $g.limits }}
{{- $u := $g.upstream }}
{{- $routes := (include "ping.gateway.routes" . | fromYaml).routes }}
{{- $default := "" }}
{{- $prefixes := list }}
{{- range $routes }}{{ $prefixes = append $prefixes (printf "/models/%s/" .name) }}{{ if .default }}{{ $default = .name }}{{ end }}{{ end -}}
# Rendered by the Ping chart (templates/gateway/_haproxy.tpl); edit values, not this file.
global
  log stdout format raw local0
  maxconn {{ int64 $l.maxConnections }}
  nbthread {{ int64 $g.threads }}
  # The buffer holds a request's headers, and a whole request for it to be retried on another pod.
  tune.bufsize {{ int64 $g.bufferBytes }}
  tune.http.maxhdr {{ int64 $l.maxHeaders }}
  # After the stop signal (which follows the preStop sleep), in-flight requests get until just
  # before the kubelet's SIGKILL.
  hard-stop-after {{ max 1 (sub (int64 $g.terminationGracePeriodSeconds) (add (int64 $g.preStopSleepSeconds) 2)) }}s
  stats socket /var/run/haproxy/admin.sock mode 600 level admin
  setenv PING_GATEWAY_KEYS_FILE /etc/ping-gateway/keys/{{ $g.auth.secretKey }}
  setenv PING_GATEWAY_KEYS_MAP /usr/local/etc/haproxy/api-keys.map
  setenv PING_GATEWAY_KEYS_RELOAD_SECONDS {{ int64 $g.auth.reloadSeconds }}
  lua-load /usr/local/etc/haproxy/api_keys.lua
  {{- if $g.tls.enabled }}
  ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
  {{- end }}

# The cluster's DNS, from the pod's resolv.conf: headless Services give one A record per ready pod.
resolvers cluster
  parse-resolv-conf
  resolve_retries 3
  timeout resolve 1s
  timeout retry 1s
  hold valid {{ int64 $u.dnsHoldSeconds }}s
  hold obsolete {{ int64 $u.dnsHoldSeconds }}s
  accepted_payload_size 8192

defaults
  mode http
  maxconn {{ int64 $l.maxConnections }}
  log global
  log-format '{"time":"%[date,utime(%Y-%m-%dT%H:%M:%SZ)]","request_id":"%[var(txn.request_id)]","client":"%[var(txn.client)]","route":"%[var(txn.route)]","method":"%HM","path":"%[var(txn.instance)]","status":%ST,"bytes_in":%U,"bytes_out":%B,"duration_ms":%Ta,"upstream_ms":%Tr,"server":"%s","retries":"%rc","src":"%ci","termination":"%ts"}'
  {{- if not $g.accessLog }}
  option dontlog-normal
  {{- end }}
  timeout connect {{ $u.connectTimeout }}
  timeout server {{ $u.timeout }}
  # A slow client gets this long to send its headers (and, with http-buffer-request, its body).
  timeout http-request {{ $l.clientHeaderTimeout }}
  # ...and at most this long between two packets afterwards.
  timeout client {{ $l.clientBodyTimeout }}
  timeout http-keep-alive {{ $l.keepAliveTimeout }}
  timeout queue {{ $u.connectTimeout }}
  # Predictions have no side effects, so a request that met a dead pod is replayed on another one.
  retries {{ int64 $u.retries }}
  option redispatch 1
  retry-on conn-failure empty-response junk-response
  option forwardfor
  http-error {{ include "ping.gateway.problem" (dict "status" 500 "title" "Internal Server Error" "detail" "the gateway failed" "dynamic" true) }}
  http-error {{ include "ping.gateway.problem" (dict "status" 502 "title" "Bad Gateway" "detail" "the model answered with an invalid response or closed the connection" "dynamic" true) }}
  http-error {{ include "ping.gateway.problem" (dict "status" 503 "title" "Service Unavailable" "detail" "no model pod of this route is ready; retry shortly" "dynamic" true) }}
  http-error {{ include "ping.gateway.problem" (dict "status" 504 "title" "Gateway Timeout" "detail" "the model did not answer in time" "dynamic" true) }}

# Rate counters: gpc0 counts the requests let through, so a refused request does not prolong a
# refusal. Each gateway pod counts on its own: the cluster-wide limit is the per-pod limit times
# the number of gateway pods.
backend rate_by_source
  stick-table type ipv6 size 100k expire {{ int64 (max (mul 2 $l.perIP.periodSeconds) 60) }}s store conn_cur,gpc0,gpc0_rate({{ int64 $l.perIP.periodSeconds }}s)

backend rate_by_client
  stick-table type string len 64 size 10k expire {{ int64 (max (mul 2 $l.perKey.periodSeconds) 60) }}s store gpc0,gpc0_rate({{ int64 $l.perKey.periodSeconds }}s)

frontend public
  bind :{{ int64 $g.containerPort }}
  {{- if $g.tls.enabled }}
  bind :{{ int64 $g.tlsContainerPort }} ssl crt /etc/ping-gateway/tls/gateway.pem alpn http/1.1
  {{- end }}
  option http-buffer-request
  # Connection cap per client address, before any HTTP parsing.
  tcp-request connection track-sc0 src table rate_by_source
  tcp-request connection reject if { sc_conn_cur(0) gt {{ int64 $l.perIP.connections }} }

  # Keep-alive: a client connection serves at most this many requests, then is closed.
  http-request set-var(sess.requests) var(sess.requests),add(1) if { var(sess.requests) -m found }
  http-request set-var(sess.requests) int(1) unless { var(sess.requests) -m found }
  http-after-response set-header Connection close if { var(sess.requests) -m int ge {{ int64 $l.keepAliveRequests }} }

  # Request id: keep a client's well-formed one (Ping accepts the same shape), else make one.
  http-request set-header X-Request-ID %[uuid] unless { req.hdr_cnt(x-request-id) eq 1 } { req.hdr(x-request-id) -m reg ^[A-Za-z0-9._:/+=-]{1,128}$ }
  http-request set-var(txn.request_id) req.hdr(x-request-id)
  http-request set-var(txn.instance) path,json(utf8s)
  http-after-response set-header X-Request-ID %[var(txn.request_id)]

  # Health of the gateway itself, unauthenticated, for the kubelet and the load balancer.
  http-request return status 200 content-type text/plain string "ok" if { path /healthz }
  {{- if $default }}
  http-request return {{ include "ping.gateway.problem" (dict "status" 503 "title" "Service Unavailable" "detail" "no model pod of the default route is ready" "dynamic" true) }} if { path /readyz } { nbsrv(route_{{ $default }}) eq 0 }
  {{- end }}
  http-request return status 200 content-type text/plain string "ready" if { path /readyz }

  # Edge limits, cheapest first: header size, request rate per address, body size.
  http-request return {{ include "ping.gateway.problem" (dict "status" 431 "title" "Request Header Fields Too Large" "detail" (printf "request headers are larger than the %d-byte limit of the gateway" (int64 $l.maxHeaderBytes)) "dynamic" true) }} if { req.hdrs,length gt {{ int64 $l.maxHeaderBytes }} }
  http-request return {{ include "ping.gateway.problem" (dict "status" 429 "title" "Too Many Requests" "detail" (printf "more than %d requests in %d s from this address" (int64 $l.perIP.requests) (int64 $l.perIP.periodSeconds)) "dynamic" true) }} hdr Retry-After {{ int64 $l.perIP.periodSeconds }} if { sc_gpc0_rate(0) ge {{ int64 $l.perIP.requests }} }
  http-request sc-inc-gpc0(0)
  http-request return {{ include "ping.gateway.problem" (dict "status" 411 "title" "Length Required" "detail" "the gateway needs a Content-Length header; chunked request bodies are refused" "dynamic" true) }} if { req.hdr(transfer-encoding) -m found }
  http-request return {{ include "ping.gateway.problem" (dict "status" 413 "title" "Content Too Large" "detail" (printf "body is larger than the %d-byte limit of the gateway" (int64 $l.maxBodyBytes)) "dynamic" true) }} if { req.hdr_val(content-length) gt {{ int64 $l.maxBodyBytes }} }

  # Authentication: a key from the Secret, as `Authorization: Bearer <key>` or `X-API-Key: <key>`.
  http-request set-var(txn.api_key) req.hdr(x-api-key) if { req.hdr_cnt(x-api-key) eq 1 }
  http-request set-var(txn.api_key) req.fhdr(authorization),word(2,' ') if { req.fhdr_cnt(authorization) eq 1 } { req.fhdr(authorization) -m reg -i ^bearer\ +[^\ ]+$ }
  http-request set-var(txn.client) var(txn.api_key),map_str(/usr/local/etc/haproxy/api-keys.map)
  http-request return {{ include "ping.gateway.problem" (dict "status" 401 "title" "Unauthorized" "detail" "missing or unknown API key: send Authorization: Bearer <key> or X-API-Key: <key>" "dynamic" true) }} hdr WWW-Authenticate "Bearer realm=\"ping\"" unless { var(txn.client) -m found }
  # The model never sees the keys.
  http-request del-header authorization
  http-request del-header x-api-key
  http-request track-sc1 var(txn.client) table rate_by_client
  http-request return {{ include "ping.gateway.problem" (dict "status" 429 "title" "Too Many Requests" "detail" (printf "more than %d requests in %d s with this API key" (int64 $l.perKey.requests) (int64 $l.perKey.periodSeconds)) "dynamic" true) }} hdr Retry-After {{ int64 $l.perKey.periodSeconds }} if { sc_gpc0_rate(1) ge {{ int64 $l.perKey.requests }} }
  http-request sc-inc-gpc0(1)

  # Routing: /models/<name>/... goes to that route with the prefix stripped; other paths go to the default route.
  {{- range $routes }}
  http-request set-var(txn.route) str({{ .name }}) if { path_beg /models/{{ .name }}/ }
  http-request set-path %[path,regsub(^/models/{{ .name }}/,/)] if { var(txn.route) -m str {{ .name }} }
  {{- end }}
  {{- if $default }}
  http-request set-var(txn.route) str({{ $default }}) if !{ var(txn.route) -m found } !{ path_beg /models/ }
  {{- end }}
  http-request return {{ include "ping.gateway.problem" (dict "status" 404 "title" "Not Found" "detail" (printf "no route for this path; the gateway serves %s%s" (join ", " $prefixes) (ternary (printf ", and %s at the bare paths" $default) "" (ne $default ""))) "dynamic" true) }} unless { var(txn.route) -m found }
  # Only the prediction endpoints are published: never /metrics, /docs or anything else.
  http-request return {{ include "ping.gateway.problem" (dict "status" 404 "title" "Not Found" "detail" (printf "the gateway publishes only %s under each route" (join ", " $g.publishedPaths)) "dynamic" true) }} unless {{ range $i, $p := $g.publishedPaths }}{{ if $i }} || {{ end }}{ path {{ $p }} } || { path_beg {{ trimSuffix "/" $p }}/ }{{ end }}
  {{- range $routes }}
  use_backend route_{{ .name }} if { var(txn.route) -m str {{ .name }} }
  {{- end }}
{{- range $routes }}

backend route_{{ .name }}
  balance leastconn
  # Keep idle connections to the model pods, and close them before the pods' own keep-alive timeout.
  http-reuse always
  option httpchk
  http-check send meth GET uri /readyz
  http-check expect status 200
  # A pod that refuses connections is taken out at once, without waiting for the health check.
  default-server check inter {{ $u.healthCheckInterval }} fall 2 rise 1 observe layer4 error-limit 3 on-error mark-down pool-purge-delay {{ $u.idleTimeout }} resolvers cluster resolve-prefer {{ $u.resolvePrefer }} init-addr none
  server-template pod {{ int64 $u.maxPodsPerRoute }} {{ .fqdn }}:{{ .port }}
{{- end }}
{{- end }}

