{{/*
Names, labels and checks of the gateway tier. The gateway is a Deployment of HAProxy in front of
this release's model Service (and of any other model Service named in gateway.routes).
*/}}
{{- define "ping.gateway.fullname" -}}
{{- printf "%s-gateway" (include "ping.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/* The headless twin of the model Service: one DNS A record per ready model pod. */}}
{{- define "ping.headlessServiceName" -}}
{{- printf "%s-pods" (include "ping.fullname" . | trunc 58 | trimSuffix "-") }}
{{- end }}

{{/*
Selector labels of the gateway pods. Their name differs from the model pods' (as the test pod's
does), so the model Service, PDB and NetworkPolicy never select a gateway pod.
*/}}
{{- define "ping.gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ping.name" . }}-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ping.gateway.labels" -}}
helm.sh/chart: {{ include "ping.chart" . }}
{{ include "ping.gateway.selectorLabels" . }}
app.kubernetes.io/component: gateway
app.kubernetes.io/version: {{ .Values.gateway.image.tag | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The gateway's routes as one list: this release's own model first (when published), then
gateway.routes. Each entry: name, fqdn (the Service's cluster DNS name), port, default.
Returned as YAML under `routes`, for `fromYaml`.
*/}}
{{- define "ping.gateway.routes" -}}
{{- $routes := list }}
{{- $own := .Values.gateway.releaseModel }}
{{- if $own.enabled }}
{{- $routes = append $routes (dict "name" (default .Release.Name $own.name) "fqdn" (printf "%s.%s.svc.%s" (include "ping.headlessServiceName" .) .Release.Namespace .Values.gateway.clusterDomain) "port" (int64 .Values.containerPort) "default" $own.default) }}
{{- end }}
{{- range .Values.gateway.routes }}
{{- $ns := default $.Release.Namespace .service.namespace }}
{{- $routes = append $routes (dict "name" .name "fqdn" (printf "%s.%s.svc.%s" .service.name $ns $.Values.gateway.clusterDomain) "port" (int64 .service.port) "default" (default false .default)) }}
{{- end }}
{{- dict "routes" $routes | toYaml }}
{{- end }}

{{/*
Checks of the gateway values a JSON schema cannot express. Each one refuses to render with the fix.
*/}}
{{- define "ping.gateway.validateValues" -}}
{{- if .Values.gateway.enabled }}
{{- if ne .Values.service.type "ClusterIP" }}
{{- fail (printf "gateway.enabled keeps the model Service internal, but service.type is %s. Set service.type=ClusterIP and expose the gateway instead (gateway.service.type)." .Values.service.type) }}
{{- end }}
{{- if not .Values.gateway.auth.existingSecret }}
{{- fail "gateway.enabled needs gateway.auth.existingSecret: the name of a Secret holding the API keys (one `<client> <key>` line each, under gateway.auth.secretKey). Keys never go into values." }}
{{- end }}
{{- if and .Values.gateway.tls.enabled (not .Values.gateway.tls.secretName) }}
{{- fail "gateway.tls.enabled needs gateway.tls.secretName: a kubernetes.io/tls Secret with tls.crt and tls.key." }}
{{- end }}
{{- $routes := (include "ping.gateway.routes" . | fromYaml).routes }}
{{- if not $routes }}
{{- fail "gateway.enabled with no route: keep gateway.releaseModel.enabled or list gateway.routes." }}
{{- end }}
{{- $names := dict }}
{{- $defaults := list }}
{{- range $routes }}
{{- if hasKey $names .name }}
{{- fail (printf "gateway route %q is listed twice (gateway.releaseModel.name defaults to the release name)." .name) }}
{{- end }}
{{- $_ := set $names .name true }}
{{- if .default }}{{ $defaults = append $defaults .name }}{{ end }}
{{- end }}
{{- if gt (len $defaults) 1 }}
{{- fail (printf "only one gateway route may be the default for bare /predict and /v2, got: %s." (join ", " $defaults)) }}
{{- end }}
{{- end }}
{{- end }}
