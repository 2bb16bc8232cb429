{{- define "patbot.name" -}}{{ .Release.Name }}-patbot{{- end -}}
{{- define "patbot.labels" -}}
app.kubernetes.io/name: patbot
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
{{- end -}}
{{- define "patbot.selector" -}}
app.kubernetes.io/name: patbot
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
