{{/* Names: the release's objects are <fullname>-controller, <fullname>-speaker and
<fullname>-controller-metrics; 40 characters leave room for the longest suffix (DNS labels
hold 63). */}}
{{- define "vipcast.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vipcast.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: controller or speaker. */}}
{{- define "vipcast.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vipcast.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "vipcast.memberlistSecret" -}}
{{- .Values.speaker.memberlist.existingSecret | default (printf "%s-memberlist" (include "vipcast.fullname" .)) -}}
{{- end -}}

{{- define "vipcast.passwordNamespace" -}}
{{- .Values.speaker.bgpPasswordSecrets.namespace | default .Release.Namespace -}}
{{- end -}}

{{/* The security context both containers share: nothing gained, nothing written. */}}
{{- define "vipcast.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
seccompProfile:
  type: RuntimeDefault
{{- end -}}
