{{/*
Expand the name of the chart.
*/}}
{{- define "ping.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name, so release "ping" gives service/ping.
*/}}
{{- define "ping.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "ping.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "ping.labels" -}}
helm.sh/chart: {{ include "ping.chart" . }}
{{ include "ping.selectorLabels" . }}
app.kubernetes.io/version: {{ include "ping.imageTag" . | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
An object's `annotations:` block: its own annotations over commonAnnotations, or nothing when both
are empty. Call with (dict "annotations" <map> "context" $).
*/}}
{{- define "ping.annotations" -}}
{{- with (merge (dict) (deepCopy (.annotations | default dict)) .context.Values.commonAnnotations) }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Selector labels. They stay at name and instance: a Deployment's selector is immutable,
so anything that changes between releases (chart version, app version) must stay out.
*/}}
{{- define "ping.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ping.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "ping.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ping.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The app image tag: image.tag, else the chart's appVersion.
*/}}
{{- define "ping.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: "repo:tag", or "repo:tag@digest" when a digest is
pinned (the runtime pulls by digest; the tag stays for people reading the manifest).
Call with (dict "image" .Values.image "tag" "<tag>").
*/}}
{{- define "ping.imageRef" -}}
{{- $ref := printf "%s:%s" .image.repository .tag }}
{{- if .image.digest }}
{{- $ref = printf "%s@%s" $ref .image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/*
Seconds from the kill signal to the end of the app's own shutdown: the preStop sleep, then the
drain (readiness 503, still serving), then the grace given to in-flight requests.
*/}}
{{- define "ping.shutdownSeconds" -}}
{{- addf .Values.preStopSleepSeconds .Values.config.drainSeconds .Values.config.shutdownGraceSeconds | ceil | int64 }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the explicit value, or the shutdown time plus a 5s margin, so the
kubelet never SIGKILLs a pod that is still finishing requests.
*/}}
{{- define "ping.terminationGracePeriodSeconds" -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add (include "ping.shutdownSeconds" . | int64) 5 }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds | int64 }}
{{- end }}
{{- end }}

{{/*
Checks across values that a JSON schema cannot express. Each one refuses to render with the fix.
*/}}
{{- define "ping.validateValues" -}}
{{- include "ping.validateModel" . }}
{{- if .Values.autoscaling.enabled }}
{{- if not (dig "requests" "cpu" "" .Values.resources) }}
{{- fail "autoscaling.enabled needs resources.requests.cpu: the HPA's CPU target is a percentage of the CPU request, so without one it never scales. Set resources.requests.cpu (e.g. 100m) or turn autoscaling off." }}
{{- end }}
{{- if and (not (kindIs "invalid" .Values.autoscaling.targetMemoryUtilizationPercentage)) (not (dig "requests" "memory" "" .Values.resources)) }}
{{- fail "autoscaling.targetMemoryUtilizationPercentage needs resources.requests.memory: the memory target is a percentage of the memory request. Set resources.requests.memory or set the target to null." }}
{{- end }}
{{- if gt (int64 .Values.autoscaling.minReplicas) (int64 .Values.autoscaling.maxReplicas) }}
{{- fail (printf "autoscaling.minReplicas (%d) is greater than autoscaling.maxReplicas (%d)." (int64 .Values.autoscaling.minReplicas) (int64 .Values.autoscaling.maxReplicas)) }}
{{- end }}
{{- end }}
{{- if and (eq .Values.service.type "LoadBalancer") (not .Values.service.loadBalancerSourceRanges) }}
{{- if eq (get .Values.service.annotations "service.beta.kubernetes.io/aws-load-balancer-scheme") "internet-facing" }}
{{- fail "service.loadBalancerSourceRanges is empty on an internet-facing load balancer: list your clients' CIDRs, e.g. --set 'service.loadBalancerSourceRanges={203.0.113.0/24}', or {0.0.0.0/0} to open it to the internet on purpose." }}
{{- end }}
{{- end }}
{{- if not (kindIs "invalid" .Values.terminationGracePeriodSeconds) }}
{{- $shutdown := include "ping.shutdownSeconds" . | int64 }}
{{- if le (int64 .Values.terminationGracePeriodSeconds) $shutdown }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than preStopSleepSeconds + config.drainSeconds + config.shutdownGraceSeconds (%d), or the kubelet kills the pod mid-shutdown. Raise it, or set it to null to have the chart compute it." (int64 .Values.terminationGracePeriodSeconds) $shutdown) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Labels of the `helm test` pod. Its name label differs from the app's, so the Service, PDB and
NetworkPolicy selectors never pick the test pod up as a Ping pod.
*/}}
{{- define "ping.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "ping.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Checks on model.* that the schema cannot express: they depend on other values or on the cluster.
*/}}
{{- define "ping.validateModel" -}}
{{- $m := .Values.model }}
{{- if and (ne $m.source "image") (ne .Values.config.modelDir "/app/models/iris") }}
{{- fail (printf "config.modelDir (%s) applies to model.source image only; with model.source %s, Ping reads the model at model.mountPath (%s). Unset config.modelDir." .Values.config.modelDir $m.source $m.mountPath) }}
{{- end }}
{{- if and (eq $m.source "oci") (eq $m.oci.mount "volume") (semverCompare "<1.33.0-0" .Capabilities.KubeVersion.Version) }}
{{- fail (printf "model.oci.mount volume needs Kubernetes 1.33 or later (image volumes with subPath, admitted by the restricted Pod Security level), with the ImageVolume feature gate on; this cluster is %s. Use model.oci.mount copy." .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (eq $m.source "uri") (not .Values.networkPolicy.egress) }}
{{- fail "model.source uri fetches the model over the network, but networkPolicy.enabled denies all egress: add networkPolicy.egress rules for DNS and the model store (see the chart README, \"Your model\")." }}
{{- end }}
{{- end }}
