{{- define "jtp.fullname" -}}
{{- printf "%s" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "jtp.labels" -}}
app.kubernetes.io/name: job-trigger-portal
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "jtp.selector" -}}
app.kubernetes.io/name: job-trigger-portal
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "jtp.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "jtp.operatorSA" -}}
{{- .Values.operator.serviceAccount.name | default (printf "%s-operator" (include "jtp.fullname" .)) -}}
{{- end -}}

{{- define "jtp.portalSA" -}}
{{- .Values.portal.serviceAccount.name | default (printf "%s-portal" (include "jtp.fullname" .)) -}}
{{- end -}}

{{- define "jtp.sqlite" -}}
{{- if not .Values.database.existingSecret }}true{{ end -}}
{{- end -}}

{{/* The database URL: from the Secret, or SQLite on the shared volume. */}}
{{- define "jtp.databaseEnv" -}}
{{- if .Values.database.existingSecret }}
- name: JTP_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.urlKey }}
{{- else }}
- name: JTP_DATABASE_URL
  value: sqlite:///data/jtp.db
{{- end }}
- name: JTP_OUTPUT_CAP_BYTES
  value: {{ .Values.database.outputCapBytes | int64 | quote }}
{{- with .Values.retention.maxAge }}
- name: JTP_RETENTION_MAX_AGE
  value: {{ . | quote }}
{{- end }}
{{- with .Values.retention.keepLast }}
- name: JTP_RETENTION_KEEP_LAST
  value: {{ . | int64 | quote }}
{{- end }}
{{- end -}}

{{- define "jtp.dataVolume" -}}
{{- if include "jtp.sqlite" . }}
- name: data
  persistentVolumeClaim:
    claimName: {{ include "jtp.fullname" . }}-data
{{- end }}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "jtp.dataMount" -}}
{{- if include "jtp.sqlite" . }}
- name: data
  mountPath: /data
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Alert receivers as the operator's --alert-receiver list: name=format,name=format. */}}
{{- define "jtp.alertReceivers" -}}
{{- $out := list -}}
{{- range . -}}
{{- $out = append $out (printf "%s=%s" .name (.format | default "json")) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}
