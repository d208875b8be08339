{{/*
The tracing environment of the Ping container (tracing.enabled): the standard OTEL_* variables,
read by OpenTelemetry's SDK in the pod, and the pod's identity as resource attributes.
*/}}
{{- define "ping.tracingEnv" -}}
{{- $t := .Values.tracing }}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.egress) }}
{{- fail "tracing.enabled with networkPolicy.enabled and no networkPolicy.egress rules: the NetworkPolicy denies all egress, so no span would reach the collector. Add an egress rule for the collector (and DNS) to networkPolicy.egress, or turn tracing off." }}
{{- end -}}
{{- /* Not PING_*: Ping refuses any PING_* variable that is not one of its settings. */}}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: OTEL_SERVICE_NAME
  value: {{ $t.serviceName | default (include "ping.fullname" .) | quote }}
{{- $attributes := list (printf "k8s.namespace.name=%s" .Release.Namespace) (printf "k8s.deployment.name=%s" (include "ping.fullname" .)) "k8s.pod.name=$(K8S_POD_NAME)" }}
{{- range $key, $value := $t.resourceAttributes }}
{{- $attributes = append $attributes (printf "%s=%v" $key $value) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attributes | quote }}
{{- with $t.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: http/protobuf
- name: OTEL_TRACES_SAMPLER
  value: {{ $t.sampler | quote }}
{{- if not (kindIs "invalid" $t.samplerArg) }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ $t.samplerArg | toString | quote }}
{{- end }}
{{- end }}
