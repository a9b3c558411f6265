{{/* The chart name, overridable. */}}
{{- define "conductor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: prefix of every object name. */}}
{{- define "conductor.fullname" -}}
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

{{- define "conductor.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "conductor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "conductor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "conductor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "conductor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "conductor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "conductor.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The components of this mode, as YAML (read back with fromYaml): component name → what it runs.
  serveMode   --mode of `conductor serve`
  replicas, resources
  grpc        it serves a gRPC port (all but the consumer controller)
  agentFacing agents connect to it (the agent-facing Service selects it)
  internal    it serves BackendService to the router (an internal Service selects it)
  configFile  config.yaml (agent-facing, TLS when tls.enabled) or internal.yaml (no TLS)
*/}}
{{- define "conductor.components" -}}
{{- if eq .Values.mode "single" }}
conductor:
  serveMode: all
  replicas: {{ .Values.single.replicas }}
  resources: {{ toJson .Values.single.resources }}
  grpc: true
  agentFacing: true
  internal: false
  configFile: config.yaml
{{- else if eq .Values.mode "split" }}
router:
  serveMode: router
  replicas: {{ .Values.split.router.replicas }}
  resources: {{ toJson .Values.split.router.resources }}
  grpc: true
  agentFacing: true
  internal: false
  configFile: config.yaml
work-service:
  serveMode: work-service
  replicas: {{ .Values.split.workService.replicas }}
  resources: {{ toJson .Values.split.workService.resources }}
  grpc: true
  agentFacing: false
  internal: true
  configFile: internal.yaml
db-service:
  serveMode: db-service
  replicas: {{ .Values.split.dbService.replicas }}
  resources: {{ toJson .Values.split.dbService.resources }}
  grpc: true
  agentFacing: false
  internal: true
  configFile: internal.yaml
consumer-controller:
  serveMode: consumer-controller
  replicas: {{ .Values.split.consumerController.replicas }}
  resources: {{ toJson .Values.split.consumerController.resources }}
  grpc: false
  agentFacing: false
  internal: false
  configFile: internal.yaml
{{- else }}
{{- fail (printf "mode must be single or split, got %q" .Values.mode) }}
{{- end }}
{{- end }}

{{/* Name of a component's objects: the full name, plus the component unless it is the single process. */}}
{{- define "conductor.componentName" -}}
{{- $root := index . 0 }}{{- $component := index . 1 }}
{{- if eq $component "conductor" }}
{{- include "conductor.fullname" $root }}
{{- else }}
{{- printf "%s-%s" (include "conductor.fullname" $root | trunc 43 | trimSuffix "-") $component }}
{{- end }}
{{- end }}

{{/* The agent-facing component: conductor (single) or router (split). */}}
{{- define "conductor.agentComponent" -}}
{{- if eq .Values.mode "split" }}router{{ else }}conductor{{ end }}
{{- end }}

{{- define "conductor.checkValues" -}}
{{- if and .Values.route.enabled (not .Values.tls.enabled) }}
{{- fail "route.enabled needs tls.enabled: the Route passes TLS through to the conductor" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.secretName is required when tls.enabled" }}
{{- end }}
{{- end }}

{{/* Cluster-scoped names carry the namespace: one release name may be used in several namespaces. */}}
{{- define "conductor.clusterRoleName" -}}
{{- printf "ocm-conductor:%s:%s" .Release.Namespace (include "conductor.fullname" .) }}
{{- end }}
