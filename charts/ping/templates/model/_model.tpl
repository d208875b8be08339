{{/*
The model's source: what Ping's container mounts, which init container (if any) puts the artifact
there, and the PING_MODEL_DIR Ping reads. One `model.source` at a time; the schema refuses the
fields of any other source, and a source without its required fields.

  image  the artifact baked into Ping's image at config.modelDir: nothing to mount
  pvc    a PersistentVolumeClaim, mounted read-only at model.mountPath (subPath model.pvc.path)
  uri    an emptyDir, filled by an init container before Ping starts:
           https://  Ping's own image, `python -m ping fetch` (bounded, sha256-verified)
           s3://     the AWS CLI image, `aws s3 sync` (IRSA, or env from a Secret)
           gs://     the Google Cloud CLI image, `gcloud storage rsync` (Workload Identity)
  oci    copy:   an emptyDir, filled by the model image itself running `cp`
         volume: the model image mounted read-only as an `image` volume (1.33+, feature-gated)
*/}}

{{/* The artifact directory Ping reads, as PING_MODEL_DIR. */}}
{{- define "ping.modelDir" -}}
{{- if eq .Values.model.source "image" }}
{{- .Values.config.modelDir }}
{{- else }}
{{- .Values.model.mountPath }}
{{- end }}
{{- end }}

{{/* The scheme of model.uri.location: https, s3 or gs (the schema allows only these). */}}
{{- define "ping.modelUriScheme" -}}
{{- (urlParse .Values.model.uri.location).scheme }}
{{- end }}

{{/* The model image's reference, as "repo:tag", "repo@digest" or "repo:tag@digest". */}}
{{- define "ping.modelImageRef" -}}
{{- $image := .Values.model.oci.image }}
{{- $ref := $image.repository }}
{{- with $image.tag }}{{ $ref = printf "%s:%s" $ref . }}{{ end }}
{{- with $image.digest }}{{ $ref = printf "%s@%s" $ref . }}{{ end }}
{{- $ref }}
{{- end }}

{{/* Where an init container writes the artifact: not model.mountPath, which the model image may use itself. */}}
{{- define "ping.modelStaging" -}}/ping-model{{- end }}

{{/* Ping's volumeMount for the model, or nothing for the image source. */}}
{{- define "ping.modelVolumeMounts" -}}
{{- $m := .Values.model }}
{{- if ne $m.source "image" }}
- name: model
  mountPath: {{ $m.mountPath }}
  readOnly: true
  {{- if and (eq $m.source "pvc") $m.pvc.path }}
  subPath: {{ $m.pvc.path }}
  {{- else if and (eq $m.source "oci") (eq $m.oci.mount "volume") (ne (trimAll "/" $m.oci.path) "") }}
  subPath: {{ trimAll "/" $m.oci.path }}
  {{- end }}
{{- end }}
{{- end }}

{{/* The model's volume, or nothing for the image source. */}}
{{- define "ping.modelVolumes" -}}
{{- $m := .Values.model }}
{{- if eq $m.source "pvc" }}
- name: model
  persistentVolumeClaim:
    claimName: {{ $m.pvc.claimName }}
    readOnly: true
{{- else if eq $m.source "uri" }}
- name: model
  emptyDir:
    sizeLimit: {{ $m.uri.sizeLimit }}
{{- if $m.uri.caConfigMap }}
- name: model-ca
  configMap:
    name: {{ $m.uri.caConfigMap }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- else if and (eq $m.source "oci") (eq $m.oci.mount "volume") }}
- name: model
  image:
    reference: {{ include "ping.modelImageRef" . | quote }}
    pullPolicy: {{ $m.oci.image.pullPolicy }}
{{- else if eq $m.source "oci" }}
- name: model
  emptyDir:
    sizeLimit: {{ $m.oci.sizeLimit }}
{{- end }}
{{- end }}

{{/* The init container that puts the artifact in place, or nothing. Same hardened securityContext as Ping. */}}
{{- define "ping.modelInitContainers" -}}
{{- $m := .Values.model }}
{{- $staging := include "ping.modelStaging" . }}
{{- if eq $m.source "uri" }}
{{- $scheme := include "ping.modelUriScheme" . }}
- name: fetch-model
  {{- if eq $scheme "https" }}
  image: {{ include "ping.imageRef" (dict "image" .Values.image "tag" (include "ping.imageTag" .)) | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - python
    - -m
    - ping
    - fetch
    - --max-bytes
    - {{ $m.uri.maxBytes | int64 | quote }}
    - --deadline
    - {{ $m.uri.deadlineSeconds | int64 | quote }}
    {{- if $m.uri.caConfigMap }}
    - --ca-file
    - /etc/ping/model-ca/ca.crt
    {{- end }}
    - --
    - {{ $m.uri.location | quote }}
    - {{ $staging }}
  {{- else if eq $scheme "s3" }}
  image: {{ include "ping.imageRef" (dict "image" $m.uri.s3Image "tag" $m.uri.s3Image.tag) | quote }}
  imagePullPolicy: {{ $m.uri.s3Image.pullPolicy }}
  command: ["aws", "s3", "sync", "--only-show-errors", {{ $m.uri.location | quote }}, {{ $staging | quote }}]
  env:
    {{- /* The CLI caches credentials under $HOME; the root filesystem is read-only. */}}
    - name: HOME
      value: /tmp
  {{- else }}
  image: {{ include "ping.imageRef" (dict "image" $m.uri.gcsImage "tag" $m.uri.gcsImage.tag) | quote }}
  imagePullPolicy: {{ $m.uri.gcsImage.pullPolicy }}
  command: ["gcloud", "storage", "rsync", "--recursive", {{ $m.uri.location | quote }}, {{ $staging | quote }}]
  env:
    {{- /* gcloud writes its config and logs; the root filesystem is read-only. */}}
    - name: HOME
      value: /tmp
    - name: CLOUDSDK_CONFIG
      value: /tmp/gcloud
  {{- end }}
  {{- if and (ne $scheme "https") $m.uri.envFromSecret }}
  envFrom:
    - secretRef:
        name: {{ $m.uri.envFromSecret }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  resources:
    {{- toYaml $m.initResources | nindent 4 }}
  volumeMounts:
    - name: model
      mountPath: {{ $staging }}
    - name: tmp
      mountPath: /tmp
    {{- if and (eq $scheme "https") $m.uri.caConfigMap }}
    - name: model-ca
      mountPath: /etc/ping/model-ca
      readOnly: true
    {{- end }}
{{- else if and (eq $m.source "oci") (ne $m.oci.mount "volume") }}
- name: copy-model
  image: {{ include "ping.modelImageRef" . | quote }}
  imagePullPolicy: {{ $m.oci.image.pullPolicy }}
  {{- /* The model image's own cp: `make model-image` builds on the base Ping's image uses, so it has one. */}}
  command: ["cp", "-R", {{ printf "%s/." (trimSuffix "/" $m.oci.path) | quote }}, {{ $staging | quote }}]
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  resources:
    {{- toYaml $m.initResources | nindent 4 }}
  volumeMounts:
    - name: model
      mountPath: {{ $staging }}
{{- end }}
{{- end }}
