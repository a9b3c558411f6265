{{- define "maestro.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: maestro
{{- end }}

{{- define "maestro.dbHost" -}}
{{- default (printf "maestro-db.%s.svc" .Release.Namespace) .Values.database.host }}
{{- end }}
